import KLCore

/// Signals the main thread of a simulated kube-leader receives.
enum SimSignal: String {
    case child = "SIGCHLD"
    case terminate = "SIGTERM"
    case kill = "SIGKILL"
}

/// How a simulated kube-leader process ends (mirror of `Supervisor.Exit`).
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

/// The main thread of a simulated kube-leader.
protocol SimSupervisor: AnyObject {
    /// One turn of the main loop: the signals in the inbox, then what the
    /// election thread reported, then the timers.
    func wake()
}

/// A faithful model of `Main/Supervisor.swift` as it was BEFORE the phase
/// machine (the tini-shaped main loop at commit 210000c): `handle(events:)`, `checkElection`, `checkTimers`,
/// `startChild`, `release(then:)`, `forward`, `reap`, case by case. It acts
/// only on what the election thread reports (no deadline of its own), and it
/// releases the lock as soon as the child exits (no kill of the child's
/// process group first).
final class LegacySupervisorMirror: SimSupervisor {
    unowned let world: World
    let replica: Int
    let incarnation: Int
    let killGrace: Duration
    let renewDeadline: Duration

    enum Phase {
        case waiting
        case running(child: Int)
        case stopping(child: Int, killAt: MonotonicInstant, killed: Bool)
        case releasing(SimExit, giveUpAt: MonotonicInstant)
    }
    private(set) var phase: Phase = .waiting

    init(world: World, replica: Int, incarnation: Int, killGrace: Duration, renewDeadline: Duration) {
        self.world = world
        self.replica = replica
        self.incarnation = incarnation
        self.killGrace = killGrace
        self.renewDeadline = renewDeadline
    }

    private var host: ReplicaProcess { world.process(replica, incarnation)! }
    private var now: MonotonicInstant { world.localNow(replica) }

    func wake() {
        let signals = host.drainInbox()
        if let exit = handle(signals) {
            world.exitProcess(replica, incarnation, exit)
            return
        }
        // waitTimeout(): the main loop wakes by itself at killAt / giveUpAt.
        switch phase {
        case .stopping(_, let killAt, false): world.mainTimer(replica, incarnation, at: killAt)
        case .releasing(_, let giveUpAt): world.mainTimer(replica, incarnation, at: giveUpAt)
        default: break
        }
    }

    /// Supervisor.handle(events:)
    private func handle(_ signals: [SimSignal]) -> SimExit? {
        for signal in signals {
            if signal == .child {
                if let exit = reap() { return exit }
            } else if let exit = forward(signal) {
                return exit
            }
        }
        return checkElection() ?? checkTimers()
    }

    /// Supervisor.checkElection
    private func checkElection() -> SimExit? {
        let state = host
        switch phase {
        case .waiting:
            if let outcome = state.outcome, case .configurationError(let message) = outcome {
                return .configuration(message)
            }
            if state.lostReason != nil { return .leadershipLost }
            if state.leading { return startChild() }
        case .running(let child):
            if let reason = state.lostReason {
                world.trace(replica, "supervisor: stopping child: leadership lost (\(reason))")
                send(.terminate, to: child)
                phase = .stopping(child: child, killAt: now + killGrace, killed: false)
            }
        case .stopping:
            break
        case .releasing(let exit, _):
            if state.outcome != nil { return exit }
        }
        return nil
    }

    /// Supervisor.checkTimers
    private func checkTimers() -> SimExit? {
        switch phase {
        case .stopping(let child, let killAt, false) where now >= killAt:
            world.trace(replica, "supervisor: killing child: it did not stop within the kill grace")
            send(.kill, to: child)
            phase = .stopping(child: child, killAt: killAt, killed: true)
        case .releasing(let exit, let giveUpAt) where now >= giveUpAt:
            world.trace(replica, "supervisor: gave up releasing the lock")
            return exit
        default:
            break
        }
        return nil
    }

    /// Supervisor.startChild (spawning never fails here).
    private func startChild() -> SimExit? {
        let child = world.spawnChild(replica, incarnation)
        phase = .running(child: child)
        return nil
    }

    /// Supervisor.release(then:)
    private func release(then exit: SimExit) -> SimExit? {
        world.requestRelease(replica, incarnation)
        phase = .releasing(exit, giveUpAt: now + max(renewDeadline, .seconds(1)))
        return host.outcome != nil ? exit : nil
    }

    /// Supervisor.forward
    private func forward(_ signal: SimSignal) -> SimExit? {
        switch phase {
        case .running(let child), .stopping(let child, _, _):
            send(signal, to: child)
        case .waiting:
            guard signal == .terminate else { return nil }
            world.trace(replica, "supervisor: stopping before leading")
            if host.leading { return release(then: .signalWhileWaiting) }
            return .signalWhileWaiting
        case .releasing:
            break
        }
        return nil
    }

    private func send(_ signal: SimSignal, to child: Int) {
        if !world.signalGroup(child, signal) {
            world.trace(replica, "supervisor: child already gone; \(signal.rawValue) not delivered")
        }
    }

