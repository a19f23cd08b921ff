import KLCore

/// What the simulation is run with (one seed's world).
public struct SimConfig {
    public var seed: UInt64
    public var replicas: Int
    public var kind: LockKind
    public var timing: Election.Timing
    public var killGrace: Duration
    /// kube-leader is PID 1 of its container (its exit kills the container's
    /// processes) or not (shareProcessNamespace, tini in front).
    public var pid1: [Bool]
    /// One-way network latency, uniform per message (ms).
    public var latencyMs: ClosedRange<Int64> = 1...3
    /// Writes of other objects of the lock's resource per second (they
    /// advance the resourceVersion and push the lock out of the watch history).
    public var noisePerSecond: Double = 2
    /// The watch cache: how many writes of the resource it remembers.
    public var historyCapacity: Int64 = 1000
    /// How a child behaves (drawn per spawn).
    public var child = ChildBehaviour()
    /// Delay before a kube-leader that exited (or crashed) starts again;
    /// nil: it stays down.
    public var restartDelayMs: ClosedRange<Int64>? = 500...10_000
    /// Stop at the first overlap (random seeds: the world is broken after
    /// it) or run on (scenarios). Budget and liveness violations never stop a run.
    public var stopAtFirstOverlap = true
    /// Keep the event log (replays, scenarios).
    public var trace = false
    /// Outside the guarantees (see `FaultKind`): allow a SIGKILL of a
    /// kube-leader that is not PID 1 while its child's background process
    /// runs, and fresh starts within a lease after a deletion or clear.
    public var crashWithOrphans = false
    public var freshStartAfterDelete = false
    /// Clock rates of the replicas in ppm (replica i gets `[i % count]`);
    /// nil: each drawn from ±1000 ppm.
    public var clockPPM: [Int64]?
    /// The supervisor's clock: CLOCK_BOOTTIME as kube-leader runs it (true),
    /// or CLOCK_MONOTONIC as before issue 20 row 3 (to show the difference).
    public var supervisorOnBootClock = true
    /// `--on-loss` of each replica (replica i gets `[i % count]`).
    public var onLoss: [OnLoss] = [.exit]
    func onLoss(of r: Int) -> OnLoss { onLoss.isEmpty ? .exit : onLoss[r % onLoss.count] }
    /// `--coordinated` (issue 22 part 3): each replica's LeaseCandidate
    /// version (cycled); the world's election controller names the holder.
    /// nil: off.
    public var coordinatedVersions: [String]?

    public init(seed: UInt64, replicas: Int, kind: LockKind, timing: Election.Timing, killGrace: Duration, pid1: [Bool]? = nil) {
        self.seed = seed
        self.replicas = replicas
        self.kind = kind
        self.timing = timing
        self.killGrace = killGrace
        self.pid1 = pid1 ?? Array(repeating: true, count: replicas)
    }
}

/// How children behave.
public struct ChildBehaviour {
    /// Time a child takes to exit after SIGTERM (ms); `ignoresTerm` of them never do.
    public var termDelayMs: ClosedRange<Int64> = 1...500
    public var ignoresTermProbability = 0.05
    public var slowTermProbability = 0.15
    /// A child that leaves a background process in its process group
    /// (`sh -c 'worker & exit 0'`).
    public var grandchildProbability = 0.0
    public init() {}
}

/// An invariant that did not hold.
public struct Violation: CustomStringConvertible {
    public enum Kind: String { case overlap, liveness, budget }
    public var kind: Kind
    public var time: SimTime
    public var message: String
    public var description: String { "\(kind.rawValue) at \(time.traceText): \(message)" }
}

/// One process started from a leader's command, or a foreign leader's work.
struct SimProcess {
    let id: Int
    /// Which leadership it belongs to: (replica, incarnation) of the
    /// kube-leader that started it, or a foreign leader. Processes of two
    /// different terms alive at once are an overlap.
    let term: Int
    let replica: Int
    let incarnation: Int
    let isGrandchild: Bool
    let group: Int
    var alive = true
    let bornAt: SimTime
    var diedAt: SimTime = 0
    /// Time from SIGTERM to exit; nil: ignores SIGTERM.
    let termDelay: SimTime?
    var exitScheduled = false
    var exitToken = 0
    var exitCode: Int32 = 0
}

