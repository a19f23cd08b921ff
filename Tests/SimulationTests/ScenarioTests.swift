import KLSimulation
import Testing

/// Each row of docs/simulation.md's table as a deterministic simulation scenario: no
/// two children at once, no standby over its request budget, plus the row's
/// own requirement (hand-over time, no hot loop). A row fails until its fix
/// is in; replay one with `scripts/sim --scenario rowN --trace`.
@Suite struct ScenarioTests {
    func check(_ name: String) {
        guard let scenario = Scenarios.named(name) else { Issue.record("no scenario \(name)"); return }
        let result = scenario.run()
        let tail = result.trace.suffix(60).joined(separator: "\n")
        guard !result.passed else { return }
        Issue.record("""
            \(name): \(scenario.title)
            \(result.failures.prefix(12).joined(separator: "\n"))
            overlap: \(result.overlapMs) ms; replay: scripts/sim --scenario \(name) --trace
            last events of the first failing variant:
            \(tail)
            """)
    }

    /// Every named scenario: rows 1-10, `lost-race-then-deleted`,
    /// `watch-open-at-deadline`, `read-ends-fresh-watch` and the others;
    /// docs/simulation.md describes each (with the seeds that found them).
    @Test(arguments: Scenarios.all.map(\.name))
    func scenario(_ name: String) { check(name) }

    @Test func everyRowOfTheIssueHasAScenario() {
        let names = Set(Scenarios.all.map(\.name))
        for row in 1...10 { #expect(names.contains("row\(row)")) }
        #expect(names.contains("lost-race-then-deleted") && names.contains("watch-open-at-deadline")
                && names.contains("read-ends-fresh-watch"))
        for name in ["on-loss-standby-outages", "on-loss-standby-alone", "on-loss-standby-cut-off-leader"] {
            #expect(names.contains(name), "--on-loss standby scenario: \(name)")
        }
    }
}
