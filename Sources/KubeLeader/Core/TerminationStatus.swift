/// How a child ended (swift-subprocess `TerminationStatus`). Pure; decoding a
/// `waitpid` status word is `TerminationStatus(waitStatus:)` in KLProcess.
public enum TerminationStatus: Sendable, Equatable, CustomStringConvertible {
    /// exit(N) or return N from main.
    case exited(Int32)
    /// Killed by a signal.
    case signaled(Signal)

    /// The code a supervisor exits with: the child's own code, or 128+N when
    /// it died of signal N (tini, dumb-init and shells do the same).
    public var exitCode: Int32 {
        switch self {
        case .exited(let code): return code
        case .signaled(let signal): return ExitCode.forSignal(signal.rawValue)
        }
    }

    public var description: String {
        switch self {
        case .exited(let code): return "exited with code \(code)"
        case .signaled(let signal): return "killed by \(signal.name)"
        }
    }
}
