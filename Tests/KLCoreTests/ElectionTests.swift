import KLCore
import Testing

/// The election state machine driven by hand: every instant is made up
/// (t0 + seconds), nothing sleeps.
@Suite struct ElectionTests: ElectionScript {
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

    /// An election of "me" that has taken its first step (a read) at t0.
    func started() -> Election {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        return e
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
        var e = started()
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
        var e = started()
        #expect(e.step(.observed(.present(snapshot(holder: "other", rv: "5"))), now: at(0), wall: wall) == .wait(until: at(15)))
        // A renew by the holder: new record, new clock.
        let renewed = snapshot(holder: "other", rv: "6", renewSecond: 2)
        #expect(e.step(.observed(.present(renewed)), now: at(2), wall: wall) == .wait(until: at(17)))
        // The same record seen again (e.g. a watch re-list) does not restart it.
        #expect(e.step(.observed(.present(renewed)), now: at(9), wall: wall) == .wait(until: at(17)))
    }

    @Test func futureRenewTimeInRecord_doesNotExtendTheLease() {
        var e = started()
        let skewed = snapshot(holder: "other", rv: "5", renewSecond: 86_400)  // a clock a day ahead
        #expect(e.step(.observed(.present(skewed)), now: at(0), wall: wall) == .wait(until: at(15)))
    }

    @Test func releasedRecord_isTakenAtOnce() {
        var e = started()
        let released = snapshot(holder: "", rv: "8", transitions: 2, leaseSeconds: 1)
        guard case .update(let r, _) = e.step(.observed(.present(released)), now: at(0), wall: wall) else {
            Issue.record("expected an immediate update"); return
        }
        #expect(r.leaderTransitions == 3)
        #expect(r.holderIdentity == "me")
    }

    @Test func objectWithoutRecord_isTakenAtOnce_withZeroTransitions() {
        var e = started()
        guard case .update(let r, let base) = e.step(.observed(.present(snapshot(holder: nil, rv: "3"))), now: at(0), wall: wall) else {
            Issue.record("expected update"); return
        }
        #expect(r.leaderTransitions == 0)
        #expect(base.resourceVersion == "3")
    }

    @Test func unreadableRecord_isHeldUntilUnchangedForLeaseDuration() {
        var e = started()
        let object: JSON = ["metadata": ["resourceVersion": "4", "annotations": [LockKind.annotation: "garbage"]]]
        let junk = LockCodec.decode(.configMap, object: object)
        #expect(e.step(.observed(.present(junk)), now: at(3), wall: wall) == .wait(until: at(18)))
        guard case .update(let r, _) = e.step(.timer, now: at(18), wall: wall) else { Issue.record("expected update"); return }
        #expect(r.leaderTransitions == 0)
    }

    @Test func recordHeldByOurOwnIdentity_fromAnotherProcess_isWaitedOut() {
        var e = started()
        #expect(e.step(.observed(.present(snapshot(holder: "me", rv: "5"))), now: at(0), wall: wall) == .wait(until: at(15)))
    }

    @Test func conflictOnCreate_readsAgain_andStandsBy() {
        var e = started()
        _ = e.step(.observed(.absent), now: at(0), wall: wall)
        #expect(e.step(.lostRace, now: at(0.1), wall: wall) == .get)
        #expect(e.step(.observed(.present(snapshot(holder: "fast", rv: "1"))), now: at(0.2), wall: wall) == .wait(until: at(15.2)))
        #expect(e.role == .standby)
    }

    @Test func conflictOnTakeoverUpdate_readsAgain() {
        var e = started()
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
        // Still ours: an edit of another field lost no race: renew on the
        // new version at once (at most once per retry period).
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
        var e = started()
        _ = e.step(.observed(.present(snapshot(holder: "other", rv: "5"))), now: at(0), wall: wall)
        #expect(e.step(.releaseRequested, now: at(1), wall: wall) == .done)
    }

    @Test func transientFailureWhileStandby_retriesAfterRetryPeriod() {
        var e = started()
        #expect(e.step(.requestFailed("503"), now: at(0.5), wall: wall) == .wait(until: at(2.5)))
        #expect(e.step(.timer, now: at(2.5), wall: wall) == .get)
    }

    // MARK: The rows of docs/simulation.md's table

