/// The supervisor's main loop around the phase machine `Supervision`: one
/// turn per wake-up, every action carried out through `SupervisorPorts`.
///
/// Production (Main/MainThreadSupervisor.swift) implements the ports with the Process
/// layer (fork/exec, kill(-pgid), waitpid, the /proc walk) and the mailbox
/// the election thread writes; the simulation implements them with its
/// simulated processes. Both run this code, so what the simulation checks is
/// the loop kube-leader runs.
///
/// A turn: the exec report (if the loop saw it), then each signal (SIGCHLD:
/// reap), then what the election reported since the last turn, then `.tick`;
/// each action's answer is fed back before the next event. The loop then
/// sleeps until its next event, but no later than `wakeAt`.
public final class SupervisorDriver {
    public private(set) var machine: Supervision
    private let ports: any SupervisorPorts
    /// The child, once spawned (its pid is its process group).
    public private(set) var child: Int32?
    /// What of the mailbox has been turned into events already.
    private var seen = ElectionReport()

    public init(machine: Supervision, ports: any SupervisorPorts) {
        self.machine = machine
        self.ports = ports
    }

    /// The latest instant of the next turn (nil: only an event can matter).
    public var wakeAt: MonotonicInstant? { machine.wakeAt }

    /// One turn of the main loop; returns the exit once the machine decides it.
    public func turn(signals: [Signal], execReported: Bool = false) -> Supervision.Exit? {
        var events: [Supervision.Event] = []
        if execReported { events += execOutcome() }
        for signal in signals {
            events += signal == .child ? reaped(ports.reapAll()) : [.signal(signal)]
        }
        events += electionEvents()
        events.append(.tick)
        return feed(events)
    }

    /// Steps the machine through `events` and the answers of its actions.
    private func feed(_ events: [Supervision.Event]) -> Supervision.Exit? {
        var queue = events
        var next = 0
        while next < queue.count {
            let event = queue[next]
            next += 1
            ports.observed(event)
            for action in machine.step(event, now: ports.now) {
                if case .exit(let exit) = action { return exit }
                queue += perform(action)
            }
        }
        return nil
    }

    /// Carries out one action; returns the events that answer it.
    private func perform(_ action: Supervision.Action) -> [Supervision.Event] {
        switch action {
        case .spawn(let environment):
            let answer = ports.spawn(environment: environment)
            if case .spawned(let pid) = answer { child = pid }
            return [answer]
        case .signalGroup(let signal):
            if let child { ports.signalGroup(child, signal) }
            return []
        case .killAll:
            guard let child else { return [.survivors(0)] }
            let round = ports.killAll(group: child)
            return reaped(round.reaped) + [.survivors(round.survivors)]
        case .requestRelease:
            let busy = ports.requestRelease()
            var events = electionEvents()
            if !busy, seen.ended == nil { events.append(.electionEnded(.released)) }
            return events
        case .rejoin:
            // The old term is over: its child is reaped, and what the
            // mailbox said about it (leading, lost, renews) is cleared by the
            // port before the election hears it may go on.
            child = nil
            ports.rejoin()
            seen = ElectionReport(ended: seen.ended)
            return []
        case .log(let note):
            ports.log(note)
            return []
        case .exit:
            return []
        }
    }

    /// What the election reported since the last look, as events: renews
    /// before "became leader", losses before the end.
    private func electionEvents() -> [Supervision.Event] {
        let report = ports.readMailbox()
        var events: [Supervision.Event] = []
        if let sentAt = report.lastRenewSentAt, sentAt != seen.lastRenewSentAt { events.append(.renewed(sentAt: sentAt)) }
        if report.leading, !seen.leading { events.append(.becameLeader(environment: report.childEnvironment)) }
        if let to = report.handOverTo, seen.handOverTo == nil { events.append(.handOver(to: to)) }
        if let reason = report.lostReason, seen.lostReason == nil { events.append(.lost(reason: reason)) }
        if report.handedOver, !seen.handedOver { events.append(.handedOver) }
        if let end = report.ended, seen.ended == nil { events.append(.electionEnded(end)) }
        seen = report
        return events
    }

