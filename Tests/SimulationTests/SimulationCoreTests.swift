import KLCore
@testable import KLSimulation
import Testing

/// The simulation's own machinery: determinism, clocks, and invariants that
/// can fail (each detector is shown a world that breaks it).
@Suite struct SimulationCoreTests {
    @Test func sameSeed_sameRun() {
        let a = Simulation.run(seed: 42, replicas: 3, hours: 0.05, trace: true)
        let b = Simulation.run(seed: 42, replicas: 3, hours: 0.05, trace: true)
        #expect(a.trace.count > 100)
        #expect(a.trace == b.trace)
        #expect(a.violations == b.violations)
        let c = Simulation.run(seed: 43, replicas: 3, hours: 0.05, trace: true)
        #expect(a.trace != c.trace)
    }

    @Test func random_isDeterministicAndSpread() {
        var r1 = SimRandom(seed: 7), r2 = SimRandom(seed: 7)
        var seen = Set<Int>()
        for _ in 0..<1000 {
            let x = r1.int(0...9)
            #expect(x == r2.int(0...9))
            seen.insert(x)
        }
        #expect(seen.count == 10)
    }

    @Test func replicaClocks_runWithinATenthOfAPercent_andInvert() {
        let world = World(config: Scenarios.base(.lease, replicas: 5))
        for replica in world.replicas {
            let clock = replica.clock
            #expect(abs(clock.ppm) <= 1000)
            let hour: SimTime = 3_600 * SimTime.second
            let elapsed = clock.local(hour) - clock.local(0)
            #expect(abs(elapsed - hour) <= hour / 1000)
            for t: SimTime in [0, 1, 999_999_999, 12_345_678_901, hour * 20] {
                let l = clock.local(t)
                #expect(clock.trueTime(atLocal: l) <= t)
                #expect(clock.local(clock.trueTime(atLocal: l)) >= l)
            }
        }
    }

    /// The overlap detector: a kill grace longer than the lease (which
    /// LeaderConfig refuses) must let two children overlap after a partition.
    @Test func overlapDetector_catchesAnUnsafeConfiguration() {
        var c = Scenarios.base(.lease, replicas: 2)
        c.killGrace = .seconds(10)
        c.child.ignoresTermProbability = 1
        let world = World(config: c)
        Scenarios.startAll(world)
        world.schedule(10 * SimTime.second, .partition(0, for: 30 * SimTime.second))
        world.run(until: 30 * SimTime.second)
        #expect(world.violations.contains { $0.kind == .overlap })
        #expect(world.overlapTotal > 0)
    }

    /// The liveness checkpoint: nobody started, nobody leads.
    @Test func livenessDetector_catchesNoLeader() {
        let world = World(config: Scenarios.base(.configMap, replicas: 2))
        world.checkpoint(at: 10 * SimTime.second, quietSince: 0)
        world.run(until: 20 * SimTime.second)
        #expect(world.violations.contains { $0.kind == .liveness })
    }

    /// Without faults: one leader, a hand-over on release, standbys within
    /// budget, and the margin between children is the release hand-over.
    @Test(arguments: [LockKind.configMap, .lease])
    func quietCluster_electsOneLeader_withinBudget(kind: LockKind) {
        let world = World(config: Scenarios.base(kind))
        Scenarios.startAll(world)
        world.checkpoint(at: 5 * SimTime.second, quietSince: 0)
        world.schedule(30 * SimTime.second, .childExit(code: 0))
        world.run(until: 60 * SimTime.second)
        #expect(world.violations.isEmpty, "\(world.violations)")
        #expect(world.childStarts == 2)
        // Standing by for a minute costs a couple of requests, not one per renew.
        #expect(world.standbyReads.reduce(0, +) <= 6)
        #expect(world.standbyWatches.reduce(0, +) <= 8)
        #expect((world.minSafetyMargin ?? -1) >= 0)
    }
}

/// What the guarantees leave out overlaps today, as docs/simulation.md says.
/// If one of these stops overlapping, the guarantee got stronger: update the
/// docs, move the fault kind into the default mix, and turn the test around.
@Suite struct OutsideGuaranteesTests {
    @Test(arguments: ["outside-orphans", "outside-fresh-start", "outside-suspend-leader"])
    func outsideTheGuarantees_childrenOverlap(name: String) throws {
        let scenario = try #require(Scenarios.named(name))
        let result = scenario.run(trace: false)
        #expect(result.overlaps > 0, "\(name) no longer overlaps: \(result.failures)")
    }
}

/// Clock rates: the clock-rate scenario can fail. Clocks 1.2 % apart
/// (beyond the 1 % the margin covers at a 24 h lease) overlap by minutes;
/// 1 % apart they do not (scenario `clock-rates`), with the margin the
/// arithmetic predicts (about 4.3 s at 24 h).
@Suite struct ClockRateTests {
    @Test func beyondTheMargin_clocks1point2PercentApart_overlap() {
        let v = Scenarios.clockRateVariant(.configMap, lease: .seconds(24 * 3600), ppm: 12_000)
        let world = World(config: v.config)
        v.setup(world)
        world.run(until: v.duration)
        #expect(world.overlapCount > 0)
        #expect(world.overlapTotal > 60 * SimTime.second, "\(world.overlapTotal.traceText)")
    }

    @Test func withinTheMargin_clocks1PercentApart_keepAbout4sAt24h() {
        let v = Scenarios.clockRateVariant(.lease, lease: .seconds(24 * 3600), ppm: 10_000)
        let world = World(config: v.config)
        v.setup(world)
        world.run(until: v.duration)
        #expect(world.overlapCount == 0)
        let margin = world.minSafetyMargin ?? -1
        #expect(margin > 4 * SimTime.second && margin < 5 * SimTime.second, "\(margin)")
    }
}

/// Suspend and resume in the simulation: the leader's host is suspended 30 s
/// (its monotonic clock stops, its processes freeze, the boot clock runs on).
@Suite struct SuspendSimTests {
    /// The leader's first child and when it died.
    func oldChild(_ w: World) -> SimProcess? { w.processes.first { $0.replica == 0 && !$0.isGrandchild } }

    @Test(arguments: [LockKind.configMap, .lease])
    func resumedLeader_stopsItsChildAtTheResume(kind: LockKind) throws {
        let v = Scenarios.suspendVariant(kind)
        let world = World(config: v.config)
        v.setup(world)
        world.run(until: v.duration)
        let child = try #require(oldChild(world))
        let resume: SimTime = 40 * SimTime.second
        #expect(!child.alive)
        #expect(child.diedAt >= resume && child.diedAt - resume <= SimTime.ms, "died at \(child.diedAt.traceText)")
        #expect(world.replicas[0].exits.first?.code == 3, "\(world.replicas[0].exits)")
        // The standby's child started after the lease on its own (running) clock.
        let next = try #require(world.firstChildStart(after: 10 * SimTime.second))
        #expect(next.at > 14 * SimTime.second && next.at < 20 * SimTime.second, "\(next.at.traceText)")
    }

    /// The same suspend with the supervisor on CLOCK_MONOTONIC (before the
    /// fix): the resumed child keeps running until the renew deadline and
    /// kill grace pass on the stopped clock, seconds after the resume.
    @Test func onTheMonotonicClock_theResumedChildRunsOnForSeconds() throws {
        let v = Scenarios.suspendVariant(.configMap, bootClock: false)
        let world = World(config: v.config)
        v.setup(world)
        world.run(until: v.duration)
        let child = try #require(oldChild(world))
        #expect(child.diedAt - 40 * SimTime.second > 500 * SimTime.ms, "died at \(child.diedAt.traceText)")
    }
}
