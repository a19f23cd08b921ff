import KLCore
import Testing

/// Hand-over when asked: the leader watches the lock between renews, so an edit
/// of the preferred holder starts the hand-over at once instead of at the
/// next renew; every read of that watch ends by the renew, so renewing is
/// never delayed. Scripted on the virtual clock of `SessionHarness`
/// (latency 50 ms per call; the create is sent at 0.05 s, so the renews are
/// due at 2.05 s, 4.05 s, …).
@Suite struct LeaderWatchTests {
    let timing = Election.Timing(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))

    func snapshot(_ holder: String, rv: String, preferred: String? = nil, note: String? = nil) -> LockSnapshot {
        var o = LockCodec.newObject(.configMap, namespace: "ns", name: "lock", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: holder.isEmpty ? 1 : 15, acquireTime: nil, renewTime: nil, leaderTransitions: 0))
        o[path: "metadata", "resourceVersion"] = .string(rv)
        if let preferred { o[path: "metadata", "annotations", LockKind.preferredHolderAnnotation] = .string(preferred) }
        if let note { o[path: "metadata", "annotations", "example.com/note"] = .string(note) }
        return LockCodec.decode(.configMap, object: o)
    }

    /// Every watch read after the session became leader ends no later than
    /// the renew then due (last renew's send time + retry period), and the
    /// watch opens from the version of our last write.
    func expectReadsEndByTheRenew(_ lock: SessionHarness, sourceLocation: SourceLocation = #_sourceLocation) {
        var due: MonotonicInstant?
        var reads = 0
        for command in lock.commands {
            switch command {
            case .renewed(let sentAt): due = sentAt + timing.retryPeriod
            case .readWatch(let until):
                guard let due else { continue }
                reads += 1
                #expect(until <= due, "a leader's watch read ends at \(lock.t0.duration(to: until)), after the renew due at \(lock.t0.duration(to: due))",
                        sourceLocation: sourceLocation)
            default: break
            }
        }
        #expect(reads > 0, "the leader never read a watch", sourceLocation: sourceLocation)
    }

    func watchOpensFrom(_ lock: SessionHarness) -> [String?] {
        lock.commands.compactMap { c -> String?? in
            if case .send(.watch(let rv, _), _) = c { return .some(rv) } else { return nil }
        }
    }

    /// `kubectl annotate … kube-leader.io/preferred-holder=b` at 1 s: the
    /// leader's watch sees the MODIFIED event, the session tells the host to
    /// hand over at 1 s (not at the renew due at 2.05 s) and renews on the
    /// new version; then the release keeps the annotation.
    @Test func preferredHolderEdit_startsTheHandOverAtOnce_notAtTheRenew() {
        let lock = SessionHarness(timing, releaseAt: 1.5, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .watch(after: 1.0, .present(snapshot("me", rv: "5", preferred: "b"))),
            .update(check: { _, base in #expect(base == "5", "the renew is written on the edited version") },
                    .success(snapshot("me", rv: "6", preferred: "b"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "7", preferred: "b"))),
        ])
        lock.leaderWatchScripted = true
        lock.rejoinAfter = nil
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.calls == ["get", "create", "watch", "update", "update"])
        #expect(lock.events.filter { $0.hasPrefix("hand over") } == ["hand over to b"])
        // The renew on the edited version, sent with the hand-over, at the event's time.
        #expect(lock.times[3] == 1.0, "acted at \(lock.times[3]) s, not when the edit was seen (1 s)")
        #expect(lock.seam.contains("hand over") && lock.session.handOvers == 1)
        #expect(watchOpensFrom(lock) == ["1"], "watches from the acquire's version")
        expectReadsEndByTheRenew(lock)
    }

    /// Nothing happens between renews: the reads end exactly at the renew
    /// times, so the renews go out on time (2.05 s, 4.05 s) over one long
    /// watch; a deletion seen at 5 s loses at once (the renew at 6.05 s
    /// would have found it).
    @Test func readsEndByTheRenew_renewsOnTime_deletionLosesAtOnce() {
        let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .watch(after: nil, nil),
            .update(check: { _, base in #expect(base == "1") }, .success(snapshot("me", rv: "2"))),
            .watch(after: nil, nil),
            .update(check: { _, base in #expect(base == "2") }, .success(snapshot("me", rv: "3"))),
            .watch(after: 5.0, .absent),
        ])
        lock.leaderWatchScripted = true
        #expect(lock.run() == .lost(reason: "the lock object was deleted"))
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.calls == ["get", "create", "watch", "update", "watch", "update", "watch"])
        #expect(lock.times[3] == 2.05 && lock.times[5] == 4.05, "renews at \(lock.times)")
        #expect(lock.events.last == "lost: the lock object was deleted")
        #expect(watchOpensFrom(lock) == ["1"], "one watch across the renews")
        expectReadsEndByTheRenew(lock)
    }

    /// Our own write's event and an edit of another field (an annotation)
    /// change nothing before the renew: no extra request, renew on time.
    @Test func ownEchoAndOtherFieldEdits_waitForTheRenew() {
        let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .watch(after: 0.5, .present(snapshot("me", rv: "1"))),
            .watch(after: 1.0, .present(snapshot("me", rv: "2", note: "x"))),
            .watch(after: nil, nil),
            .update(check: { _, _ in }, .success(snapshot("me", rv: "3", note: "x"))),
            .watch(after: 3.0, .present(snapshot("other", rv: "4"))),
        ])
        lock.leaderWatchScripted = true
        #expect(lock.run() == .lost(reason: "the lock is now held by other"))
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.calls == ["get", "create", "watch", "watch", "watch", "update", "watch"])
        #expect(lock.times[5] == 2.05, "renew at \(lock.times[5]) s")
        #expect(!lock.events.contains { $0.hasPrefix("hand over") })
        expectReadsEndByTheRenew(lock)
    }

    /// A failed leader watch (410 Expired) costs no read: the renews go on,
    /// and the watch is opened again a retry period after the failure, from
    /// the version of the last renew.
    @Test func failedWatch_noRead_reopenedAfterARetryPeriod_fromTheLastRenew() {
        let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .watchFails(.status(410, "too old resource version")),
            .update(check: { _, base in #expect(base == "1") }, .success(snapshot("me", rv: "2"))),
            .watch(after: 3.0, .present(snapshot("me", rv: "3", preferred: "b"))),
            .update(check: { _, base in #expect(base == "3") }, .success(snapshot("me", rv: "4", preferred: "b"))),
        ])
        lock.leaderWatchScripted = true
        lock.script.append(.update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "5", preferred: "b"))))
        lock.releaseAt = lock.seconds(3.5)
        lock.rejoinAfter = nil
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.calls == ["get", "create", "watch", "update", "watch", "update", "update"])
        #expect(lock.watchOpens == [0.1, 2.15], "reopened a retry period after the failure at 0.15 s: \(lock.watchOpens)")
        #expect(watchOpensFrom(lock) == ["1", "2"])
        #expect(lock.times[3] == 2.05 && lock.times[5] == 3.0)
        expectReadsEndByTheRenew(lock)
    }

    /// The host's release request (the child exited) wakes the leader's
    /// watch read: the release goes out at 1 s, not at the renew (2.05 s).
    @Test func releaseRequest_wakesTheLeadersRead() {
        let lock = SessionHarness(timing, releaseAt: 1.0, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "2"))),
        ])
        #expect(lock.run() == .released)
        #expect(lock.calls == ["get", "create", "update"])
        #expect(lock.times[2] == 1.0, "released at \(lock.times[2]) s")
        #expect(lock.commands.contains { if case .readWatch = $0 { true } else { false } }, "the leader watched")
    }
}

extension LeaderWatchTests {
    /// `--on-loss standby`: the leader's watch sees the lock taken 0.45 s
    /// after the acquire; the child is gone 1 s later; the first read
    /// standing by again waits until a retry period after the last standby
    /// read (0 s → 2 s), so a standby still reads once per retry period.
    @Test func lossSeenAtOnce_rejoinReadWaitsARetryPeriodFromTheLastStandbyRead() {
        let lock = SessionHarness(timing, onLoss: .standby, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .watch(after: 0.5, .present(snapshot("other", rv: "2"))),
            .get(.success(.present(snapshot("other", rv: "2")))),
            .watchFails(.status(410, "too old resource version")),
        ])
        lock.leaderWatchScripted = true
        lock.releaseAt = lock.seconds(2.5)
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.calls == ["get", "create", "watch", "get", "watch"])
        #expect(lock.events.contains("lost: the lock is now held by other"))
        #expect(lock.times[3] == 2.0, "the rejoin's read at \(lock.times[3]) s, not a retry period after the read at 0 s")
    }
}
