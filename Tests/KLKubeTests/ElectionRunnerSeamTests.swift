import KLCore
import KLKube
import KLSupport
import Testing

/// A host that records what the election thread tells the supervisor (the
/// seam of issue 10 rows 5 and 6), on `VirtualHost`'s virtual time.
final class SeamHost: ElectionHost {
    let clock = VirtualHost()
    var releaseRequested = false
    /// kube-leader is stopping: refuse acquiring writes from the start.
    var stopping = false
    /// Stop after this many acquiring writes were allowed.
    var stopAfter = Int.max
    var events: [String] = []

    func pause(until: MonotonicClock.Instant) -> Bool { clock.pause(until: until) || releaseRequested }
    func becameLeader() { events.append("leader") }
    func lostLeadership(reason: String) { events.append("lost") }
    func beginAcquire() -> Bool {
        if stopAfter <= 0 { stopping = true }
        stopAfter -= 1
        events.append(stopping ? "acquire refused" : "acquire")
        if stopping { releaseRequested = true }
        return !stopping
    }
    func endAcquire(won: Bool) { events.append(won ? "won" : "not won") }
    func renewed(sentAt: MonotonicClock.Instant) { events.append("renewed@\(clock.t0.duration(to: sentAt))") }
}

@Suite struct ElectionRunnerSeamTests {
    let timing = Election.Timing(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))

    func snapshot(_ holder: String, rv: String) -> LockSnapshot {
        var o = LockCodec.newObject(.configMap, namespace: "ns", name: "lock", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: nil, renewTime: nil, leaderTransitions: 0))
        o[path: "metadata", "resourceVersion"] = .string(rv)
        return LockCodec.decode(.configMap, object: o)
    }

    func run(_ host: SeamHost, _ lock: ScriptedLock) -> ElectionRunner.Outcome {
        ElectionRunner(election: Election(identity: "me", timing: timing), store: lock, host: host, logger: Logger(level: .critical),
                       clock: host.clock.monotonic, wallClock: host.clock.wall).run()
    }

    /// Row 5: the supervisor's own deadline needs each renew's SEND time:
    /// the acquire sent at 0.05 s (after the GET), renews at 2.1 s and 4.15 s.
    @Test func renewsAreReportedWithTheirSendTimes_andTheAcquireBeforeBecomingLeader() {
        let host = SeamHost()
        host.clock.releaseAt = host.clock.seconds(5)
        let lock = ScriptedLock(host: host.clock, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .update(check: { _, _ in }, .success(snapshot("me", rv: "2"))),
            .update(check: { _, _ in }, .success(snapshot("me", rv: "3"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "4"))),
        ])
        #expect(run(host, lock) == .released)
        #expect(host.events == ["acquire", "renewed@0.05 seconds", "won", "leader", "renewed@2.05 seconds", "renewed@4.05 seconds"])
    }

    /// Row 6: once kube-leader is stopping, no acquiring write is sent.
    @Test func stopping_refusesTheCreate_andEndsReleasedWithoutWriting() {
        let host = SeamHost()
        host.stopping = true
        let lock = ScriptedLock(host: host.clock, [.get(.success(.absent))])
        #expect(run(host, lock) == .released)
        #expect(lock.calls == ["get"])
        #expect(host.events == ["acquire refused"])
    }

    @Test func stopping_refusesTheTakeoverUpdateToo() {
        let host = SeamHost()
        host.stopping = true
        let lock = ScriptedLock(host: host.clock, [.get(.success(.present(snapshot("", rv: "7"))))])
        #expect(run(host, lock) == .released)
        #expect(lock.calls == ["get"])
    }

    @Test func aFailedAcquire_isReportedOver_notWon_andTheNextIsRefusedOnceStopping() {
        let host = SeamHost()
        host.stopAfter = 1
        let lock = ScriptedLock(host: host.clock, [
            .get(.success(.absent)),
            .create(.failure(KubeError(.timedOut, "timeout"))),
            .watch(after: nil, nil),
        ])
        #expect(run(host, lock) == .released)
        #expect(host.events == ["acquire", "not won", "acquire refused"])
        #expect(lock.calls == ["get", "create", "watch"])
    }
}
