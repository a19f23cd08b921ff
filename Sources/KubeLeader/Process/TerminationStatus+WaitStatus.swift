import CShims
import KLCore

extension TerminationStatus {
    /// Decodes a `waitpid` status word (WIFEXITED/WEXITSTATUS, WIFSIGNALED/WTERMSIG).
    public init(waitStatus status: Int32) {
        if cshims_WIFSIGNALED(status) != 0 {
            self = .signaled(Signal(rawValue: cshims_WTERMSIG(status)))
        } else {
            self = .exited(cshims_WEXITSTATUS(status))
        }
    }
}