    /// A standby that has seen `holder` hold the lock since `at(0)`.
    func standbyThatSawHeld(_ holder: String = "old", rv: String = "5", transitions: Int = 3) -> Election {
        var e = started()
        #expect(e.step(.observed(.present(snapshot(holder: holder, rv: rv, transitions: transitions))), now: at(0), wall: wall) == .wait(until: at(15)))
        return e
    }

    /// Row 1: the lock is deleted while held. The old leader learns it only at
    /// its next renew; the standby waits one lease from when it saw the deletion.
    @Test func row1_lockDeletedWhileHeld_isHeldForOneLeaseAfterTheDeletionWasSeen() {
        var e = standbyThatSawHeld()
        // A renew at 2 s, then the deletion seen at 5 s.
        #expect(e.step(.observed(.present(snapshot(holder: "old", rv: "6", transitions: 3, renewSecond: 2))), now: at(2), wall: wall) == .wait(until: at(17)))
        #expect(e.step(.observed(.absent), now: at(5), wall: wall) == .wait(until: at(20)))
        #expect(e.heldUntil == at(20))
        // A read in between (absent again) does not shorten or restart the wait.
        #expect(e.step(.timer, now: at(12), wall: wall) == .wait(until: at(20)))
        #expect(e.step(.observed(.absent), now: at(13), wall: wall) == .wait(until: at(20)))
        guard case .create(let r) = e.step(.timer, now: at(20), wall: wall) else { Issue.record("expected a create at 20 s"); return }
        #expect(r.holderIdentity == "me")
    }

    /// Row 1: the record's lease, not ours, is what the deletion is held for.
    @Test func row1_deletionWaitsTheHeldRecordsLease() {
        var e = started()
        _ = e.step(.observed(.present(snapshot(holder: "old", rv: "5", leaseSeconds: 40))), now: at(0), wall: wall)
        #expect(e.step(.observed(.absent), now: at(1), wall: wall) == .wait(until: at(41)))
    }

    /// Row 1: a standby that never saw the lock held creates it at once.
    @Test func row1_absentAtFirstSight_isCreatedAtOnce() {
        var e = started()
        guard case .create = e.step(.observed(.absent), now: at(0), wall: wall) else { Issue.record("expected create"); return }
        #expect(e.heldUntil == nil)
    }

