import KLCore
import Testing

/// What the session tells the supervisor (the seam of rows 5 and 6 of
/// docs/simulation.md's table): renews with their send times, acquires in flight, refusals.
@Suite struct LockSessionSeamTests: ElectionScript {
    /// Row 5: the supervisor's own deadline needs each renew's SEND time:
    /// the acquire sent at 0.05 s (after the read), renews at 2.05 s and 4.05 s.
    @Test func renewsAreReportedWithTheirSendTimes_andTheAcquireBeforeBecomingLeader() {
        let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .update(check: { _, _ in }, .success(snapshot("me", rv: "2"))),
            .update(check: { _, _ in }, .success(snapshot("me", rv: "3"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "4", lease: 15))),
        ])
        lock.releaseAt = lock.seconds(5)
        #expect(lock.run() == .released)
        #expect(lock.seam == ["acquire", "renewed@0.05 seconds", "won", "leader", "renewed@2.05 seconds", "renewed@4.05 seconds"])
    }

    /// Row 6: once kube-leader is stopping, no acquiring write is sent.
    @Test func stopping_refusesTheCreate_andEndsReleasedWithoutWriting() {
        let lock = SessionHarness(timing, [.get(.success(.absent))])
        lock.stopping = true
        #expect(lock.run() == .released)
        #expect(lock.calls == ["get"])
        #expect(lock.seam == ["acquire refused"])
    }

    @Test func stopping_refusesTheTakeoverUpdateToo() {
        let lock = SessionHarness(timing, [.get(.success(.present(snapshot("", rv: "7", lease: 15))))])
        lock.stopping = true
        #expect(lock.run() == .released)
        #expect(lock.calls == ["get"])
    }

    @Test func aFailedAcquire_isReportedOver_notWon_andTheNextIsRefusedOnceStopping() {
        let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.failure(LockSession.Failure(.timedOut, "timeout"))),
            .watch(after: nil, nil),
        ])
        lock.stopAfter = 1
        #expect(lock.run() == .released)
        #expect(lock.seam == ["acquire", "not won", "acquire refused"])
        #expect(lock.calls == ["get", "create", "watch"])
    }
}
