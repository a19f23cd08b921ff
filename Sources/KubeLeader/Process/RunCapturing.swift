import CShims
import KLCore
import KLSystem

/// What a command printed and how it ended.
public struct CapturedOutput: Sendable, Equatable {
    public var status: TerminationStatus
    public var stdout: [UInt8]
    public var stderr: [UInt8]

    public init(status: TerminationStatus, stdout: [UInt8], stderr: [UInt8]) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    /// stdout as UTF-8 text (invalid bytes replaced).
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    /// stderr as UTF-8 text (invalid bytes replaced).
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs a command to completion and returns its stdout, stderr and status
/// (for `policy-check` running `opa`, and for tests).
///
/// The child is started like `ChildProcess.spawn` (clean signal state, own
/// process group, PATH of `environment`), with three pipes. One poll(2) loop
/// feeds `stdin` and drains both output pipes at the same time, so a child
/// that writes megabytes to both never blocks on a full pipe (a deadlock when
/// reading one pipe after the other).
///
/// With `timeout`, the whole process group is killed with SIGKILL when the
/// time is up (covering output and exit), then reaped, and `.timedOut` is thrown.
///
/// - Important: the child is reaped with `waitpid(pid)`. A `Reaper.reapAll()`
///   running at the same time in this process could take its status first;
///   don't mix the two (kube-leader does not use this function).
/// - Important: SIGPIPE is blocked in the calling thread while stdin is
///   written, so a child that exits without reading it gives EPIPE (ignored)
///   instead of killing us; a pending SIGPIPE from that write is consumed.
public func runCapturing(
    _ argv: [String], stdin input: [UInt8] = [], environment: [String: String]? = nil,
    timeout: Duration? = nil
) throws(ProcessError) -> CapturedOutput {
    let command = argv.first ?? ""
    let clock = MonotonicClock()
    let deadline = timeout.map { clock.now + $0 }

    // 1. Pipes: the child's ends blocking, ours non-blocking; all CLOEXEC so
    //    children spawned by other threads don't inherit them.
    var fds: [Int32] = [-1, -1, -1, -1, -1, -1]   // in.r in.w out.r out.w err.r err.w
    func closeAll() { for fd in fds { closeQuietly(fd) } }
    for i in 0..<3 {
        var pair: [Int32] = [-1, -1]
        if cshims_pipe_cloexec(&pair) != 0 {
            let error = errno
            closeAll()
            throw ProcessError(.ioFailed, errno: error, context: "Cannot create a pipe to run \"\(command)\"")
        }
        fds[2 * i] = pair[0]
        fds[2 * i + 1] = pair[1]
    }

    // 2. Spawn, then close the child's ends in the parent.
    let child: ChildProcess
    do {
        child = try ChildProcess.spawn(argv, environment: environment,
                                       standardInput: fds[0], standardOutput: fds[3], standardError: fds[5])
    } catch {
        closeAll()
        throw error
    }
    for i in [0, 3, 5] { closeQuietly(fds[i]); fds[i] = -1 }
    var stdinFD = fds[1], stdoutFD = fds[2], stderrFD = fds[4]
    defer { closeQuietly(stdinFD); closeQuietly(stdoutFD); closeQuietly(stderrFD) }
    for fd in [stdinFD, stdoutFD, stderrFD] { setNonBlocking(fd) }
    if input.isEmpty { closeQuietly(stdinFD); stdinFD = -1 }

    // 3. SIGPIPE blocked in this thread while we write stdin.
    var pipeSet = sigset_t(), oldMask = sigset_t()
    sigemptyset(&pipeSet)
    sigaddset(&pipeSet, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &pipeSet, &oldMask)
    var sawEPIPE = false
    defer {
        if sawEPIPE {
            var zero = timespec(tv_sec: 0, tv_nsec: 0)
            _ = sigtimedwait(&pipeSet, nil, &zero)
        }
        pthread_sigmask(SIG_SETMASK, &oldMask, nil)
    }

    func killAndReap() {
        _ = try? child.signalGroup(.kill)
        _ = try? child.waitForExit()
    }
    func timedOut() -> ProcessError {
        killAndReap()
        return ProcessError(.timedOut,
                            context: "\"\(command)\" (pid \(child.pid)) did not finish within "
                                + "\(timeout.map { DurationText.format($0) } ?? "its time limit") and was killed; "
                                + "raise the timeout or check why it hangs")
    }

    // 4. One poll loop over the three pipes.
    var out: [UInt8] = [], err: [UInt8] = []
    var written = 0
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while stdoutFD >= 0 || stderrFD >= 0 || stdinFD >= 0 {
        var pollSet: [pollfd] = []
        if stdinFD >= 0 { pollSet.append(pollfd(fd: stdinFD, events: Int16(POLLOUT), revents: 0)) }
        if stdoutFD >= 0 { pollSet.append(pollfd(fd: stdoutFD, events: Int16(POLLIN), revents: 0)) }
        if stderrFD >= 0 { pollSet.append(pollfd(fd: stderrFD, events: Int16(POLLIN), revents: 0)) }
        let (n, error) = pollUntil(&pollSet, deadline: deadline)
        if n < 0 {
            killAndReap()
            throw ProcessError(.ioFailed, errno: error, context: "Cannot poll the pipes of \"\(command)\"")
        }
        if n == 0 {
            if let deadline, clock.now >= deadline { throw timedOut() }
            continue
        }
        for entry in pollSet where entry.revents != 0 {
            if entry.fd == stdinFD {
                let count = input.count - written
                let result = input.withUnsafeBytes { write(stdinFD, $0.baseAddress! + written, count) }
                let error = errno
                if result > 0 { written += result }
                if result < 0 && error != EAGAIN && error != EINTR {
                    if error == EPIPE { sawEPIPE = true }
                    written = input.count   // the child closed its stdin: not our failure
                }
                if written >= input.count { closeQuietly(stdinFD); stdinFD = -1 }
                continue
            }
            let result = read(entry.fd, &buffer, buffer.count)
            let error = errno
            if result > 0 {
                if entry.fd == stdoutFD { out.append(contentsOf: buffer[0..<result]) }
                else { err.append(contentsOf: buffer[0..<result]) }
            } else if result == 0 || (error != EAGAIN && error != EINTR) {
                if entry.fd == stdoutFD { closeQuietly(stdoutFD); stdoutFD = -1 }
                else { closeQuietly(stderrFD); stderrFD = -1 }
            }
        }
    }

    // 5. Both outputs closed: wait for the exit, still within the deadline.
    if let deadline {
        let remaining = deadline - clock.now
        if remaining <= .zero { throw timedOut() }
        guard try waitUntilExited(pid: child.pid, timeout: remaining) else { throw timedOut() }
    }
    guard let status = try child.waitForExit() else {
        throw ProcessError(.waitFailed, context: "Cannot get the exit status of \"\(command)\" (pid \(child.pid))")
    }
    return CapturedOutput(status: status, stdout: out, stderr: err)
}
