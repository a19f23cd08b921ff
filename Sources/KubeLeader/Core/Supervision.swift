/// Supervision of the child as a pure phase machine: events in, actions out.
///
/// What the main thread of kube-leader decides (start the child once we lead,
/// forward signals, stop the child when the lock is lost or cannot be proven,
/// kill what the child leaves behind, release the lock, exit with which code)
/// without doing any of it. The loop `SupervisorDriver` carries out each
/// `Action` (spawn, kill, reap, ask the election thread to release, log,
/// exit) through its ports (production: `Main/MainThreadSupervisor.swift`; the
/// simulation: its simulated processes) and reports what happened as the
/// next `Event`, passing the time; the unit tests drive it with made-up
/// instants, in the style of `Election.step`.
///
/// ## Phases (docs/supervision.md has the full table)
/// ```
/// standby ──becameLeader──► starting ──spawned──► running ──childExited──► draining ──survivors(0)──► releasing ──► exit: child's code
///   │                          └──spawnFailed──────────────────────────────────────────────────────► releasing ──► exit 126/127
///   │                                             running ──lost / own deadline──► stopping ──childExited──► draining ──► exit 3
///   ├──SIGTERM/INT/HUP/QUIT──► cancelling ──electionEnded──► exit 128+N   (nothing started, nothing left held)
///   └──lost / electionEnded──► exit 3 / 2 / 1
///
/// --on-loss standby: draining after a loss ──survivors(0)──► (election reported the loss) ──rejoin──► standby
///                                                       └──► awaitingElection ──lost──► rejoin ──► standby
///                                                                              └──giveUpAt / signal / electionEnded──► exit 3
///
/// hand-over when asked (whatever --on-loss says):
///   running ──handOver──► stopping ──childExited──► draining ──survivors(0)──► releasing ──handedOver──► (rejoin) standby
///   (a loss meanwhile: as any loss; a terminating signal meanwhile: exit 128+N after the release)
/// ```
///
/// ## Guarantees
/// - **The child is stopped on our own clock.** The machine keeps its own
///   deadline, the send time of the last successful renew (`.renewed(sentAt:)`)
///   plus `renewDeadline`, and stops the child when it passes even if the
///   election never reports anything (its thread blocked in DNS, a write, a
///   read). SIGKILL follows by `deadline + killGrace`, whichever way the loss
///   was learnt. A child is never started once that deadline has passed.
/// - **Nothing of the child outlives the lock.** When the child exits, its
///   process group and every other descendant of kube-leader get SIGKILL
///   (`.killAll`, repeated every `drainInterval`) and are reaped *before* the
///   lock is released (tini's `-g`, plus descendants that left the group).
///   If some survive `drainTimeout` (a process stuck in the kernel), the lock
///   is not released at all: it expires by itself after one lease.
/// - **A terminating signal before we lead starts nothing and leaves nothing
///   held**: the election is asked to release (`.requestRelease`); the loop
///   answers `.electionEnded(.released)` at once when no acquire is in flight,
///   otherwise the acquire's outcome is awaited and a lock it took is released
///   before the exit (bounded by `releaseTimeout`).
///
/// ## Driving it
/// ```swift
/// var machine = Supervision(timing: .init(renewDeadline: .seconds(10), killGrace: .seconds(4)))
/// var queue: [Supervision.Event] = [.renewed(sentAt: sentAt), .becameLeader()]
/// while !queue.isEmpty {
///     for action in machine.step(queue.removeFirst(), now: clock.now) {
///         if case .exit(let exit) = action { return exit }
///         queue += perform(action)   // .spawn answers .spawned/.spawnFailed, .killAll answers .survivors(n), ...
///     }
/// }
/// // Then wait for the next event, but no later than machine.wakeAt, and step(.tick, now:).
/// ```
///
/// ## Non-guarantees
/// - Processes that are not our descendants (started through another
///   process's API: a container runtime, `systemd-run`, a remote shell) are
///   out of reach; stop them from the command's own SIGTERM handler.
/// - A frozen kube-leader (SIGSTOP) checks no deadline while frozen: no
///   fencing. After a suspend or VM pause it does, at once: production feeds
///   instants of the boot clock (`BootClock`, CLOCK_BOOTTIME, which counts
///   time suspended), with the renew send times carried over by `BootTimeline`.
public struct Supervision: Sendable {
    public typealias Instant = MonotonicClock.Instant

