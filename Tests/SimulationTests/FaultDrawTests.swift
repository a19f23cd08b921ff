import KLCore
@testable import KLSimulation
import Testing

/// Other writers' changes are drawn only inside the guarantees: while every
/// running standby has seen the hold they change (holder and lease). The two
/// overlaps of the long random run (other writers' changes) were
/// such changes of a hold a standby had not seen; each test shows the pair of
/// faults overlapping when the guard is bypassed (`freshStartAfterDelete`,
/// the opt-in for faults outside the guarantees) and skipped without it.
@Suite struct FaultDrawTests {
    static let s = SimTime.second
    static let ms = SimTime.ms

    /// Lease 10 s, renew 6 s, retry 1 s, kill grace 2 s: a leader whose
    /// election thread hangs keeps its child for seconds (until its renew
    /// deadline), long enough for a standby's wrong take-over to overlap.
    static func config(replicas: Int, retry: Duration = .seconds(1), outside: Bool) -> SimConfig {
        var c = Scenarios.base(.lease, replicas: replicas)
        c.timing = Election.Timing(leaseDuration: .seconds(10), renewDeadline: .seconds(6), retryPeriod: retry)
        c.killGrace = .seconds(2)
        c.freshStartAfterDelete = outside
        return c
    }

    /// Seed 503725: another writer lowers the holder's lease to 1 s while a
    /// standby cannot watch, then someone clears the holder. The standby
    /// reads an empty holder, a 1 s lease and the transitions kept, which is
    /// client-go's release record: it takes the lock at once. Drawn only
    /// when every standby has seen the 1 s lease.
    func clearAfterLeaseChange(outside: Bool, standbyCutOff: Bool) -> World {
        let w = World(config: Self.config(replicas: 2, outside: outside))
        Scenarios.startAll(w)
        w.schedule(10 * Self.s, .hang(0, for: 8 * Self.s))  // the leader notices nothing until its renew deadline
        if standbyCutOff { w.schedule(10 * Self.s + 50 * Self.ms, .partition(1, for: 500 * Self.ms, refuse: true)) }
        w.schedule(10 * Self.s + 100 * Self.ms, .otherWriter(holder: nil, leaseSeconds: 1))
        w.schedule(10 * Self.s + 200 * Self.ms, .clearHolder())
        w.run(until: 30 * Self.s)
        return w
    }

    @Test func clearOfALeaseTheStandbyDidNotSee_isOutsideTheGuarantees_andNotDrawn() {
        let outside = clearAfterLeaseChange(outside: true, standbyCutOff: true)
        #expect(outside.overlapCount > 0, "the release-shaped clear no longer overlaps: \(outside.violations)")
        let w = clearAfterLeaseChange(outside: false, standbyCutOff: true)
        #expect(w.traceLines.contains { $0.contains("deletion/clear skipped") })
        #expect(w.overlapCount == 0, "\(w.violations)")
        #expect(w.firstChildStart(after: 10 * Self.s) != nil, "a leader again after the leader's hang")
    }

    /// The same pair while the standby watches: it saw the 1 s lease, so the
    /// clear is drawn, and it waits the 10 s hold out from the change.
    @Test func clearOfALeaseTheStandbySaw_isDrawn_andWaitedOut() throws {
        let w = clearAfterLeaseChange(outside: false, standbyCutOff: false)
        #expect(!w.traceLines.contains { $0.contains("deletion/clear skipped") })
        #expect(w.traceLines.contains { $0.contains("step: someone clears the holder") })
        #expect(w.overlapCount == 0, "\(w.violations)")
        let next = try #require(w.firstChildStart(after: 10 * Self.s))
        #expect(next.at >= 20 * Self.s, "took the cleared lock at \(next.at.traceText), within the 10 s hold it saw")
    }

    /// Seed 502338: someone recreated the lock held by `operator` for 1 s;
    /// A→B→A started while it was still waited out (B changed nothing); a
    /// standby took the lock when the wait ended while another (replica 2)
    /// was cut off; then the restore wrote the old `operator` record back
    /// over the new hold. Replica 2, back, found the record it had last seen
    /// (same text, long expired) and took the lock next to the new leader's
    /// child (its election thread hangs here, so it notices nothing). The
    /// restore is drawn only when every standby has seen the current hold.
    func restoreOverAnUnseenHold(outside: Bool) -> World {
        let w = World(config: Self.config(replicas: 3, outside: outside))
        Scenarios.startAll(w)
        w.schedule(10 * Self.s, .recreate(holder: "operator", leaseSeconds: 1))  // waited out until about 20 s
        w.schedule(18 * Self.s, .handAwayAndBack(holder: "operator", after: 3 * Self.s))  // restore at 21 s
        w.schedule(19 * Self.s + 500 * Self.ms, .partition(2, for: 1700 * Self.ms, refuse: true))
        w.schedule(20 * Self.s + 500 * Self.ms, ScriptStep("the leader's election thread hangs") { w in
            if let r = w.liveLeaderReplica { ScriptStep.hang(r, for: 8 * Self.s).apply(w) }
        })
        w.run(until: 40 * Self.s)
        return w
    }

    @Test func restoreOverAHoldAStandbyDidNotSee_isOutsideTheGuarantees_andNotDrawn() {
        let outside = restoreOverAnUnseenHold(outside: true)
        #expect(outside.overlapCount > 0, "the restore over an unseen hold no longer overlaps: \(outside.violations)")
        let w = restoreOverAnUnseenHold(outside: false)
        #expect(w.traceLines.contains { $0.contains("deletion/clear skipped") })
        #expect(w.overlapCount == 0, "\(w.violations)")
    }
}
