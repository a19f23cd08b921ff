import KLCore

/// Signals the main thread of a simulated kube-leader receives.
enum SimSignal: String {
    case child = "SIGCHLD"
    case terminate = "SIGTERM"
    case kill = "SIGKILL"
}

/// How a simulated kube-leader process ends (mirror of `MainThreadSupervisor.Exit`).
enum SimExit: Equatable {
    case childExited(Int32)
    case signalWhileWaiting
    case leadershipLost
    case configuration(String)
    case other(String, Int32)

    init(_ exit: Supervision.Exit) {
        switch exit {
        case .childExited(let status): self = .childExited(status.exitCode)
        case .signalWhileWaiting: self = .signalWhileWaiting
        case .leadershipLost: self = .leadershipLost
        case .configuration(let m): self = .configuration(m)
        default: self = .other("\(exit)", exit.code)
        }
    }

    var code: Int32 {
        switch self {
        case .childExited(let c): c
        case .signalWhileWaiting: 143
        case .leadershipLost: 3
        case .configuration: 2
        case .other(_, let code): code
        }
    }
}

/// The main thread of a simulated kube-leader: the production
/// `SupervisorDriver` (KLCore, the loop `Main/MainThreadSupervisor.swift` runs) around
/// the real `Supervision` machine. Only its ports are simulated: spawn,
/// signal and kill act on the world's processes, the mailbox is the
/// replica's shared state, the clock is the replica's local clock.
final class SimSupervisor: SupervisorPorts {
    unowned let world: World
    let replica: Int
    let incarnation: Int
    private var driver: SupervisorDriver!
    /// Simulated child ids are pids minus 100.
    private static let pidBase = 100

    init(world: World, replica: Int, incarnation: Int, timing: Supervision.Timing, onLoss: OnLoss = .exit) {
        self.world = world
        self.replica = replica
        self.incarnation = incarnation
        driver = SupervisorDriver(machine: Supervision(timing: timing, command: "child", onLoss: onLoss), ports: self)
    }

    private var host: ReplicaProcess { world.process(replica, incarnation)! }

    /// One turn after a wake-up (`inbox.wait` returned): the signals in the
    /// inbox, then the driver's turn; the next turn no later than `wakeAt`.
    func wake() {
        let signals = host.drainInbox().map { signal -> Signal in
            switch signal {
            case .child: .child
            case .terminate: .terminate
            case .kill: .kill
            }
        }
        if let exit = driver.turn(signals: signals) {
            world.exitProcess(replica, incarnation, SimExit(exit))
            return
        }
        if let wakeAt = driver.wakeAt { world.mainTimer(replica, incarnation, at: wakeAt) }
    }

    // MARK: SupervisorPorts

    /// CLOCK_BOOTTIME, as in production (`MainThreadSupervisor.now`): the leader's own
    /// deadlines count time suspended.
    var now: MonotonicInstant { world.config.supervisorOnBootClock ? world.bootNow(replica) : world.localNow(replica) }

    func spawn(environment: [String: String]) -> Supervision.Event {
        .spawned(pid: Int32(world.spawnChild(replica, incarnation) + Self.pidBase))
    }

    func signalGroup(_ group: Int32, _ signal: Signal) {
        if !world.signalGroup(Int(group) - Self.pidBase, signal == .kill ? .kill : .terminate) {
            world.trace(replica, "supervisor: child already gone; \(signal.name) not delivered")
        }
    }

    func killAll(group: Int32) -> (reaped: [(pid: Int32, status: TerminationStatus)], survivors: Int) {
        let round = world.killAll(replica, incarnation)
        return (Self.statuses(round.reaped), round.survivors)
    }

    func reapAll() -> [(pid: Int32, status: TerminationStatus)] { Self.statuses(host.reapAll()) }

    func requestRelease() -> Bool { world.requestRelease(replica, incarnation) }

    func readMailbox() -> ElectionReport {
        var report = host.mailbox.report
        if world.config.supervisorOnBootClock {
            report.lastRenewSentAt = report.lastRenewSentAt.map { world.bootInstant(replica, ofMonotonic: $0) }
        }
        return report
    }

    func rejoin() { world.hostRejoin(replica, incarnation) }

    /// Simulated execs never fail or hang (a spawn is immediate).
    func execOutcome() -> Supervision.Event? { nil }

    func log(_ note: Supervision.Note) { world.trace(replica, "supervisor: \(note.message)") }

    func observed(_ event: Supervision.Event) {}

    /// World process ids and exit codes (128+N for signal N) as pids and statuses.
    private static func statuses(_ list: [(Int, Int32)]) -> [(pid: Int32, status: TerminationStatus)] {
        list.map { (id, code) in
            (Int32(id + pidBase), code >= 128 ? .signaled(Signal(rawValue: code - 128)) : .exited(code))
        }
    }
}