    public struct Timing: Sendable, Equatable {
        /// The child is stopped once this long has passed since the last
        /// successful renew was sent (`--renew-deadline`).
        public var renewDeadline: Duration
        /// SIGTERM to SIGKILL when leadership is lost (`--kill-grace`).
        public var killGrace: Duration
        /// How long to wait for the election to release the lock (or to finish
        /// an acquire that was in flight at a signal) before exiting anyway.
        /// Default: `renewDeadline` + 1 s, which bounds every lock request.
        public var releaseTimeout: Duration
        /// How long SIGKILLed processes may take to disappear (a process in
        /// uninterruptible sleep) before kube-leader gives up on them. Default 5 s.
        public var drainTimeout: Duration
        /// How often a drain sends SIGKILL again and looks for survivors
        /// (descendants forked in between; a SIGKILLed process takes a moment to
        /// exit). Default 50 ms.
        public var drainInterval: Duration

        public init(renewDeadline: Duration, killGrace: Duration, releaseTimeout: Duration? = nil,
                    drainTimeout: Duration = .seconds(5), drainInterval: Duration = .milliseconds(50)) {
            self.renewDeadline = renewDeadline
            self.killGrace = killGrace
            self.releaseTimeout = releaseTimeout ?? renewDeadline + .seconds(1)
            self.drainTimeout = drainTimeout
            self.drainInterval = drainInterval
        }
    }

    /// How kube-leader ends; each case has its documented exit code
    /// (docs/kube-leader-design.md, "Exit paths").
    public enum Exit: Sendable, Equatable {
        /// The child exited (code, or 128+N for signal N), what it left behind
        /// was killed, and the lock was released.
        case childExited(TerminationStatus)
        /// A terminating signal arrived before we led: nothing was started and
        /// nothing is left held (128+N).
        case signalWhileWaiting(Signal)
        /// Leadership was lost, or not renewed within the renew deadline; the
        /// child was stopped (exit 3).
        case leadershipLost
        /// The API refused us for a reason retrying cannot fix (exit 2).
        case configuration(String)
        /// The command could not be started (126 not executable, 127 not found).
        case spawnFailed(code: Int32, message: String)
        /// The election ended without holding the lock and without being asked
        /// to (a bug rather than a fault; exit 1 instead of waiting forever).
        case internalError(String)

        public var code: Int32 {
            switch self {
            case .childExited(let status): status.exitCode
            case .signalWhileWaiting(let signal): ExitCode.forSignal(signal.rawValue)
            case .leadershipLost: ExitCode.leadershipLost
            case .configuration: ExitCode.usage
            case .spawnFailed(let code, _): code
            case .internalError: ExitCode.failure
            }
        }
    }

    /// How the election thread ended, as far as supervision cares.
    public enum ElectionEnd: Sendable, Equatable {
        /// It holds nothing and will write nothing more: released, never held,
        /// or (answering `.requestRelease`) idle with no acquire in flight.
        case released
        /// It led and lost the lock.
        case lost(reason: String)
        /// An error retrying cannot fix (401, 403, untrusted certificate).
        case configuration(String)
    }

