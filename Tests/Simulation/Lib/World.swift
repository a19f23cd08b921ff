import KLCore

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
    var watches: [Int: WatchConnection] = [:]
    var nextWatch = 0
    var processes: [SimProcess] = []
    var aliveProcesses: [Int] = []
    var steps: [ScriptStep] = []
    var checkpoints: [SimTime] = []
    /// The first violations (at most 50 kept), and how many of each kind.
    public internal(set) var violations: [Violation] = []
    public internal(set) var overlapCount = 0
    public internal(set) var budgetCount = 0
    public internal(set) var livenessCount = 0
    public var violationCount: Int { overlapCount + budgetCount + livenessCount }
    public private(set) var traceLines: [String] = []
    // Safety accounting.
    var lastDeathOfTerm: [(term: Int, at: SimTime)] = []
    public internal(set) var minSafetyMargin: SimTime?
    public internal(set) var minSafetyMarginAt: SimTime = 0
    public internal(set) var overlapTotal: SimTime = 0
    var overlapSince: SimTime?
    public internal(set) var childStarts = 0
    public internal(set) var leaderStarts: [(replica: Int, at: SimTime)] = []
    public internal(set) var leaderEnds: [(replica: Int, at: SimTime)] = []
    public internal(set) var requestCount = 0
    public internal(set) var standbyReads: [Int] = []
    public internal(set) var standbyWatches: [Int] = []
    var foreignTerms = 0
    /// LeaseCandidates and the election controller (Coordination.swift).
    var coordination = SimCoordination()
    public private(set) var eventsProcessed = 0

    /// When someone last deleted the lock or cleared its holder.
    var holdEndedByOthersAt: SimTime?
    /// Another writer set a lease longer than the replicas' own: until then
    /// a standby may rightly wait that longer lease (a liveness checkpoint
    /// counts only the replicas' lease), so checkpoints before it are skipped.
    var longLeaseUntil: SimTime = 0

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
