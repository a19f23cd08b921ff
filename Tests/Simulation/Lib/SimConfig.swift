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
    /// or CLOCK_MONOTONIC as before suspend was covered (to show the difference).
    public var supervisorOnBootClock = true
    /// `--on-loss` of each replica (replica i gets `[i % count]`).
    public var onLoss: [OnLoss] = [.exit]
    func onLoss(of r: Int) -> OnLoss { onLoss.isEmpty ? .exit : onLoss[r % onLoss.count] }
    /// `--coordinated` (docs/coordinated.md): each replica's LeaseCandidate
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