    public enum Event: Sendable, Equatable {
        /// Only time has passed (the loop woke at `wakeAt`, or for nothing).
        case tick
        /// A signal for kube-leader (never SIGCHLD: exits arrive as
        /// `.childExited` and `.survivors`).
        case signal(Signal)
        /// A write that holds the lock succeeded (the acquire, then each renew
        /// that others can observe); `sentAt` is when it was sent. The own
        /// deadline runs from the latest one. Report it before `.becameLeader`.
        case renewed(sentAt: Instant)
        /// The election took the lock: start the child. `environment` holds
        /// extra variables for the child (lock facts such as a fencing token).
        case becameLeader(environment: [String: String] = [:])
        /// The election lost the lock or cannot prove it holds it.
        case lost(reason: String)
        /// The election thread is done (see `ElectionEnd`).
        case electionEnded(ElectionEnd)
        /// The lock asks us to hand over to `to` (a preferred holder): stop the
        /// child as on a loss (SIGTERM, kill grace, SIGKILL, the whole group
        /// reaped), then release and stand by again.
        case handOver(to: String)
        /// The election released the lock for the hand-over and waits to
        /// stand by again (`.rejoin`).
        case handedOver
        /// Answer to `.spawn`: the child is forked, leading its own process
        /// group; its exec may still be pending (a binary on a hung mount),
        /// and it is stopped like any child when the deadline passes.
        case spawned(pid: Int32)
        /// The command could not be started (126/127, message says why):
        /// answer to `.spawn`, or later, once the exec of a spawned child
        /// failed (that child then exits 127 and `.childExited` follows).
        case spawnFailed(code: Int32, message: String)
        /// The child itself has exited and was reaped.
        case childExited(TerminationStatus)
        /// Answer to `.killAll`: how many of the child's processes (its group
        /// and every other descendant of kube-leader) are still there after
        /// SIGKILL and reaping; 0 when all are gone and reaped.
        case survivors(Int)
    }

    public enum Action: Sendable, Equatable {
        /// Start the command in its own process group with `environment` added
        /// to ours; answer `.spawned` or `.spawnFailed`.
        case spawn(environment: [String: String])
        /// Send `signal` to the child's process group; a group that is gone
        /// (ESRCH) is not an error.
        case signalGroup(Signal)
        /// SIGKILL the child's process group and every other living
        /// descendant, reap what has exited (the child as `.childExited`),
        /// then answer `.survivors(n)`.
        case killAll
        /// Ask the election to give the lock up: release it if held, release
        /// an acquire that lands, start no new one. Answer
        /// `.electionEnded(.released)` at once if it holds nothing and has no
        /// write in flight; otherwise `.electionEnded` follows when it ends.
        case requestRelease
        /// `--on-loss standby`: the old child's group is gone and the
        /// election reported the loss; tell it to stand by again (a new
        /// term: what the mailbox said about the old one is forgotten).
        /// No answer.
        case rejoin
        /// Write a log line.
        indirect case log(Note)
        /// End kube-leader with `exit.code`.
        indirect case exit(Exit)
    }

    /// A log line the loop writes: a fixed message plus data.
    public struct Note: Sendable, Equatable {
        public enum Level: Sendable, Equatable { case debug, info, notice, warning, error }
        public var level: Level
        public var message: String
        public var fields: [Field]

        public struct Field: Sendable, Equatable {
            public var key: String
            public var value: JSON
            public init(_ key: String, _ value: JSON) { self.key = key; self.value = value }
        }

        public init(_ level: Level, _ message: String, _ fields: [Field] = []) {
            self.level = level
            self.message = message
            self.fields = fields
        }
    }

    public enum Phase: Sendable, Equatable {
        /// Standing by for the lock; nothing started.
        case standby
        /// A terminating signal came before we led: waiting for the election
        /// to give up (and release an acquire that landed), then exit 128+N.
        case cancelling(Signal, giveUpAt: Instant)
        /// `.spawn` asked; waiting for its answer.
        case starting
        /// We lead and the child runs.
        case running(pid: Int32)
        /// Leadership lost: SIGTERM sent to the group, SIGKILL at `killAt`;
        /// exit 3 anyway at `giveUpAt` if the child cannot be reaped.
        case stopping(pid: Int32, killAt: Instant, killed: Bool, giveUpAt: Instant)
        /// The child is gone: SIGKILL everything it left behind until nothing
        /// is left, then release the lock (`release`) or exit.
        case draining(Exit, release: Bool, nextKillAt: Instant, giveUpAt: Instant)
        /// Everything is gone; waiting for the election to release the lock.
        case releasing(Exit, giveUpAt: Instant)
        /// `--on-loss standby`: the child's group is gone after a loss the
        /// supervisor found by its own deadline; waiting for the election to
        /// report the loss too before it stands by again (exit 3 at `giveUpAt`).
        case awaitingElection(giveUpAt: Instant)
        /// Done: the `.exit` action was returned.
        case exited(Exit)
    }

