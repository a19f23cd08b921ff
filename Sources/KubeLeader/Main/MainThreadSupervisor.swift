import CShims
import KLCore
import KLKube
import KLLeader
import KLProcess
import KLSystem
import Synchronization

/// The supervisor: the main thread, in the shape of tini's loop. The loop
/// and its decisions are in KLCore (`SupervisorDriver` around the phase
/// machine `Supervision`); this class is its ports: fork/exec, signals,
/// kill, reap (Process/), the mailbox of the election thread (`ElectionMailbox`),
/// the log, the boot clock.
///
/// Two threads, one job each:
/// - the **election thread** runs `ElectionRunner` (blocking HTTP calls with
///   deadlines) and reports through `ElectionMailbox`: renewed(sentAt:), became
///   leader, lost, done;
/// - the **main thread** (`run`) owns the child: it waits on a signalfd for
///   signals, child exits, the exec report and wake-ups from the election
///   thread, and lets the driver take a turn. It never waits for the
///   election thread, nor for the exec: the machine keeps its own renew
///   deadline and wakes the loop for it.
///
/// Every way out is one of `Exit`'s cases, each with its exit code.
final class MainThreadSupervisor: SupervisorPorts {
    /// How kube-leader ends (`Supervision.Exit`: childExited,
    /// signalWhileWaiting, leadershipLost, configuration, spawnFailed,
    /// internalError).
    typealias Exit = Supervision.Exit

    let config: LeaderConfig
    /// The main thread's logger: never blocks (`MainThreadLogSink`).
    let logger: Logger
    /// The election thread's logger (blocking writes, as everywhere else).
    let electionLogger: Logger
    let inbox: SignalInbox
    let host: ElectionMailbox
    /// The child's start while its exec has not been reported (it may hang
    /// on a dead mount: the loop never waits for it).
    var start: SupervisedStart?
    /// The optional surfaces (docs/surfaces.md): the child's environment
    /// comes from their shared status, which also hears of loss and the child's exit.
    var statusPublisher: StatusPublisher?

    init(config: LeaderConfig, logger: Logger, inbox: SignalInbox) throws(ProcessError) {
        self.config = config
        // The election thread may block on a full stderr; this thread must not.
        var own = logger
        if logger.sink is StandardErrorSink { own.sink = MainThreadLogSink(fallback: logger.sink) }
        self.logger = own
        electionLogger = logger
        self.inbox = inbox
        self.host = try ElectionMailbox(inbox: inbox)
    }

    /// Starts the election thread and runs the main loop until an exit.
    func run(store: any LockStore, requestTimeout: Duration) -> Exit {
        var election = Election(identity: config.identity, timing: config.timing)
        election.coordinated = config.coordinated != nil   // --coordinated: never acquire, wait to be named
        let runner = ElectionRunner(election: election, store: store, host: host,
                                    logger: electionLogger,
                                    requestTimeout: requestTimeout, onLoss: config.onLoss)
        let host = self.host
        startThread {
            let outcome = runner.run()
            host.finished(outcome)
        }
        let machine = Supervision(timing: Supervision.Timing(renewDeadline: config.renewDeadline, killGrace: config.killGrace),
                                  command: config.command.first ?? "", onLoss: config.onLoss)
        let driver = SupervisorDriver(machine: machine, ports: self)
        while true {
            // Until the next event, but no later than the machine's next
            // deadline, and at most one second (as tini's sigtimedwait).
            let timeout = driver.wakeAt.map { max(.zero, min(.seconds(1), now.duration(to: $0))) } ?? .seconds(1)
            var signals: [Signal] = []
            var execReported = false
            for event in inbox.wait(timeout: timeout) {
                switch event {
                case .signal(let signal, _): signals.append(signal)
                case .readable: execReported = true
                case .wake: break
                }
            }
            if let exit = driver.turn(signals: signals, execReported: execReported) { return exit }
        }
    }

    // MARK: SupervisorPorts

    /// The boot clock: the leader's own deadlines count time suspended.
    var now: MonotonicInstant { BootClock.now }

    func spawn(environment additions: [String: String]) -> Supervision.Event {
        var environment: [String: String]?
        if !additions.isEmpty {
            var merged = ProcessEnvironment.current()
            for (key, value) in additions { merged[key] = value }
            environment = merged
        }
        do {
            // Returns once forked: the exec is reported through `start`.
            let started = try ChildProcess.startSupervised(config.command, environment: environment)
            start = started
            inbox.watchReadable(started.execReport)
            // Its exit is reported through a pidfd even if a SIGCHLD were lost.
            inbox.watchExit(of: started.child)
            return .spawned(pid: started.child.pid)
        } catch {
            return .spawnFailed(code: error.exitCode, message: error.description)
        }
    }

    func signalGroup(_ group: Int32, _ signal: Signal) {
        do {
            if try !ChildProcess(pid: group).signalGroup(signal) {
                logger.warning("child already gone; signal not delivered", ("signal", .string(signal.name)), ("child.pid", JSON(Int(group))))
            }
        } catch {
            logger.warning("cannot signal child", ("signal", .string(signal.name)), ("error", .string(error.description)))
        }
    }

    func killAll(group: Int32) -> (reaped: [(pid: Int32, status: TerminationStatus)], survivors: Int) {
        let round = ProcessTree.killAll(group: group)
        if !round.signalled.isEmpty {
            logger.notice("killed the remaining processes of the child", ("pids", .array(round.signalled.map { JSON(Int($0)) })))
        }
        return (round.reaped, round.survivors)
    }

    func reapAll() -> [(pid: Int32, status: TerminationStatus)] { Reaper.reapAll() }

    func requestRelease() -> Bool { host.requestRelease() }

    func readMailbox() -> ElectionReport {
        var report = host.snapshot().report   // its renew send time is on the boot clock
        report.childEnvironment = statusPublisher?.sharedStatus.snapshot.childEnvironment ?? [:]
        return report
    }

    func rejoin() {
        host.rejoin()
    }

    func execOutcome() -> Supervision.Event? {
        guard let result = start?.checkExec() else { return nil }
        start = nil
        if case .failure(let error) = result { return .spawnFailed(code: error.exitCode, message: error.description) }
        return nil
    }

    func log(_ note: Supervision.Note) {
        logger.log(Self.level(note.level), note.message, note.fields.map { ($0.key, $0.value) })
    }

    func observed(_ event: Supervision.Event) {
        switch event {
        case .lost(let reason): statusPublisher?.sharedStatus.lost(reason: reason)
        case .handedOver:
            // The release for the preferred holder is done (counted as
            // `LockSession.handOvers` counts it). The mailbox names the
            // preferred holder until the rejoin, which comes after this.
            statusPublisher?.sharedStatus.handedOver(to: host.snapshot().handOverTo ?? "")
        case .childExited(let status): statusPublisher?.sharedStatus.childExited(code: status.exitCode)
        default: break
        }
    }

    static func level(_ level: Supervision.Note.Level) -> LogLevel {
        switch level {
        case .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        }
    }
}


/// Runs `body` on a new POSIX thread (it inherits the caller's signal mask,
/// so signals stay blocked there and reach only the signalfd).
func startThread(_ body: @escaping @Sendable () -> Void) {
    let rc = startDetachedThread(body)
    if rc != 0 {
        writeAll(fd: 2, "kube-leader: cannot start the election thread (error \(rc))\n")
        exitNow(ExitCode.failure)
    }
}