/// One kube-leader process (an incarnation of a replica): the election
/// thread, the main thread, and what they share (`LeaderHost`).
final class ReplicaProcess {
    let incarnation: Int
    var runner: ElectionThread!
    var supervisor: SimSupervisor!
    // LeaderHost.State
    var leading = false
    var lostReason: String?
    var releaseRequested = false
    var outcome: LockSession.Outcome?
    var lastRenewSentAt: MonotonicInstant?
    /// The election thread's wake-up pipe holds a byte (LeaderHost).
    var wakePipe = false
    var acquiring = false
    var holding = false
    /// `--on-loss standby`: the supervisor let the election stand by again.
    var rejoinGranted = false
    /// Issue 22 part 2 (LeaderHost.State): the hand-over asked, and done.
    var handOverTo: String?
    var handedOver = false
    /// Leaderships of this process so far: each is a term of its own.
    var leaderships = 0
    // The main thread's inbox (signalfd) and zombies to reap.
    private var inbox: [SimSignal] = []
    var zombies: [(Int, Int32)] = []
    var mainWakeScheduled = false
    var mainTimerToken = 0
    var runnerToken = 0
    /// The election thread is blocked (DNS, a stuck write) until then.
    var frozenUntil: SimTime = 0
    /// The election thread's one pending sleep, and the times of the timer
    /// events already in the queue for it (re-armed lazily: a standby moves
    /// its deadline on every watch event without a queue entry each time).
    var timerWanted: (token: Int, at: SimTime)?
    var timerArmed: [SimTime] = []
    var frozenInputs: [RunnerInput] = []
    // Request budget of a standby (local clock, ns).
    var lastReadAt: Int64?
    var lastWatchAt: Int64?
    var lastWriteAt: Int64?
    /// The last write lost a race: one read and one watch at once are
    /// allowed (who won? follow them).
    var lostWriteRead = false
    /// The last LIST was forbidden: the GET that falls back for it is part
    /// of the same read (a Role without "list").
    var fallbackRead = false
    var lostWriteWatch = false
    var child: Int?

    init(incarnation: Int) { self.incarnation = incarnation }

    func post(_ s: SimSignal) { inbox.append(s) }
    func drainInbox() -> [SimSignal] { defer { inbox.removeAll() }; return inbox }
    func reapAll() -> [(Int, Int32)] { defer { zombies.removeAll() }; return zombies }
}

/// Network conditions of one replica.
struct NetState {
    var partitionUntil: SimTime = -1
    var refuse = false
    var slowUntil: SimTime = -1
    var slowMs: ClosedRange<Int64> = 0...0
    /// The delay hits before the server acts (a write lands late) or after.
    var slowBeforeServer = false
    var errorUntil: SimTime = -1
    var errorProbability = 0.0
    var errorProcessedProbability = 0.0
    var errorCode = 500
    /// The kept-alive connection died without a FIN or RST (the API server
    /// behind the ClusterIP is gone; conntrack still sends there): the next
    /// request on it gets no answer at all. The client closes a connection
    /// whose request timed out, so the one after goes on a fresh connection.
    var deadConnection = false
}

final class Replica {
    let index: Int
    let identity: String
    let clock: ReplicaClock
    let pid1: Bool
    var process: ReplicaProcess?
    var incarnations = 0
    var net = NetState()
    var exits: [SimExit] = []
    var starts = 0
    /// `--on-loss standby`: times a process of it stood by again after a loss.
    var rejoins = 0
    /// Hand-overs asked of this replica's elections (issue 22 part 2).
    var handOvers = 0
    /// Times its host was (or is) suspended (`Suspend.swift`).
    var suspensions: [(from: SimTime, until: SimTime)] = []

    init(index: Int, identity: String, clock: ReplicaClock, pid1: Bool) {
        self.index = index
        self.identity = identity
        self.clock = clock
        self.pid1 = pid1
    }
}

/// An in-flight request.
struct InFlight {
    let replica: Int
    let incarnation: Int
    var request: SimRequest?
    let kindName: String
    let sentAt: SimTime
    /// The client's deadline; its event is queued only once the response
    /// cannot come before it.
    var deadline: SimTime = 0
    var deadlineQueued = false
    var response: SimResponse?
    var done = false
    var reachedServer = false
}

/// The simulated world: a scheduler on true time, the API server, the
/// replicas with their clocks, the network, the processes, the faults, and
/// the invariants, checked on every step.
public final class World {
    public let config: SimConfig
    var rng: SimRandom
    var queue = EventQueue()
    public private(set) var now: SimTime = 0
    let server: SimAPIServer
    var replicas: [Replica] = []
    var requests: [InFlight] = []
    private var watches: [Int: WatchConnection] = [:]
    private var nextWatch = 0
    var processes: [SimProcess] = []
    private var aliveProcesses: [Int] = []
    var steps: [ScriptStep] = []
    var checkpoints: [SimTime] = []
    /// The first violations (at most 50 kept), and how many of each kind.
    public private(set) var violations: [Violation] = []
    public private(set) var overlapCount = 0
    public private(set) var budgetCount = 0
    public private(set) var livenessCount = 0
    public var violationCount: Int { overlapCount + budgetCount + livenessCount }
    public private(set) var traceLines: [String] = []
    // Safety accounting.
    private var lastDeathOfTerm: [(term: Int, at: SimTime)] = []
    public private(set) var minSafetyMargin: SimTime?
    public private(set) var minSafetyMarginAt: SimTime = 0
    public private(set) var overlapTotal: SimTime = 0
    private var overlapSince: SimTime?
    public private(set) var childStarts = 0
    public private(set) var leaderStarts: [(replica: Int, at: SimTime)] = []
    public private(set) var leaderEnds: [(replica: Int, at: SimTime)] = []
    public private(set) var requestCount = 0
    public private(set) var standbyReads: [Int] = []
    public private(set) var standbyWatches: [Int] = []
    var foreignTerms = 0
    /// LeaseCandidates and the election controller (Coordination.swift).
    var coordination = SimCoordination()
    public private(set) var eventsProcessed = 0