    /// Signals that end kube-leader while it waits for the lock; every signal
    /// is forwarded to the child's group while it runs.
    public static let terminating: Set<Signal> = [.terminate, .interrupt, .hangup, .quit]

    public let timing: Timing
    /// What follows a loss once the child's group is gone.
    public let onLoss: OnLoss
    /// Leaderships lost so far (each stopped a child, or started none).
    public private(set) var losses = 0
    /// A terminating signal came while stopping after a loss: exit
    /// afterwards instead of standing by again.
    private var stopAfterLoss: Signal?
    public private(set) var phase: Phase = .standby
    /// Send time of the last successful renew + renew deadline: past it, the
    /// child must stop whatever the election thread says (or does not say).
    public private(set) var renewDeadline: Instant?
    /// Set once the election has ended (a release request then needs no answer).
    public private(set) var electionEnd: ElectionEnd?
    /// Set once the election reported the lock lost (also while starting).
    public private(set) var lostReason: String?
    /// Signals that arrived while the spawn was pending; forwarded once it runs.
    private var pendingSignals: [Signal] = []
    /// The current term is being handed over to this identity.
    public private(set) var handingOver: String?
    /// Hand-overs done so far (each stopped a child and stood by again).
    public private(set) var handOvers = 0

    /// The command's name, for log lines only.
    public let command: String

    public init(timing: Timing, command: String = "", onLoss: OnLoss = .exit) {
        self.timing = timing
        self.command = command
        self.onLoss = onLoss
    }

    /// The latest instant at which the loop must call `step(.tick, now:)`;
    /// nil when only an event can change anything.
    public var wakeAt: Instant? {
        switch phase {
        case .standby, .starting, .exited: return nil
        case .cancelling(_, let giveUpAt), .releasing(_, let giveUpAt), .awaitingElection(let giveUpAt): return giveUpAt
        case .running: return renewDeadline
        case .stopping(_, let killAt, let killed, let giveUpAt): return killed ? giveUpAt : killAt
        case .draining(_, _, let nextKillAt, let giveUpAt): return min(nextKillAt, giveUpAt)
        }
    }

    /// Feeds one event at `now` and returns the actions to carry out, in order
    /// (signals before log lines, so a blocked log write never delays a kill).
    /// After `.exit` it returns nothing more.
    public mutating func step(_ event: Event, now: Instant) -> [Action] {
        if case .exited = phase { return [] }
        // Facts that hold whatever the phase.
        switch event {
        case .renewed(let sentAt):
            let deadline = sentAt + timing.renewDeadline
            if renewDeadline.map({ deadline > $0 }) ?? true { renewDeadline = deadline }
        case .lost(let reason):
            if lostReason == nil { lostReason = reason }
        case .electionEnded(let end):
            if electionEnd == nil { electionEnd = end }
            if case .lost(let reason) = end, lostReason == nil { lostReason = reason }
        default:
            break
        }
        var out: [Action] = []
        handle(event, now: now, into: &out)
        if case .exited = phase { return out }
        timers(now: now, into: &out)
        return out
    }

    // MARK: Events per phase

