#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLKube
import KLProcess
import KLSupport
import Synchronization

/// The supervisor: the main thread's loop, in the shape of tini's.
///
/// Two threads, one job each:
/// - the **election thread** runs `ElectionRunner` (blocking HTTP calls with
///   deadlines) and reports "became leader" / "lost" / "done";
/// - the **main thread** (this loop) owns the child: it waits on a signalfd
///   for signals and for wake-ups from the election thread, starts the child
///   once we lead, forwards signals to it, reaps every zombie, stops the child
///   when leadership is lost, and asks for the lock to be released when the
///   child exits.
///
/// Every way out is one of `Exit`'s cases, each with its exit code.
final class Supervisor {
    /// How kube-leader ends.
    enum Exit {
        /// The child exited (code, or 128+N for signal N) and the lock was released.
        case childExited(TerminationStatus)
        /// A terminating signal arrived before we led: nothing was started.
        case signalWhileWaiting(Signal)
        /// Leadership was lost; the child was stopped (exit 3).
        case leadershipLost
        /// The API refused us for a reason retrying cannot fix (exit 2).
        case configuration(String)
        /// The command could not be started (126/127).
        case spawnFailed(ProcessError)

        var code: Int32 {
            switch self {
            case .childExited(let s): s.exitCode
            case .signalWhileWaiting(let s): ExitCode.forSignal(s.rawValue)
            case .leadershipLost: ExitCode.leadershipLost
            case .configuration: ExitCode.usage
            case .spawnFailed(let e): e.exitCode
            }
        }
    }

    /// Where the child is in its life.
    enum Phase {
        /// Standing by for the lock; no child yet.
        case waiting
        /// We lead and the child runs.
        case running(ChildProcess)
        /// Leadership lost: SIGTERM sent, SIGKILL at `killAt`.
        case stopping(ChildProcess, killAt: MonotonicClock.Instant, killed: Bool)
        /// The child is gone (or never started); the lock is being released,
        /// then we exit with `exit`. Bounded by `giveUpAt`.
        case releasing(Exit, giveUpAt: MonotonicClock.Instant)
    }

    let config: LeaderConfig
    let logger: Logger
    let inbox: SignalInbox
    let host: LeaderHost
    var phase: Phase = .waiting
    var surfaces: Surfaces?

    /// Signals that end kube-leader while it waits for the lock.
    static let terminating: Set<Signal> = [.terminate, .interrupt, .hangup, .quit]

    init(config: LeaderConfig, logger: Logger, inbox: SignalInbox) throws(ProcessError) {
        self.config = config
        self.logger = logger
        self.inbox = inbox
        self.host = try LeaderHost(inbox: inbox)
    }

    /// Starts the election thread and runs the main loop until an exit.
    func run(store: any LockStore, requestTimeout: Duration) -> Exit {
        let election = Election(identity: config.identity, timing: config.timing)
        let runner = ElectionRunner(election: election, store: store, host: host,
                                    logger: logger,
                                    requestTimeout: requestTimeout)
        let host = self.host
        startThread {
            let outcome = runner.run()
            host.finished(outcome)
        }
        while true {
            if let exit = handle(events: inbox.wait(timeout: waitTimeout())) { return exit }
        }
    }

    /// How long the main loop may sleep: until the next SIGKILL or release
    /// give-up time, at most one second (as tini's sigtimedwait).
    func waitTimeout() -> Duration {
        let now = MonotonicClock.now
        switch phase {
        case .stopping(_, let killAt, false): return max(.zero, min(.seconds(1), now.duration(to: killAt)))
        case .releasing(_, let giveUpAt): return max(.zero, min(.seconds(1), now.duration(to: giveUpAt)))
        default: return .seconds(1)
        }
    }

    func handle(events: [SignalInbox.Event]) -> Exit? {
        for event in events {
            if case .signal(let signal, _) = event {
                if signal == .child {
                    if let exit = reap() { return exit }
                } else if let exit = forward(signal) {
                    return exit
                }
            }
        }
        return checkElection() ?? checkTimers()
    }

    // MARK: Election → child

    /// Acts on what the election thread reported.
    func checkElection() -> Exit? {
        let state = host.snapshot()
        switch phase {
        case .waiting:
            if let outcome = state.outcome, case .configurationError(let message) = outcome {
                return .configuration(message)
            }
            if state.lostReason != nil { return .leadershipLost }
            if state.leading { return startChild() }
        case .running(let child):
            if let reason = state.lostReason {
                surfaces?.board.lost()
                logger.warning("stopping child: leadership lost", ("child.pid", JSON(Int(child.pid))), ("reason", .string(reason)),
                               ("kill_grace", .string(DurationText.format(config.killGrace))))
                send(.terminate, to: child)
                phase = .stopping(child, killAt: MonotonicClock.now + config.killGrace, killed: false)
            }
        case .stopping:
            break
        case .releasing(let exit, _):
            if state.outcome != nil { return exit }
        }
        return nil
    }

    func checkTimers() -> Exit? {
        let now = MonotonicClock.now
        switch phase {
        case .stopping(let child, let killAt, false) where now >= killAt:
            logger.warning("killing child: it did not stop within the kill grace", ("child.pid", JSON(Int(child.pid))))
            send(.kill, to: child)
            phase = .stopping(child, killAt: killAt, killed: true)
        case .releasing(let exit, let giveUpAt) where now >= giveUpAt:
            logger.warning("gave up releasing the lock; it expires by itself")
            return exit
        default:
            break
        }
        return nil
    }

