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

    var code: Int32 {
        switch self {
        case .childExited(let c): c
        case .signalWhileWaiting: 143
        case .leadershipLost: 3
        case .configuration: 2
        }
    }
}

/// The main thread of a simulated kube-leader.
protocol SimSupervisor: AnyObject {
    /// One turn of the main loop: the signals in the inbox, then what the
    /// election thread reported, then the timers.
    func wake()
}

/// A faithful model of the CURRENT `Main/Supervisor.swift` (the tini-shaped
/// main loop): `handle(events:)`, `checkElection`, `checkTimers`,
/// `startChild`, `release(then:)`, `forward`, `reap`, case by case. It acts
/// only on what the election thread reports (no deadline of its own), and it
/// releases the lock as soon as the child exits (no kill of the child's
/// process group first).
final class CurrentSupervisorMirror: SimSupervisor {
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