    private mutating func handle(_ event: Event, now: Instant, into out: inout [Action]) {
        switch phase {
        case .standby:
            standby(event, now: now, into: &out)
        case .cancelling(let signal, _):
            switch event {
            case .electionEnded:
                finish(.signalWhileWaiting(signal), into: &out)
            case .becameLeader:
                Self.log(.info, "not starting the child: kube-leader is stopping; releasing the lock", into: &out)
            default:
                break
            }
        case .starting:
            switch event {
            case .spawned(let pid):
                phase = .running(pid: pid)
                Self.log(.info, "started child", [.init("child.pid", JSON(Int(pid))), .init("child.command", .string(command))], into: &out)
                for signal in pendingSignals { out.append(.signalGroup(signal)) }
                pendingSignals = []
                if let reason = lostReason {
                    beginStopping(pid: pid, reason: reason, now: now, into: &out)
                } else if let to = handingOver {
                    beginStopping(pid: pid, reason: "handing over to \(to)", handOver: true, now: now, into: &out)
                }
            case .spawnFailed(let code, let message):
                Self.log(.error, "cannot start the command", [.init("error", .string(message))], into: &out)
                beginReleasing(.spawnFailed(code: code, message: message), now: now, into: &out)
            case .signal(let signal):
                pendingSignals.append(signal)
            case .handOver(let to):
                if handingOver == nil { handingOver = to }
            default:
                break
            }
        case .running(let pid):
            switch event {
            case .signal(let signal):
                Self.forward(signal, to: pid, into: &out)
            case .childExited(let status):
                Self.log(.info, "child exited",
                         Self.exitFields(pid, status) + [.init("child.status", .string(status.description))], into: &out)
                beginDraining(.childExited(status), release: true, now: now, into: &out)
            case .spawnFailed(let code, let message):
                // Its exec failed after the fork: the child exits 127 by itself.
                Self.log(.error, "cannot start the command", [.init("error", .string(message))], into: &out)
                beginDraining(.spawnFailed(code: code, message: message), release: true, now: now, into: &out)
            case .lost(let reason):
                beginStopping(pid: pid, reason: reason, now: now, into: &out)
            case .handOver(let to):
                handingOver = to
                beginStopping(pid: pid, reason: "handing over to \(to)", handOver: true, now: now, into: &out)
            case .electionEnded(let end):
                // While we lead, the election only ends by losing; anything else
                // cannot prove we hold the lock either.
                let reason: String
                switch end {
                case .lost(let r): reason = r
                case .released: reason = "the election ended while the child ran"
                case .configuration(let m): reason = m
                }
                beginStopping(pid: pid, reason: reason, now: now, into: &out)
            default:
                break
            }
        case .stopping(let pid, _, _, _):
            switch event {
            case .signal(let signal):
                if Self.terminating.contains(signal), stopAfterLoss == nil { stopAfterLoss = signal }
                Self.forward(signal, to: pid, into: &out)
            case .childExited(let status):
                if handingOver != nil, lostReason == nil {
                    // Then release (the election renewed meanwhile); the
                    // exit is only used if the release cannot finish.
                    Self.log(.notice, "child stopped for the hand-over", Self.exitFields(pid, status), into: &out)
                    beginDraining(.leadershipLost, release: true, now: now, into: &out)
                } else {
                    Self.log(.notice, "child stopped after leadership loss", Self.exitFields(pid, status), into: &out)
                    beginDraining(.leadershipLost, release: false, now: now, into: &out)
                }
            default:
                break
            }
        case .draining(let exit, let release, _, _):
            if case .signal(let signal) = event, Self.terminating.contains(signal), stopAfterLoss == nil { stopAfterLoss = signal }
            if case .survivors(let count) = event, count <= 0 {
                if release, handingOver != nil, lostReason != nil {
                    afterLoss(now: now, into: &out)   // lost during the hand-over: a loss
                } else if release {
                    beginReleasing(exit, now: now, into: &out)
                } else if exit == .leadershipLost {
                    afterLoss(now: now, into: &out)
                } else {
                    finish(exit, into: &out)
                }
            }
        case .awaitingElection:
            switch event {
            case .lost:
                afterLoss(now: now, into: &out)
            case .electionEnded:
                finish(.leadershipLost, into: &out)
            case .signal(let signal) where Self.terminating.contains(signal):
                Self.log(.info, "stopping after leadership loss", [.init("signal", .string(signal.name))], into: &out)
                finish(.leadershipLost, into: &out)
            default:
                break
            }
        case .releasing(let exit, _):
            switch event {
            case .handedOver where handingOver != nil && stopAfterLoss == nil:
                standByAfterHandOver(into: &out)
            case .handedOver, .electionEnded:
                finish(handingOver != nil ? stopAfterLoss.map { .signalWhileWaiting($0) } ?? exit : exit, into: &out)
            case .signal(let signal) where handingOver != nil && Self.terminating.contains(signal):
                if stopAfterLoss == nil { stopAfterLoss = signal }
            default:
                break
            }
        case .exited:
            break
        }
    }