    /// Supervisor.reap: every zombie; acts when it was our child.
    private func reap() -> SimExit? {
        for (pid, code) in host.reapAll() {
            switch phase {
            case .running(let child) where child == pid:
                world.trace(replica, "supervisor: child exited (\(code))")
                if let exit = release(then: .childExited(code)) { return exit }
            case .stopping(let child, _, _) where child == pid:
                world.trace(replica, "supervisor: child stopped after leadership loss")
                return .leadershipLost
            default:
                break
            }
        }
        return nil
    }
}

/// The main thread of kube-leader today: the REAL `Supervision` phase machine
/// (Core/Supervision.swift), driven as `Main/Supervisor.swift` drives it:
/// each turn feeds the signals from the inbox (SIGCHLD as `.childExited` of
/// the child after reaping), then what the election thread reported since the
/// last turn (`electionEvents`), then `.tick`; every action is carried out
/// and its answer fed back (`feed`/`perform`). The loop wakes at `wakeAt`.
final class PhaseMachineSupervisor: SimSupervisor {
    unowned let world: World
    let replica: Int
    let incarnation: Int
    private var machine: Supervision
    private var child: Int?
    /// What the last turn saw of the shared state (`Supervisor.seen`).
    private var seenLeading = false
    private var seenLost: String?
    private var seenOutcome: RunnerOutcome?
    private var seenRenew: MonotonicInstant?

    init(world: World, replica: Int, incarnation: Int, timing: Supervision.Timing) {
        self.world = world
        self.replica = replica
        self.incarnation = incarnation
        self.machine = Supervision(timing: timing, command: "child")
    }

    private var host: ReplicaProcess { world.process(replica, incarnation)! }

    func wake() {
        var events: [Supervision.Event] = []
        for signal in host.drainInbox() {
            if signal == .child {
                events += reaped(host.reapAll())
            } else {
                events.append(.signal(signal == .terminate ? .terminate : .kill))
            }
        }
        events += electionEvents()
        events.append(.tick)
        if let exit = feed(events) {
            world.exitProcess(replica, incarnation, SimExit(exit))
            return
        }
        if let wakeAt = machine.wakeAt { world.mainTimer(replica, incarnation, at: wakeAt) }
    }

    /// Supervisor.feed
    private func feed(_ events: [Supervision.Event]) -> Supervision.Exit? {
        var queue = events
        var next = 0
        while next < queue.count {
            let event = queue[next]
            next += 1
            for action in machine.step(event, now: world.localNow(replica)) {
                if case .exit(let exit) = action { return exit }
                queue += perform(action)
            }
        }
        return nil
    }

    /// Supervisor.perform
    private func perform(_ action: Supervision.Action) -> [Supervision.Event] {
        switch action {
        case .spawn:
            let id = world.spawnChild(replica, incarnation)
            child = id
            return [.spawned(pid: Int32(id + 100))]
        case .signalGroup(let signal):
            guard let child else { return [] }
            if !world.signalGroup(child, signal == .kill ? .kill : .terminate) {
                world.trace(replica, "supervisor: child already gone; \(signal.name) not delivered")
            }
            return []
        case .killAll:
            guard child != nil else { return [.survivors(0)] }
            let round = world.killAll(replica, incarnation)
            return reaped(round.reaped) + [.survivors(round.survivors)]
        case .requestRelease:
            let busy = world.requestRelease(replica, incarnation)
            var events = electionEvents()
            if !busy, seenOutcome == nil { events.append(.electionEnded(.released)) }
            return events
        case .log(let note):
            world.trace(replica, "supervisor: \(note.message)")
            return []
        case .exit:
            return []
        }
    }

    /// Supervisor.electionEvents: what changed in the shared state.
    private func electionEvents() -> [Supervision.Event] {
        let state = host
        var events: [Supervision.Event] = []
        if let sentAt = state.lastRenewSentAt, sentAt != seenRenew { events.append(.renewed(sentAt: sentAt)) }
        if state.leading, !seenLeading { events.append(.becameLeader(environment: [:])) }
        if let reason = state.lostReason, seenLost == nil { events.append(.lost(reason: reason)) }
        if let outcome = state.outcome, seenOutcome == nil {
            switch outcome {
            case .released: events.append(.electionEnded(.released))
            case .lost(let reason): events.append(.electionEnded(.lost(reason: reason)))
            case .configurationError(let message): events.append(.electionEnded(.configuration(message)))
            }
        }
        seenLeading = state.leading
        seenLost = state.lostReason
        seenOutcome = state.outcome
        seenRenew = state.lastRenewSentAt
        return events
    }

    /// Supervisor.reaped: the child's exit as `.childExited`, others logged.
    private func reaped(_ list: [(Int, Int32)]) -> [Supervision.Event] {
        var events: [Supervision.Event] = []
        for (id, code) in list where id == child {
            events.append(.childExited(code >= 128 ? .signaled(Signal(rawValue: code - 128)) : .exited(code)))
        }
        return events
    }
}