    /// Row 1, decided: a holder cleared by someone else (empty holder that is
    /// not a release record, or the record removed) is held like a deletion.
    @Test(arguments: ["cleared", "annotation removed", "released with another lease"])
    func row1_holderClearedByOthers_isHeldForOneLease(how: String) {
        var e = standbyThatSawHeld()
        let cleared: LockSnapshot
        switch how {
        case "cleared":
            var object = snapshot(holder: "old", rv: "5", transitions: 3).object
            object[path: "metadata", "annotations", LockKind.annotation] = .string(#"{"holderIdentity":""}"#)
            object[path: "metadata", "resourceVersion"] = "7"
            cleared = LockCodec.decode(.configMap, object: object)
        case "annotation removed":
            cleared = snapshot(holder: nil, rv: "7")
        default:
            cleared = snapshot(holder: "", rv: "7", transitions: 3, leaseSeconds: 15)
        }
        #expect(e.step(.observed(.present(cleared)), now: at(3), wall: wall) == .wait(until: at(18)))
        guard case .update(let r, let base) = e.step(.timer, now: at(18), wall: wall) else { Issue.record("expected update at 18 s"); return }
        #expect(base.resourceVersion == "7")
        #expect(r.holderIdentity == "me")
    }

    /// Row 1: the holder's own release (empty holder, lease 1 s, transitions
    /// kept) is still taken at once: graceful hand-over stays fast.
    @Test func row1_releaseByTheHolder_isTakenAtOnce() {
        var e = standbyThatSawHeld()
        let released = snapshot(holder: "", rv: "8", transitions: 3, leaseSeconds: 1)
        guard case .update(let r, let base) = e.step(.observed(.present(released)), now: at(3), wall: wall) else {
            Issue.record("expected an immediate takeover"); return
        }
        #expect(base.resourceVersion == "8")
        #expect(r.leaderTransitions == 4)
    }

    /// Scenario `lost-race-then-deleted`: a standby loses the race
    /// for a released lock and its re-read finds the lock deleted. The lost
    /// race proves a winner whose hold it never saw: wait one lease.
    @Test func lostRaceForReleasedLock_thenDeleted_isHeldForOneLease() {
        var e = standbyThatSawHeld()
        let released = snapshot(holder: "", rv: "8", transitions: 3, leaseSeconds: 1)
        guard case .update = e.step(.observed(.present(released)), now: at(3), wall: wall) else {
            Issue.record("expected an immediate takeover"); return
        }
        #expect(e.step(.lostRace, now: at(3.1), wall: wall) == .get)
        #expect(e.step(.observed(.absent), now: at(3.2), wall: wall) == .wait(until: at(18.2)))
        #expect(e.step(.timer, now: at(10), wall: wall) == .wait(until: at(18.2)))
        guard case .create = e.step(.timer, now: at(18.2), wall: wall) else { Issue.record("expected create after the lease"); return }
    }

    /// The same after a lost create race, and after a clear by someone else.
    @Test func lostCreateRace_thenAbsent_orCleared_isHeldForOneLease() {
        var e = started()
        guard case .create = e.step(.observed(.absent), now: at(0), wall: wall) else { Issue.record("expected create"); return }
        #expect(e.step(.lostRace, now: at(0.1), wall: wall) == .get)
        #expect(e.step(.observed(.absent), now: at(0.2), wall: wall) == .wait(until: at(15.2)))

        var c = standbyThatSawHeld()
        _ = c.step(.observed(.present(snapshot(holder: "", rv: "8", transitions: 3, leaseSeconds: 1))), now: at(3), wall: wall)
        #expect(c.step(.lostRace, now: at(3.1), wall: wall) == .get)
        // Holder cleared by a record that is no holder's release (lease 15 s).
        #expect(c.step(.observed(.present(snapshot(holder: "", rv: "10", transitions: 4))), now: at(3.2), wall: wall) == .wait(until: at(18.2)))
    }

    /// A lost race followed by the winner's own release stays a fast hand-over.
    @Test func lostRace_thenTheWinnersRelease_isTakenAfterOneRetryPeriod() {
        var e = standbyThatSawHeld()
        _ = e.step(.observed(.present(snapshot(holder: "", rv: "8", transitions: 3, leaseSeconds: 1))), now: at(3), wall: wall)
        #expect(e.step(.lostRace, now: at(3.1), wall: wall) == .get)
        // The winner released already (transitions 4 kept, lease 1 s): free,
        // written again after the retry period of the lost write only.
        let release = snapshot(holder: "", rv: "10", transitions: 4, leaseSeconds: 1)
        #expect(e.step(.observed(.present(release)), now: at(3.2), wall: wall) == .wait(until: at(5.1)))
        guard case .update(let r, let base) = e.step(.timer, now: at(5.1), wall: wall) else { Issue.record("expected takeover"); return }
        #expect(base.resourceVersion == "10")
        #expect(r.leaderTransitions == 5)
        #expect(e.heldUntil == nil)
    }

    /// Row 1: after a deletion, a new holder's record is judged by its own expiry.
    @Test func row1_deletedThenRecreatedByAnother_followsTheNewRecord() {
        var e = standbyThatSawHeld()
        #expect(e.step(.observed(.absent), now: at(5), wall: wall) == .wait(until: at(20)))
        #expect(e.step(.observed(.present(snapshot(holder: "new", rv: "9"))), now: at(6), wall: wall) == .wait(until: at(21)))
        #expect(e.heldUntil == nil)
    }

    /// Row 4: a renew answered with the same resourceVersion (a no-op update:
    /// ConfigMap times have whole seconds) is not seen by anyone: it does not
    /// move the renew deadline.
    @Test func row4_noOpRenew_doesNotCount() {
        var (e, mine) = leader()
        guard case .update(let r, let base) = e.step(.timer, now: at(2), wall: wall) else { Issue.record("no renew"); return }
        var same = written(r, base: base, rv: "1")
        same.resourceVersion = mine.resourceVersion
        #expect(e.step(.written(same), now: at(2.1), wall: wall) == .wait(until: at(4.1)))
        #expect(e.renewDeadline == at(10))  // still from the acquire
        #expect(e.lastRenew == at(0))
        // The next one changes the version: counted from its send time.
        guard case .update(let r2, let base2) = e.step(.timer, now: at(4.1), wall: wall) else { Issue.record("no renew"); return }
        _ = e.step(.written(written(r2, base: base2, rv: "2")), now: at(4.2), wall: wall)
        #expect(e.renewDeadline == at(14.1))
        // No-ops until the deadline: leadership is lost, not kept by them.
        var now = 6.1
        while true {
            let action = e.step(.timer, now: at(now), wall: wall)
            if case .lostLeadership(let reason) = action { #expect(reason.contains("did not change") || reason.contains("could not renew")); break }
            guard case .update(let rn, let bn) = action else { Issue.record("got \(action)"); return }
            #expect(now < 14.1)
            var noop = written(rn, base: bn, rv: "2")
            noop.resourceVersion = "2"
            guard case .wait(let until) = e.step(.written(noop), now: at(now + 0.1), wall: wall) else { Issue.record("expected wait"); return }
            now = Double(t0.duration(to: until).milliseconds) / 1000
        }
        #expect(now == 14.1)
    }

    /// Row 7: a release answered 5xx is retried every retry period until the
    /// renew deadline, then given up without writing.
    @Test func row7_failedRelease_isRetriedPacedUntilTheDeadline() {
        var (e, _) = leader()
        var sent: [Double] = []
        var action = e.step(.releaseRequested, now: at(1), wall: wall)
        var now = 1.0
        while case .update(let r, _) = action {
            #expect(r.holderIdentity == "")
            sent.append(now)
            guard case .wait(let until) = e.step(.requestFailed("503"), now: at(now + 0.1), wall: wall) else { Issue.record("expected a wait"); return }
            now = Double(t0.duration(to: until).milliseconds) / 1000
            action = e.step(.timer, now: at(now), wall: wall)
        }
        #expect(action == .done)
        #expect(e.role == .released)
        #expect(sent == [1, 3.1, 5.2, 7.3, 9.4])  // one per retry period, none at or after 10 s
    }

    /// Row 7: a release answered 409 re-reads; still ours → release on the new version.
    @Test func row7_conflictingRelease_rereadsAndReleasesOnTheNewVersion() {
        var (e, mine) = leader()
        guard case .update = e.step(.releaseRequested, now: at(1), wall: wall) else { Issue.record("no release"); return }
        #expect(e.step(.lostRace, now: at(1.1), wall: wall) == .get)
        var object = mine.object
        object[path: "metadata", "labels", "x"] = "y"
        object[path: "metadata", "resourceVersion"] = "7"
        #expect(e.step(.observed(.present(LockCodec.decode(.configMap, object: object))), now: at(1.2), wall: wall) == .wait(until: at(3.1)))
        guard case .update(let r, let base) = e.step(.timer, now: at(3.1), wall: wall) else { Issue.record("no second release"); return }
        #expect(r.holderIdentity == "" && base.resourceVersion == "7")
        #expect(e.step(.written(written(r, base: base, rv: "8")), now: at(3.2), wall: wall) == .done)
        #expect(e.role == .released)
    }

    /// Row 7: a release that conflicts because someone else holds it now: nothing to release.
    @Test func row7_conflictingRelease_takenByOther_endsWithoutWriting() {
        var (e, _) = leader()
        _ = e.step(.releaseRequested, now: at(1), wall: wall)
        _ = e.step(.lostRace, now: at(1.1), wall: wall)
        #expect(e.step(.observed(.present(snapshot(holder: "other", rv: "9"))), now: at(1.2), wall: wall) == .done)
        #expect(e.role == .released)
    }

    /// Row 9: the original kube-leader's lock is held while its Pod exists,
    /// looked at again once per lease; free once the Pod is gone.
    @Test func row9_originalKubeLeaderLock_heldWhileItsPodExists() {
        var e = started()
        var object: JSON = ["metadata": ["name": "l", "resourceVersion": "3",
                                         "ownerReferences": [["apiVersion": "v1", "kind": "Pod", "name": "old-pod", "uid": "u1"]]]]
        let legacy = LockCodec.decode(.configMap, object: object)
        #expect(legacy.state == .ownerPod("old-pod", alive: true))
        #expect(e.step(.observed(.present(legacy)), now: at(0), wall: wall) == .wait(until: at(15)))
        #expect(e.step(.timer, now: at(15), wall: wall) == .get)  // is the Pod still there?
        #expect(e.step(.observed(.present(legacy)), now: at(15.1), wall: wall) == .wait(until: at(30.1)))
        #expect(e.step(.timer, now: at(30.1), wall: wall) == .get)
        var gone = legacy
        gone.state = .ownerPod("old-pod", alive: false)
        gone.fingerprint += ":gone"
        guard case .update(let r, let base) = e.step(.observed(.present(gone)), now: at(30.2), wall: wall) else {
            Issue.record("expected takeover once the Pod is gone"); return
        }
        #expect(r.holderIdentity == "me" && r.leaderTransitions == 0)
        // The takeover drops the gone Pod's ownerReference (else the garbage
        // collector would delete the lock under the new leader) and keeps others.
        object[path: "metadata", "ownerReferences"] = [["apiVersion": "v1", "kind": "Pod", "name": "old-pod", "uid": "u1"],
                                                       ["apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "u2"]]
        var base2 = LockCodec.decode(.configMap, object: object)
        base2.state = .ownerPod("old-pod", alive: false)
        let updated = LockCodec.updatedObject(.configMap, base: base2, record: r)
        #expect(updated[path: "metadata", "ownerReferences"]?.arrayValue?.count == 1)
        #expect(updated[path: "metadata", "ownerReferences"]?[0]?["kind"] == "Deployment")
        #expect(LockCodec.updatedObject(.configMap, base: base, record: r)[path: "metadata", "ownerReferences"] == nil)
    }

    /// Row 10: huge transitions never trap: clamped, and a takeover saturates.
    @Test func row10_hugeTransitions_areClampedAndSaturate() {
        for raw in [#"99999999999999999999"#, #""99999999999999999999""#, "1e30", "9223372036854775807", #""2147483647""#] {
            var object = snapshot(holder: "", rv: "4").object
            object[path: "metadata", "annotations", LockKind.annotation] =
                .string(#"{"holderIdentity":"","leaseDurationSeconds":1,"leaderTransitions":"# + raw + "}")
            let s = LockCodec.decode(.configMap, object: object)
            #expect(s.record?.leaderTransitions == LockBounds.maxTransitions, "\(raw)")
            var e = Election(identity: "me", timing: timing)
            _ = e.step(.start, now: at(0), wall: wall)
            guard case .update(let r, _) = e.step(.observed(.present(s)), now: at(0), wall: wall) else { Issue.record("expected takeover"); return }
            #expect(r.leaderTransitions == LockBounds.maxTransitions)
        }
    }

    /// Row 10: an absurd lease (beyond a day, beyond Int64, a huge string,
    /// negative) or a record of the wrong shape is held, never free: it
    /// expires only after our own lease of silence.
    @Test(arguments: [
        #"{"holderIdentity":"x","leaseDurationSeconds":9223372036}"#,
        #"{"holderIdentity":"x","leaseDurationSeconds":9300000000}"#,
        #"{"holderIdentity":"x","leaseDurationSeconds":9223372036854775807}"#,
        #"{"holderIdentity":"x","leaseDurationSeconds":"99999999999999999999999999"}"#,
        #"{"holderIdentity":"x","leaseDurationSeconds":-5}"#,
        #"{"holderIdentity":"x","leaseDurationSeconds":1.5}"#,
        #"{"holderIdentity":7}"#,
        #"[1,2]"#,
    ])
    func row10_absurdRecord_isHeld(annotation: String) {
        var object = snapshot(holder: "", rv: "4").object
        object[path: "metadata", "annotations", LockKind.annotation] = .string(annotation)
        let s = LockCodec.decode(.configMap, object: object)
        guard case .unreadable = s.state else { Issue.record("\(annotation) decoded as \(s.state)"); return }
        var e = started()
        #expect(e.step(.observed(.present(s)), now: at(1), wall: wall) == .wait(until: at(16)))
    }

    /// Row 10: a Lease whose spec is not an object, an annotation that is not a string: held.
    @Test func row10_wrongTypes_areUnreadableNotFree() {
        let lease = LockCodec.decode(.lease, object: ["metadata": ["name": "l", "resourceVersion": "2"], "spec": "x"])
        guard case .unreadable = lease.state else { Issue.record("spec string: \(lease.state)"); return }
        let cm = LockCodec.decode(.configMap, object: ["metadata": ["name": "l", "resourceVersion": "2",
                                                                     "annotations": [LockKind.annotation: ["holderIdentity": "x"]]]])
        guard case .unreadable = cm.state else { Issue.record("annotation object: \(cm.state)"); return }
        #expect(LockCodec.decode(.lease, object: ["metadata": ["name": "l"], "spec": .null]).state == .none)
    }

    /// Hostile: a create answered with someone else's record is not success.
    @Test func createAnsweredWithAnotherHolder_isNotLeadership() {
        var e = started()
        guard case .create = e.step(.observed(.absent), now: at(0), wall: wall) else { Issue.record("expected create"); return }
        let theirs = snapshot(holder: "intruder", rv: "3")
        #expect(e.step(.written(theirs), now: at(0.1), wall: wall) == .wait(until: at(15.1)))
        #expect(e.role == .standby)
        // An answer without a resourceVersion is not ours either.
        var f = Election(identity: "me", timing: timing)
        _ = f.step(.start, now: at(0), wall: wall)
        guard case .create(let r) = f.step(.observed(.absent), now: at(0), wall: wall) else { return }
        #expect(f.step(.written(written(r, base: nil, rv: "")), now: at(0.1), wall: wall) == .wait(until: at(15.1)))
        #expect(f.role == .standby)
    }

    /// Hostile: a renew answered with someone else's record loses at once.
    @Test func renewAnsweredWithAnotherHolder_losesLeadership() {
        var (e, _) = leader()
        _ = e.step(.timer, now: at(2), wall: wall)
        #expect(e.step(.written(snapshot(holder: "intruder", rv: "3")), now: at(2.1), wall: wall)
                == .lostLeadership(reason: "the API server answered our renew with a record held by intruder"))
    }

    /// Hostile: 409 forever on create while reads say absent: one read at
    /// once, and each lost race counts as a hold seen, so the absent lock is
    /// waited out for a lease before the next write (never sooner than the
    /// retry period).
    @Test func conflictForever_writesArePacedByTheLease() {
        var e = started()
        var writes: [Double] = []
        var now = 0.0
        var action = e.step(.observed(.absent), now: at(now), wall: wall)
        for _ in 0..<5 {
            guard case .create = action else { Issue.record("got \(action)"); return }
            writes.append(now)
            #expect(e.step(.lostRace, now: at(now + 0.01), wall: wall) == .get)
            let next = e.step(.observed(.absent), now: at(now + 0.02), wall: wall)
            guard case .wait(let until) = next else { Issue.record("got \(next)"); return }
            now = Double(t0.duration(to: until).milliseconds) / 1000
            action = e.step(.timer, now: at(now), wall: wall)
        }
        #expect(writes == [0, 15.02, 30.04, 45.06, 60.08])
    }

    /// Hostile: a renew answered 409 forever (the re-read says still ours): paced, then lost at the deadline.
    @Test func renewConflictForever_isPacedAndLostAtDeadline() {
        var (e, mine) = leader()
        var renews = 0
        var now = 2.0
        var action = e.step(.timer, now: at(now), wall: wall)
        while case .update = action {
            renews += 1
            #expect(e.step(.lostRace, now: at(now + 0.01), wall: wall) == .get)
            action = e.step(.observed(.present(mine)), now: at(now + 0.02), wall: wall)
            if case .wait(let until) = action {
                now = Double(t0.duration(to: until).milliseconds) / 1000
                action = e.step(.timer, now: at(now), wall: wall)
            }
        }
        guard case .lostLeadership = action else { Issue.record("got \(action)"); return }
        #expect(renews == 4)  // at 2, 4.01, 6.02, 8.03
    }

    /// Hostile: a record without a resourceVersion can never be written
    /// conditionally: never taken; read again after a lease.
    @Test func recordWithoutResourceVersion_isNeverWritten() {
        var e = started()
        let s = snapshot(holder: "", rv: "")
        #expect(e.step(.observed(.present(s)), now: at(0), wall: wall) == .wait(until: at(15)))
        #expect(e.step(.timer, now: at(15), wall: wall) == .get)
    }
}