    private mutating func standby(_ event: Event, now: Instant, into out: inout [Action]) {
        switch event {
        case .becameLeader(let environment):
            if let reason = lostReason {
                Self.log(.warning, "not starting the child: leadership already lost", [.init("reason", .string(reason))], into: &out)
                afterLoss(now: now, into: &out)
            } else if let deadline = renewDeadline, now < deadline {
                phase = .starting
                out.append(.spawn(environment: environment))
            } else {
                Self.log(.warning, "not starting the child: the renew deadline passed before it could start", into: &out)
                afterLoss(now: now, into: &out)
            }
        case .lost(let reason):
            Self.log(.warning, "leadership lost before the child started", [.init("reason", .string(reason))], into: &out)
            afterLoss(now: now, into: &out)
        case .electionEnded(let end):
            switch end {
            case .configuration(let message): finish(.configuration(message), into: &out)
            case .lost: finish(.leadershipLost, into: &out)
            case .released: finish(.internalError("the election ended while standing by, without being asked to"), into: &out)
            }
        case .signal(let signal) where Self.terminating.contains(signal):
            phase = .cancelling(signal, giveUpAt: now + timing.releaseTimeout)
            out.append(.requestRelease)
            Self.log(.info, "stopping before leading", [.init("signal", .string(signal.name))], into: &out)
        default:
            break
        }
    }

    // MARK: Transitions

    /// Leadership lost (or unproven), or a hand-over: SIGTERM the group now,
    /// SIGKILL it by the own deadline + kill grace at the latest, however
    /// late we learnt it.
    private mutating func beginStopping(pid: Int32, reason: String, handOver: Bool = false, now: Instant, into out: inout [Action]) {
        let from = min(now, renewDeadline ?? now)
        let killAt = from + timing.killGrace
        phase = .stopping(pid: pid, killAt: killAt, killed: false, giveUpAt: max(killAt, now) + timing.drainTimeout)
        out.append(.signalGroup(.terminate))
        Self.log(handOver ? .notice : .warning, handOver ? "stopping child: handing over" : "stopping child: leadership lost", [
            .init("child.pid", JSON(Int(pid))), .init("reason", .string(reason)),
            .init("kill_grace", .string(DurationText.format(timing.killGrace))),
        ], into: &out)
    }

    /// After a loss, nothing of the child left (or none started): exit 3, or
    /// with `--on-loss standby` stand by again once the election has
    /// reported the loss too (until then it may still hold, or think it
    /// holds, the lock: its `.lost` must come first, or its end).
    private mutating func afterLoss(now: Instant, into out: inout [Action]) {
        if case .awaitingElection = phase {} else { losses += 1 }
        guard onLoss == .standby, stopAfterLoss == nil, electionEnd == nil else {
            if let signal = stopAfterLoss {
                Self.log(.info, "not standing by again: kube-leader is stopping", [.init("signal", .string(signal.name))], into: &out)
            }
            return finish(.leadershipLost, into: &out)
        }
        guard let reason = lostReason else {
            phase = .awaitingElection(giveUpAt: now + timing.releaseTimeout)
            return
        }
        beginNewTerm(into: &out)
        Self.log(.notice, "child stopped and reaped; standing by again", [
            .init("losses", JSON(losses)), .init("reason", .string(reason)),
        ], into: &out)
    }

    /// A new term after a loss or a hand-over: nothing of the old one counts
    /// any more; the election may stand by again.
    private mutating func beginNewTerm(into out: inout [Action]) {
        phase = .standby
        renewDeadline = nil
        lostReason = nil
        handingOver = nil
        pendingSignals = []
        out.append(.rejoin)
    }

    /// The hand-over's release is done: a new term, as after a loss.
    private mutating func standByAfterHandOver(into out: inout [Action]) {
        handOvers += 1
        let to = handingOver ?? ""
        beginNewTerm(into: &out)
        Self.log(.notice, "handed over; standing by again", [
            .init("hand_overs", JSON(handOvers)), .init("lock.preferred_holder", .string(to)),
        ], into: &out)
    }

