#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShims

extension ChildProcess {
    /// Starts kube-leader's supervised command: like `spawn` (own process
    /// group, empty mask, default dispositions, PATH lookup, 126/127 errors)
    /// and in addition killed by the kernel (SIGKILL) when the calling thread
    /// dies, so a SIGKILLed kube-leader that is not PID 1 leaves no child
    /// running without the lock.
    ///
    /// - Important: call it from the main thread, which lives as long as
    ///   kube-leader does (PR_SET_PDEATHSIG watches the thread, not the process).
    public static func spawnSupervised(_ argv: [String], environment: [String: String]? = nil) throws(ProcessError) -> ChildProcess {
        try spawnResolved(argv, environment: environment) { pid, file, arguments, envp in
            cshims_spawn_supervised(pid, file, arguments, envp)
        }
    }
}