    /// How the child's exec went, once known (a failure is `.spawnFailed`).
    private func execOutcome() -> [Supervision.Event] {
        ports.execOutcome().map { [$0] } ?? []
    }

    /// The child's exit as an event (after its exec report, complete once
    /// it is gone); other reaped processes are only logged.
    private func reaped(_ list: [(pid: Int32, status: TerminationStatus)]) -> [Supervision.Event] {
        var events: [Supervision.Event] = []
        for (pid, status) in list {
            if pid == child {
                events += execOutcome()
                events.append(.childExited(status))
            } else {
                ports.log(Supervision.Note(.debug, "reaped zombie", [.init("pid", JSON(Int(pid))), .init("status", .string(status.description))]))
            }
        }
        return events
    }
}

/// What the election thread reported, as the main loop reads it.
public struct ElectionReport: Sendable, Equatable {
    /// It took the lock.
    public var leading = false
    /// It lost the lock or cannot prove it holds it.
    public var lostReason: String?
    /// It is done.
    public var ended: Supervision.ElectionEnd?
    /// Send time of the last write that held the lock, on the machine's clock.
    public var lastRenewSentAt: MonotonicInstant?
    /// Extra environment for the child, known once leading.
    public var childEnvironment: [String: String] = [:]
    /// The lock asked us to hand over to this identity (its preferred holder).
    public var handOverTo: String?
    /// The hand-over's release is done; the election waits to stand by again.
    public var handedOver = false

    public init(leading: Bool = false, lostReason: String? = nil, ended: Supervision.ElectionEnd? = nil,
                lastRenewSentAt: MonotonicInstant? = nil, childEnvironment: [String: String] = [:]) {
        self.leading = leading
        self.lostReason = lostReason
        self.ended = ended
        self.lastRenewSentAt = lastRenewSentAt
        self.childEnvironment = childEnvironment
    }
}

/// Everything the supervisor's loop does to the world.
public protocol SupervisorPorts: AnyObject {
    /// Now, on the clock of the machine (production: the boot clock).
    var now: MonotonicInstant { get }
    /// Starts the command in its own process group with `environment` added:
    /// `.spawned(pid:)` once forked, or `.spawnFailed`.
    func spawn(environment: [String: String]) -> Supervision.Event
    /// Sends `signal` to process group `group` (a gone group is logged, not an error).
    func signalGroup(_ group: Int32, _ signal: Signal)
    /// SIGKILLs the group and every other descendant, reaps what exited;
    /// `survivors`: how many are still there.
    func killAll(group: Int32) -> (reaped: [(pid: Int32, status: TerminationStatus)], survivors: Int)
    /// Reaps every exited child (we are PID 1 or a subreaper).
    func reapAll() -> [(pid: Int32, status: TerminationStatus)]
    /// Asks the election to give the lock up; true while it holds the lock
    /// or has an acquire in flight (its end then comes through the mailbox).
    func requestRelease() -> Bool
    /// The mailbox the election thread writes.
    func readMailbox() -> ElectionReport
    /// `--on-loss standby`, or after a hand-over: clear the mailbox's
    /// leading, lost, renew and hand-over facts of the old term (and the
    /// hand-over's release request), then let the election (waiting in
    /// `LockSession.Command.awaitRejoin`) stand by again.
    func rejoin()
    /// How the child's exec went, once and when known: `.spawnFailed` when it
    /// failed; nil otherwise (not known yet, succeeded, already reported).
    func execOutcome() -> Supervision.Event?
    /// Writes a log line; never blocks the loop.
    func log(_ note: Supervision.Note)
    /// Every event the machine is fed (for status surfaces); may do nothing.
    func observed(_ event: Supervision.Event)
}

extension Supervision.ElectionEnd {
    /// What the main thread hears when the election thread's session ends
    /// (production's `ElectionMailbox` and the simulation's mailbox both use it).
    public init(_ outcome: LockSession.Outcome) {
        switch outcome {
        case .released: self = .released
        case .lost(let reason): self = .lost(reason: reason)
        case .configurationError(let message): self = .configuration(message)
        }
    }
}