    /// The child is gone: kill what it left behind, then release or exit.
    private mutating func beginDraining(_ exit: Exit, release: Bool, now: Instant, into out: inout [Action]) {
        phase = .draining(exit, release: release, nextKillAt: now + timing.drainInterval, giveUpAt: now + timing.drainTimeout)
        out.append(.killAll)
    }

    private mutating func beginReleasing(_ exit: Exit, now: Instant, into out: inout [Action]) {
        if electionEnd != nil { return finish(exit, into: &out) }
        phase = .releasing(exit, giveUpAt: now + timing.releaseTimeout)
        out.append(.requestRelease)
    }

    /// Appends a log line: one call instead of a note, its box and an append
    /// at every site: a smaller binary.
    @inline(never)
    private static func log(_ level: Note.Level, _ message: String, _ fields: [Note.Field] = [], into out: inout [Action]) {
        out.append(.log(Note(level, message, fields)))
    }

    /// `child.pid` and `child.exit_code`, for the log line of a child's end.
    private static func exitFields(_ pid: Int32, _ status: TerminationStatus) -> [Note.Field] {
        [.init("child.pid", JSON(Int(pid))), .init("child.exit_code", JSON(Int(status.exitCode)))]
    }

    /// Passes `signal` on to the child's process group, and logs it.
    private static func forward(_ signal: Signal, to pid: Int32, into out: inout [Action]) {
        out.append(.signalGroup(signal))
        Self.log(.debug, "forwarding signal", [.init("signal", .string(signal.name)), .init("child.pid", JSON(Int(pid)))], into: &out)
    }

    private mutating func finish(_ exit: Exit, into out: inout [Action]) {
        phase = .exited(exit)
        out.append(.exit(exit))
    }

    // MARK: Time

    private mutating func timers(now: Instant, into out: inout [Action]) {
        switch phase {
        case .cancelling(let signal, let giveUpAt) where now >= giveUpAt:
            Self.log(.warning, "gave up waiting for the lock request in flight; a lock it took expires by itself", into: &out)
            finish(.signalWhileWaiting(signal), into: &out)
        case .running(let pid):
            if let deadline = renewDeadline, now >= deadline {
                beginStopping(pid: pid, reason: "no successful renew within the renew deadline (\(DurationText.format(timing.renewDeadline)))",
                              now: now, into: &out)
                timers(now: now, into: &out)
            }
        case .stopping(let pid, let killAt, false, let giveUpAt) where now >= killAt:
            phase = .stopping(pid: pid, killAt: killAt, killed: true, giveUpAt: giveUpAt)
            out.append(.killAll)
            Self.log(.warning, "killing child: it did not stop within the kill grace", [.init("child.pid", JSON(Int(pid)))], into: &out)
        case .stopping(let pid, _, true, let giveUpAt) where now >= giveUpAt:
            Self.log(.error, "the child survived SIGKILL; exiting without it", [.init("child.pid", JSON(Int(pid)))], into: &out)
            finish(.leadershipLost, into: &out)
        case .draining(let exit, _, _, let giveUpAt) where now >= giveUpAt:
            Self.log(.error, "processes of the child survived SIGKILL; not releasing the lock (it expires by itself)", into: &out)
            finish(exit, into: &out)
        case .draining(let exit, let release, let nextKillAt, let giveUpAt) where now >= nextKillAt:
            phase = .draining(exit, release: release, nextKillAt: now + timing.drainInterval, giveUpAt: giveUpAt)
            out.append(.killAll)
        case .releasing(let exit, let giveUpAt) where now >= giveUpAt:
            Self.log(.warning, "gave up releasing the lock; it expires by itself", into: &out)
            finish(exit, into: &out)
        case .awaitingElection(let giveUpAt) where now >= giveUpAt:
            Self.log(.error, "the election did not report the loss in time; exiting as with --on-loss exit", into: &out)
            finish(.leadershipLost, into: &out)
        default:
            break
        }
    }
}