    func startChild() -> Exit? {
        do {
            let child = try ChildProcess.spawnSupervised(config.command, environment: surfaces?.childEnvironment())
            // Its exit is reported through a pidfd even if a SIGCHLD were lost.
            inbox.watchExit(of: child)
            logger.info("started child", ("child.pid", JSON(Int(child.pid))), ("child.command", .string(config.command[0])))
            phase = .running(child)
            return nil
        } catch {
            logger.error("cannot start the command", ("child.command", .string(config.command[0])), ("error", .string(error.description)))
            return release(then: .spawnFailed(error))
        }
    }

    /// Asks the election thread to release the lock, then exit with `exit`.
    func release(then exit: Exit) -> Exit? {
        host.requestRelease()
        phase = .releasing(exit, giveUpAt: MonotonicClock.now + max(config.renewDeadline, .seconds(1)))
        return host.snapshot().outcome != nil ? exit : nil
    }

    // MARK: Signals

    /// Forwards a signal to the child's process group; before we lead, a
    /// terminating signal ends kube-leader at once.
    func forward(_ signal: Signal) -> Exit? {
        switch phase {
        case .running(let child), .stopping(let child, _, _):
            logger.debug("forwarding signal", ("signal", .string(signal.name)), ("child.pid", JSON(Int(child.pid))))
            send(signal, to: child)
        case .waiting:
            guard Supervisor.terminating.contains(signal) else { return nil }
            logger.info("stopping before leading", ("signal", .string(signal.name)))
            if host.snapshot().leading { return release(then: .signalWhileWaiting(signal)) }
            return .signalWhileWaiting(signal)
        case .releasing:
            break
        }
        return nil
    }

    func send(_ signal: Signal, to child: ChildProcess) {
        do {
            if try !child.signalGroup(signal) {
                logger.warning("child already gone; signal not delivered", ("signal", .string(signal.name)), ("child.pid", JSON(Int(child.pid))))
            }
        } catch {
            logger.warning("cannot signal child", ("signal", .string(signal.name)), ("error", .string(error.description)))
        }
    }

    /// Reaps every zombie (we are PID 1 or a child subreaper); acts when it
    /// was our child.
    func reap() -> Exit? {
        for (pid, status) in Reaper.reapAll() {
            switch phase {
            case .running(let child) where child.pid == pid:
                logger.info("child exited", ("child.pid", JSON(Int(pid))), ("child.exit_code", JSON(Int(status.exitCode))),
                            ("child.status", .string(status.description)))
                surfaces?.board.childExited(code: status.exitCode)
                if let exit = release(then: .childExited(status)) { return exit }
            case .stopping(let child, _, _) where child.pid == pid:
                logger.notice("child stopped after leadership loss", ("child.pid", JSON(Int(pid))),
                              ("child.exit_code", JSON(Int(status.exitCode))))
                return .leadershipLost
            default:
                logger.debug("reaped zombie", ("pid", JSON(Int(pid))), ("status", .string(status.description)))
            }
        }
        return nil
    }
}

/// What the election thread and the main thread share.
final class LeaderHost: ElectionHost, @unchecked Sendable {
    struct State: Sendable {
        var leading = false
        var lostReason: String?
        var releaseRequested = false
        var outcome: ElectionRunner.Outcome?
    }

    private let state = Mutex(State())
    private let inbox: SignalInbox
    /// Wakes the election thread's pause between renews (release requests).
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init(inbox: SignalInbox) throws(ProcessError) {
        self.inbox = inbox
        var fds: [Int32] = [0, 0]
        guard cshimsPipe(&fds) == 0 else {
            throw ProcessError(.ioFailed, errno: errno, context: "Cannot create the election wake-up pipe")
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    func snapshot() -> State { state.withLock { $0 } }

    // Called by the main thread.
    func requestRelease() {
        state.withLock { $0.releaseRequested = true }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    // Called by the election thread.
    func finished(_ outcome: ElectionRunner.Outcome) {
        state.withLock { $0.outcome = outcome }
        inbox.wake()
    }

    var now: MonotonicClock.Instant { .now }
    var wall: WallTime { wallNow() }
    var releaseRequested: Bool { state.withLock { $0.releaseRequested } }

    func pause(until: MonotonicClock.Instant) -> Bool {
        while true {
            let left = MonotonicClock.now.duration(to: until)
            if left <= .zero { return releaseRequested }
            var fds = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            let ms = Int32(min(Int64(Int32.max), max(1, (left.nanoseconds + 999_999) / 1_000_000)))
            let n = poll(&fds, 1, ms)
            if n > 0 {
                var buffer = [UInt8](repeating: 0, count: 64)
                _ = read(wakeRead, &buffer, buffer.count)
                if releaseRequested { return true }
            }
        }
    }

    func becameLeader() {
        state.withLock { $0.leading = true }
        inbox.wake()
    }

    func lostLeadership(reason: String) {
        state.withLock { $0.lostReason = reason }
        inbox.wake()
    }
}

import CShims

func cshimsPipe(_ fds: inout [Int32]) -> Int32 {
    fds.withUnsafeMutableBufferPointer { cshims_pipe_cloexec_nonblock($0.baseAddress!) }
}

/// Runs `body` on a new POSIX thread (it inherits the caller's signal mask,
/// so signals stay blocked there and reach only the signalfd).
func startThread(_ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let box = Unmanaged.passRetained(Box(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { raw in
        let box = Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue() as! Box
        box.body()
        return nil
    }, box)
    if rc != 0 {
        writeAll(fd: 2, "kube-leader: cannot start the election thread (error \(rc))\n")
        exit(ExitCode.failure)
    }
    pthread_detach(thread)
}
