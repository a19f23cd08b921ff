import KLCore
import Testing

/// The election state machine driven by hand: every instant is made up
/// (t0 + seconds), nothing sleeps.
@Suite struct ElectionTests {
    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)
    let wall = WallTime(seconds: 1_795_859_505)
    let timing = Election.Timing(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))

    func at(_ seconds: Double) -> MonotonicClock.Instant { t0 + .milliseconds(Int64(seconds * 1000)) }

    func snapshot(holder: String?, rv: String, transitions: Int = 0, renewSecond: Int64 = 0, leaseSeconds: Int = 15) -> LockSnapshot {
        guard let holder else {
            return LockCodec.decode(.configMap, object: ["metadata": ["name": "l", "resourceVersion": .string(rv)]])
        }
        var object = LockCodec.newObject(.configMap, namespace: "ns", name: "l", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: leaseSeconds, acquireTime: wall,
            renewTime: WallTime(seconds: wall.seconds + renewSecond), leaderTransitions: transitions))
        object[path: "metadata", "resourceVersion"] = .string(rv)
        return LockCodec.decode(.configMap, object: object)
    }

    /// What the server returns after our write of `record` onto `base`.
    func written(_ record: LeaderElectionRecord, base: LockSnapshot?, rv: String) -> LockSnapshot {
        var object = base.map { LockCodec.updatedObject(.configMap, base: $0, record: record) }
            ?? LockCodec.newObject(.configMap, namespace: "ns", name: "l", record: record)
        object[path: "metadata", "resourceVersion"] = .string(rv)
        return LockCodec.decode(.configMap, object: object)
    }

    func leader(identity: String = "me") -> (Election, LockSnapshot) {
        var e = Election(identity: identity, timing: timing)
        #expect(e.step(.start, now: at(0), wall: wall) == .get)
        guard case .create(let record) = e.step(.observed(.absent), now: at(0), wall: wall) else {
            Issue.record("expected create"); return (e, snapshot(holder: nil, rv: "0"))
        }
        let mine = written(record, base: nil, rv: "1")
        #expect(e.step(.written(mine), now: at(0.1), wall: wall) == .becameLeader(renewAt: at(2)))
        return (e, mine)
    }

    @Test func acquire_whenAbsent_createsRecordAndLeads() {
        var e = Election(identity: "me", timing: timing)
        #expect(e.step(.start, now: at(0), wall: wall) == .get)
        let action = e.step(.observed(.absent), now: at(0), wall: wall)
        guard case .create(let r) = action else { Issue.record("got \(action)"); return }
        #expect(r.holderIdentity == "me")
        #expect(r.leaseDurationSeconds == 15)
        #expect(r.leaderTransitions == 0)
        #expect(r.acquireTime == wall)
        #expect(e.step(.written(written(r, base: nil, rv: "1")), now: at(0.2), wall: wall) == .becameLeader(renewAt: at(2)))
        #expect(e.role == .leading)
        // The renew deadline counts from when the acquire was sent, not answered.
        #expect(e.renewDeadline == at(10))
    }

    @Test func heldLock_waitsForLeaseByOurClock_thenTakesOverAndIncrementsTransitions() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        // The record's renewTime is far in the past: irrelevant, only our clock counts.
        let held = snapshot(holder: "other", rv: "5", transitions: 4, renewSecond: -100_000)
        #expect(e.step(.observed(.present(held)), now: at(1), wall: wall) == .wait(until: at(16)))
        #expect(e.step(.timer, now: at(10), wall: wall) == .wait(until: at(16)))
        let action = e.step(.timer, now: at(16), wall: wall)
        guard case .update(let r, let base) = action else { Issue.record("got \(action)"); return }
        #expect(base.resourceVersion == "5")
        #expect(r.holderIdentity == "me")
        #expect(r.leaderTransitions == 5)
        #expect(e.step(.written(written(r, base: base, rv: "6")), now: at(16.1), wall: wall) == .becameLeader(renewAt: at(18)))
    }

    @Test func recordThatChanges_restartsTheExpiryClock() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        #expect(e.step(.observed(.present(snapshot(holder: "other", rv: "5"))), now: at(0), wall: wall) == .wait(until: at(15)))
        // A renew by the holder: new record, new clock.
        let renewed = snapshot(holder: "other", rv: "6", renewSecond: 2)
        #expect(e.step(.observed(.present(renewed)), now: at(2), wall: wall) == .wait(until: at(17)))
        // The same record seen again (e.g. a watch re-list) does not restart it.
        #expect(e.step(.observed(.present(renewed)), now: at(9), wall: wall) == .wait(until: at(17)))
    }

    @Test func futureRenewTimeInRecord_doesNotExtendTheLease() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        let skewed = snapshot(holder: "other", rv: "5", renewSecond: 86_400)  // a clock a day ahead
        #expect(e.step(.observed(.present(skewed)), now: at(0), wall: wall) == .wait(until: at(15)))
    }

    @Test func releasedRecord_isTakenAtOnce() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        let released = snapshot(holder: "", rv: "8", transitions: 2, leaseSeconds: 1)
        guard case .update(let r, _) = e.step(.observed(.present(released)), now: at(0), wall: wall) else {
            Issue.record("expected an immediate update"); return
        }
        #expect(r.leaderTransitions == 3)
        #expect(r.holderIdentity == "me")
    }

    @Test func objectWithoutRecord_isTakenAtOnce_withZeroTransitions() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        guard case .update(let r, let base) = e.step(.observed(.present(snapshot(holder: nil, rv: "3"))), now: at(0), wall: wall) else {
            Issue.record("expected update"); return
        }
        #expect(r.leaderTransitions == 0)
        #expect(base.resourceVersion == "3")
    }

    @Test func unreadableRecord_isHeldUntilUnchangedForLeaseDuration() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        let object: JSON = ["metadata": ["resourceVersion": "4", "annotations": [LockKind.annotation: "garbage"]]]
        let junk = LockCodec.decode(.configMap, object: object)
        #expect(e.step(.observed(.present(junk)), now: at(3), wall: wall) == .wait(until: at(18)))
        guard case .update(let r, _) = e.step(.timer, now: at(18), wall: wall) else { Issue.record("expected update"); return }
        #expect(r.leaderTransitions == 0)
    }

    @Test func recordHeldByOurOwnIdentity_fromAnotherProcess_isWaitedOut() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        #expect(e.step(.observed(.present(snapshot(holder: "me", rv: "5"))), now: at(0), wall: wall) == .wait(until: at(15)))
    }

    @Test func conflictOnCreate_readsAgain_andStandsBy() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        _ = e.step(.observed(.absent), now: at(0), wall: wall)
        #expect(e.step(.lostRace, now: at(0.1), wall: wall) == .get)
        #expect(e.step(.observed(.present(snapshot(holder: "fast", rv: "1"))), now: at(0.2), wall: wall) == .wait(until: at(15.2)))
        #expect(e.role == .standby)
    }

    @Test func conflictOnTakeoverUpdate_readsAgain() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        _ = e.step(.observed(.present(snapshot(holder: "", rv: "2"))), now: at(0), wall: wall)
        #expect(e.step(.lostRace, now: at(0.1), wall: wall) == .get)
        #expect(e.role == .standby)
    }

    @Test func renew_everyRetryPeriod_withSingleUpdateOnCachedVersion() {
        var (e, mine) = leader()
        let action = e.step(.timer, now: at(2), wall: WallTime(seconds: wall.seconds + 2))
        guard case .update(let r, let base) = action else { Issue.record("got \(action)"); return }
        #expect(base.resourceVersion == "1")
        #expect(r.renewTime == WallTime(seconds: wall.seconds + 2))
        #expect(r.acquireTime == wall)
        mine = written(r, base: base, rv: "2")
        #expect(e.step(.written(mine), now: at(2.3), wall: wall) == .wait(until: at(4)))
        #expect(e.renewDeadline == at(12))
        guard case .update(_, let base2) = e.step(.timer, now: at(4), wall: wall) else { Issue.record("no renew"); return }
        #expect(base2.resourceVersion == "2")
    }

    @Test func lose_onRenewDeadline_afterFailedRenews() {
        var (e, _) = leader()
        var now = 2.0
        var attempts = 0
        while true {
            let renew = e.step(.timer, now: at(now), wall: wall)
            if case .lostLeadership(let reason) = renew {
                #expect(now == 10)
                #expect(reason.contains("10s"))
                break
            }
            guard case .update = renew else { Issue.record("expected renew at \(now), got \(renew)"); return }
            attempts += 1
            let next = e.step(.requestFailed("timeout"), now: at(now + 1), wall: wall)
            guard case .wait(let until) = next else { Issue.record("got \(next)"); return }
            #expect(until <= at(10))  // never waits past the deadline
            now = Double(t0.duration(to: until).milliseconds / 1000)
        }
        #expect(attempts == 3)  // at 2s, 5s and 8s: retried every retry period until the deadline
        #expect(e.role == .lost)
        #expect(e.step(.timer, now: at(20), wall: wall) == .done)
    }

    @Test func timerAtDeadline_losesWithoutAnotherRequest() {
        var (e, _) = leader()
        #expect(e.step(.timer, now: at(10), wall: wall) == .lostLeadership(reason: "could not renew within 10s"))
    }

    @Test func conflictOnRenew_recordStillOurs_renewsOnNewVersion() {
        var (e, mine) = leader()
        _ = e.step(.timer, now: at(2), wall: wall)
        #expect(e.step(.lostRace, now: at(2.1), wall: wall) == .get)
        // Someone added an annotation: new resourceVersion, record unchanged.
        var object = mine.object
        object[path: "metadata", "annotations", "note"] = "hi"
        object[path: "metadata", "resourceVersion"] = "9"
        let action = e.step(.observed(.present(LockCodec.decode(.configMap, object: object))), now: at(2.2), wall: wall)
        guard case .update(_, let base) = action else { Issue.record("got \(action)"); return }
        #expect(base.resourceVersion == "9")
        #expect(base.object[path: "metadata", "annotations", "note"] == "hi")
    }

    @Test func conflictOnRenew_takenByOther_losesLeadership() {
        var (e, _) = leader()
        _ = e.step(.timer, now: at(2), wall: wall)
        _ = e.step(.lostRace, now: at(2.1), wall: wall)
        let action = e.step(.observed(.present(snapshot(holder: "thief", rv: "9"))), now: at(2.2), wall: wall)
        #expect(action == .lostLeadership(reason: "the lock is now held by thief"))
    }

    @Test func lockDeletedWhileLeading_losesLeadership() {
        var (e, _) = leader()
        _ = e.step(.timer, now: at(2), wall: wall)
        _ = e.step(.lostRace, now: at(2.1), wall: wall)
        #expect(e.step(.observed(.absent), now: at(2.2), wall: wall) == .lostLeadership(reason: "the lock object was deleted"))
    }

    @Test func release_writesEmptyHolderAndOneSecondLease_keepsTransitions() {
        var (e, mine) = leader()
        let action = e.step(.releaseRequested, now: at(1), wall: wall)
        guard case .update(let r, let base) = action else { Issue.record("got \(action)"); return }
        #expect(r.holderIdentity == "")
        #expect(r.leaseDurationSeconds == 1)
        #expect(r.leaderTransitions == 0)
        #expect(base.resourceVersion == mine.resourceVersion)
        #expect(e.step(.written(written(r, base: base, rv: "2")), now: at(1.1), wall: wall) == .done)
        #expect(e.role == .released)
    }

    @Test func releaseAfterDeadline_isNotAttempted() {
        var (e, _) = leader()
        #expect(e.step(.releaseRequested, now: at(11), wall: wall) == .done)
    }

    @Test func releaseWhileStandby_endsWithoutWriting() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        _ = e.step(.observed(.present(snapshot(holder: "other", rv: "5"))), now: at(0), wall: wall)
        #expect(e.step(.releaseRequested, now: at(1), wall: wall) == .done)
    }

    @Test func transientFailureWhileStandby_retriesAfterRetryPeriod() {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        #expect(e.step(.requestFailed("503"), now: at(0.5), wall: wall) == .wait(until: at(2.5)))
        #expect(e.step(.timer, now: at(2.5), wall: wall) == .get)
    }
}
