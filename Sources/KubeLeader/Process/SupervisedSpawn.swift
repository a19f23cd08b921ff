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
        guard let command = argv.first else {
            throw ProcessError(.commandNotFound, errno: ENOENT,
                               context: "Cannot run an empty command; give the program to run after --")
        }
        let file = try resolveCommand(command, path: searchPath(in: environment))
        let arguments = CStringArray(argv)
        defer { arguments.free() }
        var pid: pid_t = 0
        let rc: Int32
        if let environment {
            let env = CStringArray(environment: environment)
            defer { env.free() }
            rc = cshims_spawn_supervised(&pid, file, arguments.pointers, env.pointers)
        } else {
            rc = cshims_spawn_supervised(&pid, file, arguments.pointers, cshims_environ())
        }
        if rc != 0 { throw spawnError(rc, command: command, file: file) }
        return ChildProcess(pid: pid)
    }
}