    public init(config: SimConfig) {
        self.config = config
        self.rng = SimRandom(seed: config.seed)
        self.server = SimAPIServer(kind: config.kind, noisePerSecond: config.noisePerSecond,
                                   historyCapacity: config.historyCapacity)
        for i in 0..<config.replicas {
            let drawn = rng.int(Int64(-1000)...1000)
            let ppm = config.clockPPM.map { $0[i % $0.count] } ?? drawn
            let offset = rng.int(Int64(1_000_000_000)...1_000_000_000_000_000)
            let wall = Int64(1_795_000_000) * SimTime.second + rng.int(Int64(-2_000)...2_000) * SimTime.ms
            replicas.append(Replica(index: i, identity: "replica-\(i)",
                                    clock: ReplicaClock(offset: offset, ppm: ppm, wallEpochNanos: wall),
                                    pid1: i < config.pid1.count ? config.pid1[i] : true))
        }
        standbyReads = Array(repeating: 0, count: config.replicas)
        standbyWatches = Array(repeating: 0, count: config.replicas)
    }

    // MARK: Running

    /// Runs events until `end` (true time), or the first violation when so configured.
    public func run(until end: SimTime) {
        while let next = queue.nextTime, next <= end {
            let (time, event) = queue.pop()!
            now = time
            eventsProcessed += 1
            dispatch(event)
            if config.stopAtFirstOverlap && overlapCount > 0 { return }
        }
        now = max(now, end)
        closeOverlap()
        if let since = overlapSince {  // still overlapping at the end
            overlapTotal += now - since
            overlapSince = now
        }
    }

    private func dispatch(_ event: SimEvent) {
        switch event {
        case .serverReceives(let id): serverReceives(id)
        case .clientReceives(let id): clientReceives(id)
        case .requestDeadline(let id):
            guard !requests[id].done else { return }
            requests[id].done = true
            requests[id].request = nil
            trace(requests[id].replica, "\(requests[id].kindName) timed out")
            notifyRunner(requests[id].replica, requests[id].incarnation, .response(request: id, .timedOut))
        case .watchArrival(let id):
            guard let conn = watches[id], let item = conn.popInTransit() else { return }
            if conn.clientClosed { return }
            if replicas[conn.replica].net.partitionUntil > now && !replicas[conn.replica].net.refuse, !isBroken(item) {
                return  // lost on the way
            }
            conn.arrived.append(item)
            notifyRunner(conn.replica, conn.incarnation, .watchItem(watch: id))
        case .watchServerTimeout(let id):
            guard let conn = watches[id], conn.serverAlive, !conn.clientClosed else { return }
            deliver(conn, .ended)
            conn.serverAlive = false
        case .watchBookmark(let id):
            guard let conn = watches[id], conn.serverAlive, !conn.clientClosed else { return }
            deliver(conn, .bookmark(resourceVersion: String(server.currentRV(now))))
            queue.push(now + server.bookmarkInterval, .watchBookmark(watch: id))
        case .runnerTimer(let r, let inc, let token):
            if token == -1 { notifyRunner(r, inc, .timer(token: -1)); return }
            guard let p = process(r, inc) else { return }
            if let i = p.timerArmed.firstIndex(of: now) { p.timerArmed.remove(at: i) }
            guard let wanted = p.timerWanted else { return }
            if wanted.at <= now {
                p.timerWanted = nil
                notifyRunner(r, inc, .timer(token: wanted.token))
            } else if !p.timerArmed.contains(where: { $0 <= wanted.at }) {
                p.timerArmed.append(wanted.at)
                queue.push(wanted.at, .runnerTimer(replica: r, incarnation: inc, token: 0))
            }
        case .mainWake(let r, let inc):
            if let resume = resumeTime(r) { return queue.push(resume, event) }
            guard let p = process(r, inc) else { return }
            p.mainWakeScheduled = false
            p.supervisor.wake()
        case .mainTimer(let r, let inc, let token):
            if let resume = resumeTime(r) { return queue.push(resume, event) }
            guard let p = process(r, inc), token == p.mainTimerToken else { return }
            p.supervisor.wake()
        case .processExit(let id, let token):
            if processes[id].replica >= 0, let resume = resumeTime(processes[id].replica) { return queue.push(resume, event) }
            guard processes[id].alive, processes[id].exitToken == token else { return }
            processDied(id, code: processes[id].exitCode)
        case .fault(let index):
            steps[index].apply(self)
        case .restart(let r):
            // A fresh kube-leader cannot tell a deleted (or cleared) lock from a
            // new one: outside the guarantees, so it waits unless asked for.
            if !config.freshStartAfterDelete, let ended = holdEndedByOthersAt,
               now - ended < config.timing.leaseDuration.nanoseconds {
                let at = ended + config.timing.leaseDuration.nanoseconds
                trace(r, "restart postponed to \(at.traceText): a lease after the lock was deleted or cleared (fresh-start-after-delete not drawn)")
                queue.push(at, .restart(replica: r))
                return
            }
            startReplica(r)
        case .checkpoint(let index):
            checkLiveness(index)
        case .foreign:
            break
        case .electionController:
            electionControllerTick()
        }
    }

    private func isBroken(_ item: WatchItem) -> Bool { if case .broken = item { return true }; return false }

