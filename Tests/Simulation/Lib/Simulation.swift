import KLCore

/// Random seeds: the world each seed draws, and the run.
public enum Simulation {
    /// The configuration a seed draws: lock kind, timing (always one that
    /// `LeaderConfig` accepts), clocks, PID 1 or not, history size, noise.
    public static func config(seed: UInt64, replicas: Int?, kinds: [FaultKind] = FaultKind.guaranteed) -> SimConfig {
        var rng = SimRandom(seed: seed ^ 0xC0F1_6000)
        let n = replicas ?? rng.int(2...5)
        let kind: LockKind = rng.chance(0.5) ? .configMap : .lease
        var (timing, kill) = drawTiming(&rng)
        // Only timings kube-leader itself accepts (its real validation).
        for _ in 0..<200 where !accepted(timing, kill, kind) { (timing, kill) = drawTiming(&rng) }
        var c = SimConfig(seed: seed, replicas: n, kind: kind, timing: timing, killGrace: kill,
                          pid1: (0..<n).map { _ in rng.chance(0.5) })
        c.latencyMs = rng.chance(0.7) ? 1...3 : 1...40
        c.noisePerSecond = rng.weighted([(0.0, 2), (1.0, 3), (20.0, 2), (200.0, 1)])
        c.historyCapacity = rng.weighted([(100, 1), (1000, 2), (5000, 1)])
        c.child.grandchildProbability = kinds.contains(.backgroundChild) ? 0.1 : 0
        c.crashWithOrphans = kinds.contains(.crashWithOrphans)
        c.freshStartAfterDelete = kinds.contains(.freshStartAfterDelete)
        // --on-loss: every replica exits, every replica stands by again, or
        // a mix (drawn last: the draws above stay as they were per seed).
        c.onLoss = rng.weighted([([OnLoss.exit], 1), ([OnLoss.standby], 1), ([OnLoss.standby, OnLoss.exit], 1)])
        if kinds.contains(.coordinated) {
            // --coordinated needs a Lease lock; versions 1.0.0-1.2.0 per replica.
            c.kind = .lease
            c.coordinatedVersions = (0..<n).map { _ in "1.\(rng.int(0...2)).0" }
        }
        return c
    }

    /// Whether kube-leader accepts these durations (`LeaderConfig.load`, so
    /// the simulation follows its validation rules as they change).
    public static func accepted(_ t: Election.Timing, _ kill: Duration, _ kind: LockKind) -> Bool {
        func ms(_ d: Duration) -> String { "\(d.nanoseconds / 1_000_000)ms" }
        let args = ["--lease-duration", ms(t.leaseDuration), "--renew-deadline", ms(t.renewDeadline),
                    "--retry-period", ms(t.retryPeriod), "--kill-grace", ms(kill), "--lock-kind", kind.rawValue,
                    "--identity", "sim", "--namespace", "sim", "lock", "true"]
        do {
            _ = try LeaderConfig.load(arguments: args, environment: [:], readFile: { _ in nil }, hostName: "sim")
            return true
        } catch {
            return false
        }
    }

    /// A timing: the defaults, the issue's 4s/2s/1s, or one drawn at random
    /// (retry periods below one second too); `config` keeps the ones
    /// `LeaderConfig` accepts.
    static func drawTiming(_ rng: inout SimRandom) -> (Election.Timing, Duration) {
        switch rng.int(0...3) {
        case 0:
            return (Election.Timing(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2)), .seconds(4))
        case 1:
            return (Election.Timing(leaseDuration: .seconds(4), renewDeadline: .seconds(2), retryPeriod: .seconds(1)), .seconds(1))
        default:
            let retry = rng.weighted([(250, 1), (500, 2), (1000, 3), (2000, 3), (3000, 1)] as [(Int64, Int)])
            let renew = retry * 13 / 10 + rng.int(Int64(1)...(retry * 4))
            let lease = renew + 1000 + rng.int(Int64(0)...10_000)
            let kill = lease - renew - 1000
            return (Election.Timing(leaseDuration: .milliseconds(lease), renewDeadline: .milliseconds(renew),
                                    retryPeriod: .milliseconds(retry)), .milliseconds(kill))
        }
    }

    /// What one seed did.
    public struct SeedResult: Sendable {
        public var seed: UInt64
        public var replicas: Int
        public var simulated: SimTime
        /// The first violations (a few), and how many of each kind.
        public var violations: [String]
        public var overlaps: Int
        public var budget: Int
        public var liveness: Int
        public var minSafetyMargin: SimTime?
        public var events: Int
        public var childStarts: Int
        /// `--on-loss standby`: replicas that ran with it, and how often a
        /// process stood by again after a loss.
        public var standbyReplicas: Int
        public var rejoins: Int
        public var summary: String
        /// Hand-overs asked (the lock named another preferred holder).
        public var handOvers = 0
        public var trace: [String]

        public var replicaHours: Double { Double(replicas) * Double(simulated) / 3.6e12 }
        public var standbyReplicaHours: Double { Double(standbyReplicas) * Double(simulated) / 3.6e12 }
    }

    /// Runs one seed for `hours` of simulated time.
    public static func run(seed: UInt64, replicas: Int?, hours: Double, trace: Bool = false,
                           kinds: [FaultKind] = FaultKind.guaranteed) -> SeedResult {
        var config = Self.config(seed: seed, replicas: replicas, kinds: kinds)
        config.trace = trace
        let world = World(config: config)
        let duration = SimTime(hours * 3.6e12)
        RandomPlan(kinds: kinds).schedule(on: world, duration: duration)
        world.run(until: duration)
        let t = config.timing
        let summary = "replicas=\(config.replicas) kind=\(config.kind.rawValue) lease=\(DurationText.format(t.leaseDuration)) "
            + "renew=\(DurationText.format(t.renewDeadline)) retry=\(DurationText.format(t.retryPeriod)) "
            + "kill_grace=\(DurationText.format(config.killGrace)) pid1=\(config.pid1.map { $0 ? "1" : "0" }.joined()) "
            + "noise=\(config.noisePerSecond)/s history=\(config.historyCapacity) "
            + "on_loss=\(config.onLoss.map(\.rawValue).joined(separator: ","))"
            + (config.coordinatedVersions.map { " coordinated=\($0.joined(separator: ","))" } ?? "")
        return SeedResult(seed: seed, replicas: config.replicas, simulated: world.now,
                          violations: world.violations.prefix(5).map(\.description),
                          overlaps: world.overlapCount, budget: world.budgetCount, liveness: world.livenessCount,
                          minSafetyMargin: world.minSafetyMargin, events: world.eventsProcessed,
                          childStarts: world.childStarts,
                          standbyReplicas: (0..<config.replicas).filter { config.onLoss(of: $0) == .standby }.count,
                          rejoins: world.replicas.reduce(0) { $0 + $1.rejoins }, summary: summary,
                          handOvers: world.replicas.reduce(0) { $0 + $1.handOvers }, trace: world.traceLines)
    }

    /// The command that replays one seed with its event log.
    public static func replayCommand(seed: UInt64, replicas: Int?, hours: Double, kinds: [FaultKind]) -> String {
        var c = "scripts/sim --seeds 1 --from \(seed) --hours \(hours) --trace"
        if let replicas { c += " --replicas \(replicas)" }
        if kinds != FaultKind.guaranteed { c += " --faults \(kinds.isEmpty ? "none" : kinds.map(\.rawValue).joined(separator: ","))" }
        return c
    }
}
