import KLSimulation
import Testing

/// A fixed budget of random seeds for CI (scripts/sim runs more): every
/// fault kind, every invariant, on every step. A failing seed prints its
/// violation and the command that replays it with the event log.
@Suite struct RandomSeedTests {
    static let seeds: ClosedRange<UInt64> = 1...32
    static let hours = 0.5

    @Test func randomSeeds_keepEveryInvariant() {
        var failing: [String] = []
        var rejoins = 0, standbySeeds = 0
        for seed in Self.seeds {
            let r = Simulation.run(seed: seed, replicas: nil, hours: Self.hours)
            rejoins += r.rejoins
            if r.standbyReplicas > 0 { standbySeeds += 1 }
            #expect(r.childStarts > 0, "seed \(seed): no child ever started")
            if let v = r.violations.first {
                failing.append("seed \(seed) (\(r.summary)): \(v)\n  replay: \(Simulation.replayCommand(seed: seed, replicas: nil, hours: Self.hours, kinds: FaultKind.guaranteed))")
            }
        }
        // The seeds also draw --on-loss; the standby path must run.
        #expect(standbySeeds >= 8 && rejoins > 0, "\(standbySeeds) seeds with --on-loss standby, \(rejoins) rejoins")
        if !failing.isEmpty {
            Issue.record("\(failing.count) of \(Self.seeds.count) seeds broke an invariant:\n\(failing.joined(separator: "\n"))")
        }
    }
}