    // MARK: Clocks

    /// CLOCK_MONOTONIC of replica `r`: stops while its host is suspended.
    func localNow(_ r: Int) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: replicas[r].clock.local(now - suspended(r, before: now)))
    }

    func wallNow(_ r: Int) -> WallTime {
        let ns = replicas[r].clock.wallNanos(now)
        return WallTime(seconds: ns / 1_000_000_000, nanoseconds: Int32(ns % 1_000_000_000))
    }

    /// The true time at which replica `r`'s clock reads `instant` (never in the past).
    func trueTime(_ r: Int, _ instant: MonotonicInstant) -> SimTime {
        let clock = replicas[r].clock
        let l = instant.nanoseconds
        if l &- clock.offset > (1 << 60) { return SimTime.max / 4 }
        return max(now, activeToTrue(r, clock.trueTime(atLocal: l)))
    }

    // MARK: Tracing

    func trace(_ r: Int, _ text: @autoclosure () -> String) {
        guard config.trace else { return }
        let inc = replicas[r].process?.incarnation ?? replicas[r].incarnations
        traceLines.append("\(now.traceText) r\(r)#\(inc) \(text())")
    }

    func trace(_ text: @autoclosure () -> String) {
        guard config.trace else { return }
        traceLines.append("\(now.traceText) world \(text())")
    }

    // MARK: Processes of kube-leader

    func process(_ r: Int, _ inc: Int) -> ReplicaProcess? {
        guard let p = replicas[r].process, p.incarnation == inc else { return nil }
        return p
    }

    /// Starts kube-leader on replica `r` (a new process: a fresh election).
    func startReplica(_ r: Int) {
        let replica = replicas[r]
        guard replica.process == nil else { return }
        replica.incarnations += 1
        replica.starts += 1
        let p = ReplicaProcess(incarnation: replica.incarnations)
        replica.process = p
        var election = Election(identity: replica.identity, timing: config.timing)
        coordinatedStart(r, election: &election)
        p.runner = ElectionThread(world: self, replica: r, incarnation: p.incarnation, election: election,
                                requestTimeout: config.timing.renewDeadline, onLoss: config.onLoss(of: r))
        p.supervisor = SimSupervisor(world: self, replica: r, incarnation: p.incarnation,
                                     timing: Supervision.Timing(renewDeadline: config.timing.renewDeadline, killGrace: config.killGrace),
                                     onLoss: config.onLoss(of: r))
        trace(r, "kube-leader starts")
        p.runner.start()
    }

    /// kube-leader exits (or is killed): its threads stop, its watches close;
    /// the child dies with it through PR_SET_PDEATHSIG; other processes of its
    /// group die too only when it was PID 1 of the container.
    func exitProcess(_ r: Int, _ inc: Int, _ exit: SimExit?) {
        guard let p = process(r, inc) else { return }
        let replica = replicas[r]
        replica.process = nil
        if let exit {
            replica.exits.append(exit)
            trace(r, "kube-leader exits (\(exit), code \(exit.code))")
        } else {
            trace(r, "kube-leader killed")
        }
        p.runner.closeWatch()
        coordinatedExit(r, clean: exit != nil)
        for id in aliveProcesses where processes[id].replica == r && processes[id].incarnation == inc {
            let pdeathsig = !processes[id].isGrandchild && processes[id].id == p.child
            if pdeathsig || replica.pid1 {
                processDied(id, code: 137)
            }
        }
        if let delay = config.restartDelayMs {
            queue.push(now + rng.millis(delay), .restart(replica: r))
        }
    }

    func crash(_ r: Int) {
        guard let p = replicas[r].process else { return }
        if !config.crashWithOrphans && !replicas[r].pid1,
           aliveProcesses.contains(where: { processes[$0].replica == r && processes[$0].incarnation == p.incarnation && processes[$0].isGrandchild }) {
            trace(r, "crash skipped: not PID 1 and its child left a background process (crash-with-orphans not drawn)")
            return
        }
        exitProcess(r, p.incarnation, nil)
    }

    /// When someone last deleted the lock or cleared its holder.
    var holdEndedByOthersAt: SimTime?

    /// Whether a deletion or clear by others stays within the documented
    /// guarantees: every running standby has seen the hold that ends (its
    /// last observation names the current holder). A replica that never saw
    /// that hold cannot tell a deleted lock from a new one (`Election`'s
    /// non-guarantees).
    func holdEndMayHappen(force: Bool = false) -> Bool {
        if config.freshStartAfterDelete || force { return true }
        guard let holder = server.snapshot?.record?.holderIdentity, !holder.isEmpty else { return true }
        for r in replicas.indices {
            guard let p = replicas[r].process, !p.runner.finished, p.runner.election.role == .standby else { continue }
            if p.runner.election.observed?.record?.holderIdentity != holder {
                trace(r, "deletion/clear skipped: this standby has not seen the lock held (fresh-start-after-delete not drawn)")
                return false
            }
        }
        return true
    }

    // MARK: LeaderHost

    func hostBecameLeader(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc) else { return }
        p.leading = true
        leaderStarts.append((r, now))
        trace(r, "election thread: became leader")
        wakeMain(r, inc)
    }

    func hostLostLeadership(_ r: Int, _ inc: Int, reason: String) {
        guard let p = process(r, inc) else { return }
        p.lostReason = reason
        leaderEnds.append((r, now))
        trace(r, "election thread: leadership lost: \(reason)")
        wakeMain(r, inc)
    }

    func hostFinished(_ r: Int, _ inc: Int, _ outcome: LockSession.Outcome) {
        guard let p = process(r, inc) else { return }
        p.outcome = outcome
        trace(r, "election thread finished: \(outcome)")
        wakeMain(r, inc)
    }

    /// LeaderHost.requestRelease: true when the election is busy (an acquire
    /// in flight, the lock held or led); its outcome then follows.
    @discardableResult
    func requestRelease(_ r: Int, _ inc: Int) -> Bool {
        guard let p = process(r, inc) else { return false }
        p.releaseRequested = true
        p.wakePipe = true
        let busy = p.outcome == nil && (p.acquiring || p.holding || p.leading)
        notifyRunner(r, inc, .wake)
        return busy
    }

    /// LeaderHost.beginAcquire
    func hostBeginAcquire(_ r: Int, _ inc: Int) -> Bool {
        guard let p = process(r, inc) else { return false }
        if p.releaseRequested { return false }
        p.acquiring = true
        return true
    }

    /// LeaderHost.endAcquire
    func hostEndAcquire(_ r: Int, _ inc: Int, won: Bool) {
        guard let p = process(r, inc) else { return }
        p.acquiring = false
        if won { p.holding = true }
    }

    /// LeaderHost.renewed
    func hostRenewed(_ r: Int, _ inc: Int, sentAt: MonotonicInstant) {
        guard let p = process(r, inc) else { return }
        p.lastRenewSentAt = sentAt
        wakeMain(r, inc)
    }

    /// LeaderHost.rejoin: the old term is forgotten, the election may go on.
    func hostRejoin(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc) else { return }
        p.leading = false
        p.lostReason = nil
        p.lastRenewSentAt = nil
        p.acquiring = false
        p.holding = false
        p.child = nil
        if p.handedOver { p.releaseRequested = false }   // the hand-over's own request
        p.handOverTo = nil
        p.handedOver = false
        p.rejoinGranted = true
        replicas[r].rejoins += 1
        trace(r, "supervisor: standing by again")
        notifyRunner(r, inc, .rejoin)
    }

    /// `inbox.wake()`: the main thread runs a turn a moment later.
    func wakeMain(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc), !p.mainWakeScheduled else { return }
        p.mainWakeScheduled = true
        queue.push(now + 20_000, .mainWake(replica: r, incarnation: inc))
    }

    func mainTimer(_ r: Int, _ inc: Int, at instant: MonotonicInstant) {
        guard let p = process(r, inc) else { return }
        p.mainTimerToken += 1
        let at = config.supervisorOnBootClock ? bootTrueTime(r, instant) : trueTime(r, instant)
        queue.push(at, .mainTimer(replica: r, incarnation: inc, token: p.mainTimerToken))
    }

    func runnerTimer(_ r: Int, _ inc: Int, at instant: MonotonicInstant) -> Int {
        guard let p = process(r, inc) else { return -1 }
        p.runnerToken += 1
        let at = trueTime(r, instant)
        p.timerWanted = (p.runnerToken, at)
        if !p.timerArmed.contains(where: { $0 <= at }) {
            p.timerArmed.append(at)
            queue.push(at, .runnerTimer(replica: r, incarnation: inc, token: 0))
        }
        return p.runnerToken
    }

    /// Hands an input to the election thread, unless it is blocked (then it
    /// gets it, in order, when it unblocks).
    func notifyRunner(_ r: Int, _ inc: Int, _ input: RunnerInput) {
        guard let p = process(r, inc) else { return }
        if p.frozenUntil > now {
            if p.frozenInputs.isEmpty { queue.push(p.frozenUntil, .runnerTimer(replica: r, incarnation: inc, token: -1)) }
            p.frozenInputs.append(input)
            return
        }
        if !p.frozenInputs.isEmpty {
            let pending = p.frozenInputs
            p.frozenInputs.removeAll()
            for i in pending { p.runner.receive(i) }
        }
        if case .timer(-1) = input { return }
        p.runner.receive(input)
    }

    // MARK: Network

    private func latency(_ r: Int) -> SimTime {
        var d = rng.millis(config.latencyMs) / 2 + rng.int(Int64(0)...999_999)
        let net = replicas[r].net
        if net.slowUntil > now && !net.slowBeforeServer { d += rng.millis(net.slowMs) }
        return d
    }

    /// Sends a request; returns its id. The response (or the deadline) comes
    /// back to the election thread as `.response`.
    func send(_ request: SimRequest, from r: Int, _ inc: Int, timeout: Duration, standby: Bool) -> Int {
        let id = requests.count
        requests.append(InFlight(replica: r, incarnation: inc, request: request, kindName: config.trace ? request.name : "", sentAt: now))
        requestCount += 1
        trace(r, "send \(request.name)#\(id)")
        if standby, let p = process(r, inc) { checkBudget(r, p, request) }
        requests[id].deadline = trueTime(r, localNow(r) + timeout)
        if replicas[r].net.deadConnection {
            replicas[r].net.deadConnection = false
            trace(r, "\(request.name)#\(id) sent on a dead connection: no answer")
            requests[id].request = nil
            queueDeadline(id, unlessBefore: nil)
            return id
        }
        let net = replicas[r].net
        if net.partitionUntil > now {
            if net.refuse {
                let arrive = now + rng.int(Int64(100_000)...1_000_000)
                queue.push(arrive, .clientReceives(request: id))
                requests[id].request = nil
                queueDeadline(id, unlessBefore: arrive)
            } else {
                queueDeadline(id, unlessBefore: nil)  // dropped: only the deadline answers
            }
            return id
        }
        var arrive = now + latency(r)
        if net.slowUntil > now && net.slowBeforeServer { arrive += rng.millis(net.slowMs) }
        queue.push(arrive, .serverReceives(request: id))
        queueDeadline(id, unlessBefore: arrive)
        return id
    }

    /// Queues the deadline of request `id` unless its answer arrives before it.
    private func queueDeadline(_ id: Int, unlessBefore arrival: SimTime?) {
        guard !requests[id].deadlineQueued else { return }
        if let arrival, arrival < requests[id].deadline { return }
        requests[id].deadlineQueued = true
        queue.push(max(now, requests[id].deadline), .requestDeadline(request: id))
    }

    private var refusedResponse: SimResponse { .transport("connection refused") }

    private func serverReceives(_ id: Int) {
        guard let request = requests[id].request else { return }
        requests[id].reachedServer = true
        let r = requests[id].replica
        let net = replicas[r].net
        var response: SimResponse
        if net.errorUntil > now && rng.chance(net.errorProbability) {
            if rng.chance(net.errorProcessedProbability) { _ = handleAtServer(request, r, id) }
            response = .status(net.errorCode, "InternalError")
        } else {
            response = handleAtServer(request, r, id)
        }
        if case .watchOpened = response {} else { requests[id].request = nil }
        requests[id].response = response
        let arrive = now + latency(r)
        queue.push(arrive, .clientReceives(request: id))
        queueDeadline(id, unlessBefore: arrive)
    }


    private func handleAtServer(_ request: SimRequest, _ r: Int, _ id: Int) -> SimResponse {
        let inc = requests[id].incarnation
        let response = server.handle(request, at: now, deliver: { conn, item in self.deliver(conn, item) },
                                     openWatch: { self.openWatch(r, inc) })
        trace(r, "server: \(request.name)#\(id) -> \(response.traceText)")
        return response
    }

    private func clientReceives(_ id: Int) {
        let r = requests[id].replica
        let response = requests[id].response ?? refusedResponse
        requests[id].response = nil
        if requests[id].done {
            if case .watchOpened(let w) = response, let conn = watches[w] { closeWatch(conn) }
            return
        }
        let net = replicas[r].net
        if net.partitionUntil > now && !net.refuse {
            if case .watchOpened(let w) = response, let conn = watches[w] { closeWatch(conn) }
            queueDeadline(id, unlessBefore: nil)
            return  // the response is lost; the deadline answers
        }
        requests[id].done = true
        requests[id].request = nil
        trace(r, "recv \(requests[id].kindName)#\(id): \(response.traceText)")
        if process(r, requests[id].incarnation) == nil, case .watchOpened(let w) = response, let conn = watches[w] {
            closeWatch(conn)
            return
        }
        notifyRunner(r, requests[id].incarnation, .response(request: id, response))
    }

    private func openWatch(_ r: Int, _ inc: Int) -> WatchConnection {
        nextWatch += 1
        let conn = WatchConnection(id: nextWatch, replica: r, incarnation: inc)
        watches[conn.id] = conn
        queue.push(now + SimTime(server.watchSeconds) * SimTime.second, .watchServerTimeout(watch: conn.id))
        queue.push(now + server.bookmarkInterval, .watchBookmark(watch: conn.id))
        return conn
    }

    func watchConnection(_ id: Int) -> WatchConnection? { watches[id] }

    func closeWatch(_ conn: WatchConnection) {
        conn.clientClosed = true
        watches[conn.id] = nil
    }

    /// The server sends a watch item; it arrives after the replica's latency,
    /// in order. A partitioned replica's watch is dead (half-open).
    func deliver(_ conn: WatchConnection, _ item: WatchItem) {
        guard conn.serverAlive, !conn.clientClosed else { return }
        let r = conn.replica
        let net = replicas[r].net
        if net.partitionUntil > now && !net.refuse {
            conn.serverAlive = false
            return
        }
        let arrival = max(conn.lastArrival, now + latency(r))
        conn.lastArrival = arrival
        conn.inTransit.append(item)
        queue.push(arrival, .watchArrival(watch: conn.id))
    }

    /// Ends the server side of `r`'s watches: with an end of stream, a reset,
    /// or silently (half-open: the client hears nothing).
    func dropWatches(of r: Int?, how: WatchDrop) {
        for w in server.watchers where w.serverAlive && !w.clientClosed && (r == nil || w.replica == r) {
            switch how {
            case .end: deliver(w, .ended)
            case .reset:
                w.inTransit.append(.broken)
                let arrival = max(w.lastArrival, now + 200_000)
                w.lastArrival = arrival
                queue.push(arrival, .watchArrival(watch: w.id))
            case .silent: break
            }
            w.serverAlive = false
        }
    }

    // MARK: Request budget

    /// A standby's budget per retry period (its own clock): one read (GET,
    /// LIST), one watch, one acquiring write, and one read and one watch right
    /// after a write that lost a race (to learn who won and follow them).
    private func checkBudget(_ r: Int, _ p: ReplicaProcess, _ request: SimRequest) {
        let local = replicas[r].clock.local(now)
        let retry = config.timing.retryPeriod.nanoseconds
        func check(_ last: inout Int64?, _ what: String) {
            if let l = last, local - l < retry {
                violate(.budget, "replica-\(r) sent two \(what) \((local - l) / 1_000_000) ms apart while standing by (retry period \(retry / 1_000_000) ms)")
            }
            last = local
        }
        switch request {
        case .get, .list, .getPod:
            standbyReads[r] += 1
            if case .getPod = request { return }  // part of the read it follows
            if p.fallbackRead {
                p.fallbackRead = false
                if case .get = request { return }
            }
            if p.lostWriteRead {
                // One per lost write; lost writes are paced as acquiring
                // writes. Timing these against each other measured the
                // latency of the previous one, not the standby's pace.
                p.lostWriteRead = false
            } else {
                check(&p.lastReadAt, "reads")
            }
        case .watch:
            standbyWatches[r] += 1
            if p.lostWriteWatch {
                p.lostWriteWatch = false
            } else {
                check(&p.lastWatchAt, "watches")
            }
        case .create, .update:
            p.lostWriteRead = false
            p.lostWriteWatch = false
            check(&p.lastWriteAt, "acquiring writes")
        }
    }

    /// A LIST was answered 403.
    func noteListForbidden(_ r: Int, _ inc: Int) {
        process(r, inc)?.fallbackRead = true
    }

    /// The runner saw a write lose a race (409, 404).
    func noteLostWrite(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc) else { return }
        p.lostWriteRead = true
        p.lostWriteWatch = true
    }

    // MARK: Children

    /// `ChildProcess.spawnSupervised`: the child (and maybe a background
    /// process it leaves in its group) starts now.
    func spawnChild(_ r: Int, _ inc: Int) -> Int {
        let term = (r * 1_000_000 + inc) * 10_000 + min(9_999, process(r, inc)?.leaderships ?? 0)
        process(r, inc)?.leaderships += 1
        let b = config.child
        let child = newProcess(term: term, replica: r, incarnation: inc, isGrandchild: false, group: processes.count)
        process(r, inc)?.child = child
        childStarts += 1
        trace(r, "child \(child) starts")
        if rng.chance(b.grandchildProbability) {
            let g = newProcess(term: term, replica: r, incarnation: inc, isGrandchild: true, group: child)
            trace(r, "child \(child) leaves background process \(g)")
        }
        return child
    }

    private func termDelay() -> SimTime? {
        let b = config.child
        let u = rng.unit()
        if u < b.ignoresTermProbability { return nil }
        if u < b.ignoresTermProbability + b.slowTermProbability {
            return rng.int(Int64(0)...max(1, config.killGrace.nanoseconds * 3 / 2))
        }
        return rng.millis(b.termDelayMs)
    }

    private func newProcess(term: Int, replica: Int, incarnation: Int, isGrandchild: Bool, group: Int) -> Int {
        let id = processes.count
        processes.append(SimProcess(id: id, term: term, replica: replica, incarnation: incarnation, isGrandchild: isGrandchild,
                                    group: group, bornAt: now, termDelay: termDelay()))
        born(id)
        return id
    }

    /// A foreign leader's process (another program holding the lock).
    func startForeign() -> Int {
        foreignTerms += 1
        let id = processes.count
        processes.append(SimProcess(id: id, term: -foreignTerms, replica: -1, incarnation: 0, isGrandchild: false,
                                    group: id, bornAt: now, termDelay: 0))
        born(id)
        return id
    }

    /// Overlap check and safety margin, at every start of a process.
    private func born(_ id: Int) {
        let p = processes[id]
        aliveProcesses.append(id)
        let others = aliveProcesses.filter { processes[$0].term != p.term }
        if !others.isEmpty {
            let o = processes[others[0]]
            let what = o.isGrandchild ? "background process" : (o.replica < 0 ? "process" : "child")
            let owner = o.replica < 0 ? "" : (process(o.replica, o.incarnation) == nil ? "; its kube-leader is gone" : "; its kube-leader runs")
            violate(.overlap, "process \(id) of \(termName(p.term)) starts while \(what) \(o.id) of \(termName(o.term)) (started \(o.bornAt.traceText)\(owner)) is alive")
            if overlapSince == nil { overlapSince = now }
            return
        }
        if !p.isGrandchild {
            let lastOther = lastDeathOfTerm.filter { $0.term != p.term }.map(\.at).max()
            if let lastOther {
                let margin = now - lastOther
                if minSafetyMargin == nil || margin < minSafetyMargin! {
                    minSafetyMargin = margin
                    minSafetyMarginAt = now
                }
            }
        }
    }

    func termName(_ term: Int) -> String {
        term < 0 ? "foreign leader \(-term)"
            : "replica-\(term / 10_000_000_000) (process #\(term / 10_000 % 1_000_000)\(term % 10_000 > 0 ? ", leadership \(term % 10_000 + 1)" : ""))"
    }

    /// Signals a process group; false when nothing in it was alive.
    func signalGroup(_ group: Int, _ signal: SimSignal) -> Bool {
        var any = false
        for id in aliveProcesses where processes[id].group == group || processes[id].id == group {
            any = true
            switch signal {
            case .kill:
                processes[id].exitCode = 137
                processDied(id, code: 137)
            case .terminate:
                guard !processes[id].exitScheduled, let delay = processes[id].termDelay else { continue }
                processes[id].exitScheduled = true
                processes[id].exitToken += 1
                processes[id].exitCode = 143
                queue.push(now + delay, .processExit(process: id, token: processes[id].exitToken))
            case .child:
                break
            }
        }
        trace("\(signal.rawValue) to group \(group): \(any ? "delivered" : "nobody")")
        return any
    }

    /// ProcessTree.killAll: SIGKILL to the child's group and every other
    /// descendant of kube-leader `(r, inc)`, then reap. Returns what was reaped
    /// and how many survived (none: SIGKILL is instant here).
    func killAll(_ r: Int, _ inc: Int) -> (reaped: [(Int, Int32)], survivors: Int) {
        let mine = aliveProcesses.filter { processes[$0].replica == r && processes[$0].incarnation == inc }
        for id in mine { processDied(id, code: 137) }
        trace(r, "killAll: \(mine.count) killed")
        return (process(r, inc)?.reapAll() ?? [], 0)
    }

    /// The child exits by itself (crash, done) with `code`.
    func childExits(_ id: Int, code: Int32) {
        guard processes[id].alive else { return }
        processDied(id, code: code)
    }

    func processDied(_ id: Int, code: Int32) {
        guard processes[id].alive else { return }
        processes[id].alive = false
        processes[id].diedAt = now
        aliveProcesses.removeAll { $0 == id }
        let p = processes[id]
        trace("process \(id) of \(termName(p.term)) exits (\(code))")
        lastDeathOfTerm.removeAll { $0.term == p.term }
        lastDeathOfTerm.append((p.term, now))
        if lastDeathOfTerm.count > 16 { lastDeathOfTerm.removeFirst() }
        closeOverlap()
        // SIGCHLD to its kube-leader (the parent, or the subreaper).
        if p.replica >= 0, let owner = process(p.replica, p.incarnation) {
            owner.zombies.append((id, code))
            owner.post(.child)
            wakeMain(p.replica, p.incarnation)
        }
    }

    private func closeOverlap() {
        guard let since = overlapSince else { return }
        var terms: [Int] = []
        for id in aliveProcesses where !terms.contains(processes[id].term) { terms.append(processes[id].term) }
        if terms.count < 2 {
            overlapTotal += now - since
            overlapSince = nil
        }
    }

    /// The leader's child (alive, started by a kube-leader that is alive).
    func leaderChild() -> Int? {
        aliveProcesses.first { id in
            let p = processes[id]
            return !p.isGrandchild && p.replica >= 0 && process(p.replica, p.incarnation) != nil
        }
    }

    public var aliveProcessCount: Int { aliveProcesses.count }

    // MARK: Invariants

    func violate(_ kind: Violation.Kind, _ message: String) {
        switch kind {
        case .overlap: overlapCount += 1
        case .budget: budgetCount += 1
        case .liveness: livenessCount += 1
        }
        if violations.count < 50 { violations.append(Violation(kind: kind, time: now, message: message)) }
        if kind != .budget || budgetCount <= 20 { trace("VIOLATION \(kind.rawValue): \(message)") }
    }

    /// Another writer set a lease longer than the replicas' own: until then
    /// a standby may rightly wait that longer lease (a liveness checkpoint
    /// counts only the replicas' lease), so checkpoints before it are skipped.
    var longLeaseUntil: SimTime = 0

    private func checkLiveness(_ index: Int) {
        if now < longLeaseUntil {
            trace("liveness checkpoint \(index) skipped: another writer set a longer lease (until \(longLeaseUntil.traceText))")
            return
        }
        if leaderChild() == nil {
            violate(.liveness, "no leader's child running at checkpoint \(index) (faults stopped \((now - checkpoints[index]) / SimTime.ms) ms before)")
        }
    }

    // MARK: Scheduling steps

    /// Schedules a step (fault, scripted action) at true time `at`.
    func schedule(_ at: SimTime, _ step: ScriptStep) {
        steps.append(step)
        queue.push(at, .fault(index: steps.count - 1))
    }

    /// A liveness checkpoint at `at` for faults that stopped at `quietSince`.
    func checkpoint(at: SimTime, quietSince: SimTime) {
        checkpoints.append(quietSince)
        queue.push(at, .checkpoint(index: checkpoints.count - 1))
    }
}

/// How a watch is dropped.
public enum WatchDrop { case end, reset, silent }
