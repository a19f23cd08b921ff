import CShims
import KLCore
import KLSystem

/// A child we started. It leads its own process group (its pid is the group
/// id), so a signal for "the command" reaches everything it started.
public struct ChildProcess: Sendable {
    /// The child's pid, also its process-group id.
    public let pid: Int32

    public init(pid: Int32) { self.pid = pid }

    /// Starts `argv` as a child: `posix_spawn` with POSIX_SPAWN_SETSIGMASK (an
    /// empty mask), POSIX_SPAWN_SETSIGDEF (every signal at its default, even
    /// the ones we block or ignore) and POSIX_SPAWN_SETPGROUP (its own group).
    ///
    /// The command is looked up like execvp(3), in the PATH of `environment`
    /// (ours when nil). Errors are known before this returns: ENOENT throws
    /// `.commandNotFound` (127); EACCES, ENOEXEC or a directory throw
    /// `.notExecutable` (126). glibc (>= 2.24) and musl return exec's errno
    /// from posix_spawn itself.
    ///
    /// - Parameters:
    ///   - environment: the child's whole environment; nil passes ours on.
    ///   - foregroundTTY: make the child's group the foreground group of the
    ///     terminal on our stdin, if stdin is one (tini does this in its
    ///     child, `tini.c:132-149`), so an interactive `docker run -it`
    ///     child can read the terminal and gets Ctrl-C from it. Uses
    ///     POSIX_SPAWN_TCSETPGROUP (glibc 2.35+); elsewhere the parent
    ///     hands the terminal over right after spawning.
    ///   - standardInput/standardOutput/standardError: descriptors dup'ed to
    ///     0/1/2 in the child; nil inherits ours.
    public static func spawn(
        _ argv: [String], environment: [String: String]? = nil, foregroundTTY: Bool = false,
        standardInput: Int32? = nil, standardOutput: Int32? = nil, standardError: Int32? = nil
    ) throws(ProcessError) -> ChildProcess {
        var flags = CSHIMS_SPAWN_NEW_GROUP
        if foregroundTTY { flags |= CSHIMS_SPAWN_FOREGROUND }
        return try spawnResolved(argv, environment: environment) { pid, file, arguments, envp in
            cshims_spawn(pid, file, arguments, envp, standardInput ?? -1, standardOutput ?? -1, standardError ?? -1, flags)
        }
    }

    /// The part every way of spawning shares: PATH lookup in the child's
    /// environment (127/126 before anything starts), C argument and
    /// environment arrays, and errno → `ProcessError`. `start` does the
    /// actual spawn and returns 0 or an errno value.
    static func spawnResolved(
        _ argv: [String], environment: [String: String]?,
        start: (UnsafeMutablePointer<pid_t>, String, UnsafePointer<UnsafeMutablePointer<CChar>?>,
                UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Int32
    ) throws(ProcessError) -> ChildProcess {
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
            rc = start(&pid, file, arguments.pointers, env.pointers)
        } else {
            rc = start(&pid, file, arguments.pointers, cshims_environ())
        }
        if rc != 0 { throw spawnError(rc, command: command, file: file) }
        return ChildProcess(pid: pid)
    }

    /// Sends `signal` to the child's whole process group (`kill(-pgid, sig)`).
    ///
    /// Returns false when no process is left in the group (ESRCH): the child
    /// exited in between, which is a race to log as a warning, not a failure
    /// (tini `tini.c:533-538`). Any other error (EPERM, EINVAL) throws.
    @discardableResult
    public func signalGroup(_ signal: Signal) throws(ProcessError) -> Bool {
        if kill(-pid, signal.rawValue) == 0 { return true }
        let error = errno
        if error == ESRCH { return false }
        throw ProcessError(.signalFailed, errno: error,
                           context: "Cannot send \(signal.name) to process group \(pid)")
    }

    /// Sends `signal` to the child alone (`kill(pid, sig)`); false if that failed.
    @discardableResult
    public func signal(_ signal: Signal) -> Bool {
        kill(pid, signal.rawValue) == 0
    }

    /// Waits for this child to exit and reaps it (`waitpid(pid, 0)`).
    ///
    /// With `timeout`, returns nil when the child is still running after it
    /// (the child is then left alone). Waits on a pidfd, so no SIGCHLD
    /// handling is needed.
    ///
    /// - Important: do not mix with `Reaper.reapAll()` for the same child: whichever
    ///   calls waitpid first gets the status; the other sees ECHILD (`.waitFailed`).
    public func waitForExit(timeout: Duration? = nil) throws(ProcessError) -> TerminationStatus? {
        if let timeout {
            guard try waitUntilExited(pid: pid, timeout: timeout) else { return nil }
        }
        var status: Int32 = 0
        let (result, error) = retryingEINTR { waitpid(pid, &status, 0) }
        if result < 0 {
            throw ProcessError(.waitFailed, errno: error,
                               context: "Cannot wait for child process \(pid); was it reaped elsewhere?")
        }
        return TerminationStatus(waitStatus: status)
    }
}

/// Blocks until `pid` has exited (true) or `timeout` passed (false), without
/// reaping it. Uses a pidfd; on kernels without pidfd_open (before 5.3) it
/// checks with waitid(WNOWAIT) every 10 ms.
func waitUntilExited(pid: Int32, timeout: Duration) throws(ProcessError) -> Bool {
    let clock = MonotonicClock()
    let deadline = clock.now + timeout
    let pidfd = cshims_pidfd_open(pid)
    if pidfd >= 0 {
        defer { closeQuietly(pidfd) }
        var fds = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)]
        let (n, error) = pollUntil(&fds, deadline: deadline)
        if n < 0 { throw ProcessError(.waitFailed, errno: error, context: "Cannot poll for the exit of process \(pid)") }
        return n > 0
    }
    while true {
        let exited = cshims_has_exited(pid)
        if exited < 0 {
            let error = errno
            throw ProcessError(.waitFailed, errno: error, context: "Cannot wait for process \(pid)")
        }
        if exited == 1 { return true }
        if clock.now >= deadline { return false }
        blockingSleep(.milliseconds(10))
    }
}
