import KLCore
import Testing

/// Other writers (docs/safety.md), on `Election` itself: the random-seed findings of the
/// simulation after the first fix.
@Suite struct ElectionOtherWriterTests {
    let timing = Election.Timing(leaseDuration: .seconds(8), renewDeadline: .seconds(2), retryPeriod: .milliseconds(500))
    let wall = WallTime(seconds: 1_795_859_505, nanoseconds: 0)
    let t0 = MonotonicInstant(nanoseconds: 7_000_000_000_000)
    func at(_ s: Double) -> MonotonicInstant { t0 + .milliseconds(Int64(s * 1000)) }

    func held(_ holder: String, rv: String, lease: Int = 8) -> Election.Observation {
        var o = LockCodec.newObject(.lease, namespace: "ns", name: "l", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: lease, acquireTime: nil, renewTime: nil, leaderTransitions: 3))
        o[path: "metadata", "resourceVersion"] = .string(rv)
        return .present(LockCodec.decode(.lease, object: o))
    }

    /// How a standby lost track of a's hold before it reads another
    /// writer's record with a 1 s lease.
    enum LostTrack: String, Sendable, CaseIterable, CustomTestStringConvertible {
        /// Cut off for longer than the lease: it saw none of the holder's
        /// renews, so that hold "expired" by its clock (reads fail 15 s).
        case readsFailedForALease
        /// Its take-over lost a race: a hold seen now, holder unknown.
        case lostRace
        var testDescription: String { rawValue }
    }

    /// A standby that lost track of a hold, then reads another writer's
    /// record with a 1 s lease: it still waits the old hold's lease (8 s)
    /// from the change, not 1 s.
    @Test(arguments: LostTrack.allCases)
    func aStandbyThatLostTrackOfAHold_waitsTheOldLeaseAfterAnotherWritersShortLease(_ lostTrack: LostTrack) {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        _ = e.step(.observed(held("a", rv: "1")), now: at(0), wall: wall)
        let (changeAt, rv, waitsUntil): (Double, String, Double)
        switch lostTrack {
        case .readsFailedForALease:
            // A partition; the next read shows the other writer's record.
            _ = e.step(.requestFailed("partition"), now: at(15), wall: wall)
            (changeAt, rv, waitsUntil) = (15.5, "9", 23.5)
        case .lostRace:
            guard case .update = e.step(.timer, now: at(8), wall: wall) else { Issue.record("expected a takeover"); return }
            _ = e.step(.lostRace, now: at(8.1), wall: wall)
            (changeAt, rv, waitsUntil) = (8.2, "12", 16.2)
        }
        let action = e.step(.observed(held("operator", rv: rv, lease: 1)), now: at(changeAt), wall: wall)
        #expect(action == .wait(until: at(waitsUntil)), "8 s from the change, not 1 s: \(action)")
    }

    /// A legitimate takeover with the same lease waits only the new holder's
    /// lease, and its holder's release hands over at once.
    @Test func aTakeoverWithTheSameLease_thenItsRelease_handsOverAtOnce() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        _ = e.step(.observed(held("a", rv: "1")), now: at(0), wall: wall)
        #expect(e.step(.observed(held("b", rv: "2")), now: at(9), wall: wall) == .wait(until: at(17)))
        guard case .update = e.step(.observed(held("", rv: "3", lease: 1)), now: at(10), wall: wall) else {
            Issue.record("b's release must be taken at once"); return
        }
    }
}
