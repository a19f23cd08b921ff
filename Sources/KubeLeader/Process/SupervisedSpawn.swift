import KLSystem
import CShims

/// kube-leader's supervised command, forked but maybe not yet executed.
///
/// `ChildProcess.startSupervised` returns right after the fork: the exec
/// (and execvp's PATH search) happens in the child, so a binary on a hung
/// NFS or FUSE mount blocks only the child, which is in its own process
/// group and is stopped like any child at the renew deadline. The main
/// thread learns how the exec went from `execReport`, a non-blocking pipe
/// it polls with its other events (`checkExec`).
public final class SupervisedStart: @unchecked Sendable {
    /// The child: its pid is its process group, from the fork on.
    public let child: ChildProcess
    /// Readable once the exec succeeded (EOF) or failed (errno); -1 once read.
    public private(set) var execReport: Int32
    private let command: String
    private let files: [String]

    init(child: ChildProcess, execReport: Int32, command: String, files: [String]) {
        self.child = child
        self.execReport = execReport
        self.command = command
        self.files = files
    }

    deinit { if execReport >= 0 { close(execReport) } }

    /// How the exec went, without blocking: nil while it has not happened
    /// (or once it was reported), `.success` when the command runs,
    /// `.failure` (126/127, naming the file) when it could not be executed;
    /// the child then exits 127 and is reaped as usual. After the child has
    /// exited this always has the answer.
    public func checkExec() -> Result<Void, ProcessError>? {
        guard execReport >= 0 else { return nil }
        var error: Int32 = 0
        var index: Int32 = 0
        let rc = cshims_exec_report_read(execReport, &error, &index)
        if rc == 0 { return nil }
        close(execReport)
        execReport = -1
        switch rc {
        case 1: return .success(())
        case 2:
            let file = files.indices.contains(Int(index)) ? files[Int(index)] : command
            if error == ENOENT, files.count > 1 || !command.contains("/") {
                return .failure(ProcessError(.commandNotFound, errno: error,
                                             context: "Cannot run \"\(command)\": not found in PATH (\(files.map { dirname($0) }.joined(separator: ":"))); install it or give its full path"))
            }
            return .failure(spawnError(error, command: command, file: file))
        default:
            let e = errno
            return .failure(ProcessError(.spawnFailed, errno: e, context: "Cannot learn whether \"\(command)\" started"))
        }
    }

    private func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return String(path[..<slash])
    }
}

extension ChildProcess {
    /// Starts kube-leader's supervised command: own process group, empty
    /// mask, default dispositions, and killed by the kernel (SIGKILL) when the
    /// calling thread dies, so a SIGKILLed kube-leader that is not PID 1
    /// leaves no child running without the lock.
    ///
    /// Returns right after the fork, never waiting for the exec or touching
    /// the file system (see `SupervisedStart`): the command is looked up in
    /// the PATH of `environment` (ours when nil) by the child, as execvp(3)
    /// does; 126/127 come later from `checkExec`. Throws only when the
    /// command is empty or the fork itself fails.
    ///
    /// - Important: call it from the main thread, which lives as long as
    ///   kube-leader does (PR_SET_PDEATHSIG watches the thread, not the process).
    public static func startSupervised(_ argv: [String], environment: [String: String]? = nil) throws(ProcessError) -> SupervisedStart {
        guard let command = argv.first, !command.isEmpty else {
            throw ProcessError(.commandNotFound, errno: ENOENT,
                               context: "Cannot run an empty command; give the program to run after --")
        }
        let files = execCandidates(command, path: searchPath(in: environment))
        let paths = CStringArray(files)
        defer { paths.free() }
        let arguments = CStringArray(argv)
        defer { arguments.free() }
        var pid: pid_t = 0
        var report: Int32 = -1
        let rc: Int32
        let filePointers = paths.pointers.map { UnsafePointer($0) }
        if let environment {
            let env = CStringArray(environment: environment)
            defer { env.free() }
            rc = cshims_spawn_supervised(&pid, filePointers, arguments.pointers, env.pointers, &report)
        } else {
            rc = cshims_spawn_supervised(&pid, filePointers, arguments.pointers, cshims_environ(), &report)
        }
        if rc != 0 {
            throw ProcessError(.spawnFailed, errno: rc, context: "Cannot start \"\(command)\"; check the system's process and memory limits")
        }
        return SupervisedStart(child: ChildProcess(pid: pid), execReport: report, command: command, files: files)
    }
}

/// The files execvp(3) tries for `name`, without touching the file system:
/// the name itself when it contains "/", else each PATH entry + "/" + name
/// ("" is the current directory).
func execCandidates(_ name: String, path: String) -> [String] {
    if name.contains("/") { return [name] }
    return path.split(separator: ":", omittingEmptySubsequences: false)
        .map { ($0.isEmpty ? "." : String($0)) + "/" + name }
}
