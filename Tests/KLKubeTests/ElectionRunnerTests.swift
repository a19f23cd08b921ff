import KLCore
import KLKube
import KLSupport
import KLTestSupport
import Testing

/// The election's host on a virtual clock: pauses and watches advance it
/// instead of sleeping. The runner reads the same clock (`monotonic`).
final class VirtualHost: ElectionHost {
    let monotonic = VirtualMonotonicClock()
    /// Only dates the record, which these tests do not read.
    let wall = VirtualWallClock(start: WallTime(seconds: 1_795_859_505, nanoseconds: 0))
    let t0: MonotonicClock.Instant
    var now: MonotonicClock.Instant { monotonic.now }
    var releaseRequested = false
    var events: [String] = []
    /// Asks for release once the virtual time passes this point.
    var releaseAt: MonotonicClock.Instant?

    init() { t0 = monotonic.now }

    func seconds(_ s: Double) -> MonotonicClock.Instant { t0 + .milliseconds(Int64(s * 1000)) }

    /// Moves the virtual time to `instant` (never backwards): a request's latency, a watch.
    func advance(to instant: MonotonicClock.Instant) {
        if instant > now { monotonic.advance(by: now.duration(to: instant)) }
    }

    func pause(until: MonotonicClock.Instant) -> Bool {
        if let r = releaseAt, !releaseRequested, r <= until {
            advance(to: r)
            releaseRequested = true
            return true
        }
        advance(to: until)
        return false
    }

    func becameLeader() { events.append("leader@\(t0.duration(to: now))") }
    func lostLeadership(reason: String) { events.append("lost: \(reason)") }
}

/// A hand-written fake lock (client-go's `leaderelection_test.go` style): each
/// call must match the next scripted expectation, anything else fails the test.
final class ScriptedLock: LockStore {
    enum Call: CustomStringConvertible {
        case get(Result<Election.Observation, KubeError>)
        case create(Result<LockSnapshot, KubeError>)
        case update(check: (LeaderElectionRecord, LockSnapshot) -> Void, Result<LockSnapshot, KubeError>)
        /// A watch that sees `observation` after `after` seconds (nil: nothing until the deadline).
        case watch(after: Double?, Election.Observation?)
        /// A watch that fails at once (410 Expired, junk, a stream that ends).
        case watchFails(KubeError)
        /// A watch whose opening is still in flight when the deadline comes.
        case watchOpenTimesOut

        var description: String {
            switch self {
            case .get: "get"
            case .create: "create"
            case .update: "update"
            case .watch, .watchFails, .watchOpenTimesOut: "watch"
            }
        }
    }

    var script: [Call]
    var calls: [String] = []
    /// Virtual time (seconds since t0) of each call, when it was made.
    var times: [Double] = []
    let host: VirtualHost
    /// Latency of every request, in virtual time.
    var latency: Duration = .milliseconds(50)

    init(host: VirtualHost, _ script: [Call]) {
        self.host = host
        self.script = script
    }

    var describe: String { "configmap ns/lock" }

    private func next(_ name: String) -> Call? {
        calls.append(name)
        times.append(Double(host.t0.duration(to: host.now).milliseconds) / 1000)
        guard !script.isEmpty else {
            Issue.record("unexpected call \(name) after the script ended; calls: \(calls)")
            return nil
        }
        let call = script.removeFirst()
        if call.description != name {
            Issue.record("expected \(call.description), got \(name); calls: \(calls)")
            return nil
        }
        host.advance(to: host.now + latency)
        return call
    }

    /// As `KubeLockStore`: a watch stays open across waits until a read,
    /// a failure or `stopWatching` ends it.
    private(set) var isWatching = false
    /// Virtual time (seconds since t0) of each wait that opened a watch.
    var watchOpens: [Double] = []

    func get(timeout: Duration) throws(KubeError) -> Election.Observation {
        isWatching = false
        guard case .get(let result)? = next("get") else { throw KubeError(.forbidden, "script") }
        return try result.get()
    }

    func create(_ record: LeaderElectionRecord, timeout: Duration) throws(KubeError) -> LockSnapshot {
        guard case .create(let result)? = next("create") else { throw KubeError(.forbidden, "script") }
        return try result.get()
    }

    func update(_ record: LeaderElectionRecord, base: LockSnapshot, timeout: Duration) throws(KubeError) -> LockSnapshot {
        guard case .update(let check, let result)? = next("update") else { throw KubeError(.forbidden, "script") }
        check(record, base)
        return try result.get()
    }

    func waitForChange(known: LockSnapshot?, deadline: MonotonicClock.Instant) throws(KubeError) -> LockChange {
        if !isWatching { watchOpens.append(Double(host.t0.duration(to: host.now).milliseconds) / 1000) }
        let call = next("watch")
        isWatching = false
        if case .watchFails(let error)? = call { throw error }
        if case .watchOpenTimesOut? = call {
            host.advance(to: deadline)
            return .deadlineWhileOpening
        }
        guard case .watch(let after, let observation)? = call else { throw KubeError(.forbidden, "script") }
        isWatching = true
        if let after, let observation, host.t0 + .milliseconds(Int64(after * 1000)) < deadline {
            host.advance(to: host.t0 + .milliseconds(Int64(after * 1000)))
            return .observed(observation)
        }
        host.advance(to: deadline)
        return .deadline
    }

    func stopWatching() { isWatching = false }
}

@Suite struct ElectionRunnerTests {
    let timing = Election.Timing(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))
    let logger = Logger(level: .critical)

    /// A record held by `holder`; an empty holder is a holder's release
    /// (lease 1 s, as client-go writes it).
    func snapshot(_ holder: String, rv: String) -> LockSnapshot {
        var o = LockCodec.newObject(.configMap, namespace: "ns", name: "lock", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: holder.isEmpty ? 1 : 15, acquireTime: nil, renewTime: nil, leaderTransitions: 0))
        o[path: "metadata", "resourceVersion"] = .string(rv)
        return LockCodec.decode(.configMap, object: o)
    }

    func run(_ host: VirtualHost, _ lock: ScriptedLock) -> ElectionRunner.Outcome {
        ElectionRunner(election: Election(identity: "me", timing: timing), store: lock, host: host, logger: logger,
                       clock: host.monotonic, wallClock: host.wall).run()
    }

    @Test func standby_watchesWithoutPolling_thenTakesReleasedLock_renewsAndReleases() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(25)
        let lock = ScriptedLock(host: host, [
            .get(.success(.present(snapshot("other", rv: "1")))),
            // Renews by the holder arrive through the watch; no requests of ours.
            .watch(after: 2, .present(snapshot("other", rv: "2"))),
            .watch(after: 4, .present(snapshot("other", rv: "3"))),
            // Released: taken at once with one update on the watched version.
            .watch(after: 6, .present(snapshot("", rv: "4"))),
            .update(check: { r, base in #expect(r.holderIdentity == "me"); #expect(base.resourceVersion == "4") },
                    .success(snapshot("me", rv: "5"))),
        ] + (0..<9).map { i in
            // A renew every 2 s on the version of the previous write, no GET.
            .update(check: { _, base in #expect(base.resourceVersion == String(5 + i)) }, .success(snapshot("me", rv: String(6 + i))))
        } + [
            .update(check: { r, _ in #expect(r.holderIdentity == ""); #expect(r.leaseDurationSeconds == 1) },
                    .success(snapshot("", rv: "99"))),
        ])
        #expect(run(host, lock) == .released)
        #expect(host.events == ["leader@6.05 seconds"])
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.calls.filter { $0 == "get" }.count == 1)
    }

    @Test func leader_losesAfterRenewDeadline_withTimeoutsBoundedByIt() {
        let host = VirtualHost()
        let failing = ScriptedLock.Call.update(check: { _, _ in }, .failure(KubeError(.timedOut, "timeout")))
        let lock = ScriptedLock(host: host, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            failing, failing, failing, failing, failing,
        ])
        lock.latency = .seconds(1)  // every request takes a second and then fails
        let outcome = run(host, lock)
        guard case .lost(let reason) = outcome else { Issue.record("got \(outcome)"); return }
        #expect(reason.contains("could not renew within 10s"))
        #expect(host.events.last?.hasPrefix("lost:") == true)
        // Acquire sent at 1 s, so the deadline is 11 s; renews at 3, 6 and 9 s
        // failed; at 11 s it gives up without another request.
        #expect(host.t0.duration(to: host.now) == .seconds(11))
        #expect(lock.calls == ["get", "create", "update", "update", "update"])
    }

    @Test func forbiddenWhileStandby_endsWithConfigurationError() {
        let host = VirtualHost()
        let lock = ScriptedLock(host: host, [
            .get(.success(.absent)),
            .create(.failure(KubeError(.forbidden, "forbidden: create configmaps"))),
        ])
        #expect(run(host, lock) == .configurationError("forbidden: create configmaps"))
        #expect(host.events.isEmpty)
    }

    @Test func createRaceLost_readsAndStandsBy_thenTakesOverAfterLeaseOfSilence() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(99)
        let lock = ScriptedLock(host: host, [
            .get(.success(.absent)),
            .create(.failure(KubeError(.alreadyExists, "already exists"))),
            .get(.success(.present(snapshot("fast", rv: "1")))),
            .watch(after: nil, nil),  // the holder died: silence until expiry
            .update(check: { r, b in #expect(r.leaderTransitions == 1); #expect(b.resourceVersion == "1") },
                    .success(snapshot("me", rv: "2"))),
        ] + (0..<41).map { i in
            .update(check: { _, _ in }, .success(snapshot("me", rv: String(3 + i))))
        } + [.update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "x")))])
        #expect(run(host, lock) == .released)
        let took = host.events.first ?? ""
        // Seen at ≈0.15 s, expired 15 s later by our clock.
        #expect(took.hasPrefix("leader@15."), "\(host.events)")
    }

    /// Row 7: a release answered 503 is retried once per retry period until
    /// the renew deadline (the loop sleeps; no hot loop on the known request).
    @Test func row7_failedRelease_isRetriedEveryRetryPeriodUntilTheDeadline() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(1)
        let failing = ScriptedLock.Call.update(check: { r, _ in #expect(r.holderIdentity == "") },
                                               .failure(KubeError(.serverError, "503 Service Unavailable")))
        let lock = ScriptedLock(host: host, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            failing, failing, failing, failing, failing,
        ])
        #expect(run(host, lock) == .released)
        #expect(lock.script.isEmpty, "\(lock.calls)")
        // Acquired at 0.05 s (deadline 10.05 s); release tries at 1, 3.05, 5.1, 7.15, 9.2 s.
        #expect(lock.times.dropFirst(2).map { ($0 * 100).rounded() / 100 } == [1, 3.05, 5.1, 7.15, 9.2])
        #expect(host.t0.duration(to: host.now) <= .milliseconds(10_050))
    }

    /// Row 7: a release answered 409 re-reads and releases on the new version.
    @Test func row7_conflictingRelease_rereadsThenReleases() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(1)
        let lock = ScriptedLock(host: host, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .update(check: { _, b in #expect(b.resourceVersion == "1") }, .failure(KubeError(.conflict, "409 Conflict"))),
            .get(.success(.present(snapshot("me", rv: "7")))),
            .update(check: { r, b in #expect(r.holderIdentity == ""); #expect(b.resourceVersion == "7") }, .success(snapshot("", rv: "8"))),
        ])
        #expect(run(host, lock) == .released)
        #expect(lock.script.isEmpty, "\(lock.calls)")
        #expect(lock.times[4] >= lock.times[2] + 2)  // paced: one retry period after the conflict
    }

    /// Row 2: every watch failure (410, junk) costs one paced read and one
    /// watch: never more than one of each per retry period.
    @Test func row2_watchFailures_arePacedByTheRetryPeriod() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(11.5)
        let expired = KubeError(.watchFailed, "watch: error 410: too old resource version")
        var script: [ScriptedLock.Call] = []
        for i in 0..<6 {
            script.append(.get(.success(.present(snapshot("other", rv: String(1 + i))))))
            script.append(.watchFails(expired))
        }
        let lock = ScriptedLock(host: host, script)
        #expect(run(host, lock) == .released)
        #expect(lock.script.isEmpty, "\(lock.calls)")
        let gets = zip(lock.calls, lock.times).filter { $0.0 == "get" }.map(\.1)
        for (a, b) in zip(gets, gets.dropFirst()) { #expect(b - a >= 2, "reads at \(gets)") }
        #expect(host.events.isEmpty)
    }

    /// Simulation finding 1: a watch that fails shortly before the standby's
    /// own deadline (the holder's expiry) used to pause only until that
    /// deadline, so the next read came sooner than a retry period after the
    /// previous one. Now neither the read nor the watch repeats within a
    /// retry period; the acquiring write at expiry follows that read.
    @Test func watchFailureNearTheDeadline_stillPacesReadsAndWatches() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(16.5)
        let expired = KubeError(.watchFailed, "watch: error 410: too old resource version")
        let lock = ScriptedLock(host: host, [
            .get(.success(.present(snapshot("other", rv: "1")))),          // 0: seen at 0.05, expires at 15.05
            .watch(after: 11.5, .present(snapshot("other", rv: "2"))),     // same record: expiry unchanged
            .watchFails(expired),                                          // 11.5: fails at once
            .get(.success(.present(snapshot("other", rv: "2")))),          // 13.55
            .watchFails(expired),                                          // 13.6: fails 1.45 s before the expiry
            .get(.success(.present(snapshot("other", rv: "2")))),          // not before 15.55 (was 15.05)
            .update(check: { r, b in #expect(r.holderIdentity == "me"); #expect(b.resourceVersion == "2") },
                    .success(snapshot("me", rv: "3"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "4"))),
        ])
        #expect(run(host, lock) == .released)
        #expect(lock.script.isEmpty, "\(lock.calls)")
        let gets = zip(lock.calls, lock.times).filter { $0.0 == "get" }.map(\.1)
        let watches = zip(lock.calls, lock.times).filter { $0.0 == "watch" }.map(\.1)
        for (a, b) in zip(gets, gets.dropFirst()) { #expect(b - a >= 2, "reads at \(gets)") }
        #expect(gets.count == 3 && watches.count == 3, "\(lock.calls) at \(lock.times)")
        for (a, b) in zip(watches, watches.dropFirst()) { #expect(b - a >= 2, "watches at \(watches)") }
        #expect(host.events.first?.hasPrefix("leader@15.") == true, "\(host.events)")
    }

    /// After a failed watch, no new watch for a retry period, even when the
    /// read after it comes sooner (the standby's deadline was near) and the
    /// election then waits again: the runner pauses instead of watching.
    @Test func afterAWatchFailure_noWatchForARetryPeriod() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(16)
        let lock = ScriptedLock(host: host, [
            .get(.success(.present(snapshot("other", rv: "1")))),          // 0: expires at 15.05
            .watch(after: 14.5, .present(snapshot("other", rv: "2"))),     // same record
            .watchFails(KubeError(.connectionClosed, "watch: connection reset")), // 14.5
            .get(.success(.present(snapshot("other2", rv: "3")))),         // 15.05 (the deadline): a new holder
            // No watch before 16.55: the pause ends with the release request at 16.
        ])
        #expect(run(host, lock) == .released)
        #expect(lock.script.isEmpty && lock.calls.count == 4, "\(lock.calls) at \(lock.times)")
        #expect(host.events.isEmpty)
    }

    /// The seed-100022 corner of the simulation: a watch still being opened
    /// when the standby's deadline comes is not a failure (no warning, no
    /// extra read), but the next watch is paced like one. Before, the failed
    /// acquire at the deadline was followed by a new watch 30 ms after the
    /// one that never opened.
    @Test func watchOpenTimingOutAtTheDeadline_pacesTheNextWatch() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(18)
        let lock = ScriptedLock(host: host, [
            .get(.success(.present(snapshot("other", rv: "1")))),          // 0: expires at 15.05
            .watchOpenTimesOut,                                            // opened ~0.1, times out at 15.05
            .update(check: { r, _ in #expect(r.holderIdentity == "me") },
                    .failure(KubeError(.serverError, "500 InternalError"))), // the acquire at expiry fails
            .watch(after: nil, nil),                                       // not before 17.05
            .update(check: { r, _ in #expect(r.holderIdentity == "me") }, .success(snapshot("me", rv: "2"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "3"))),
        ])
        let logs = MemorySink()
        let outcome = ElectionRunner(election: Election(identity: "me", timing: timing), store: lock, host: host,
                                     logger: Logger(level: .info, sink: logs), clock: host.monotonic, wallClock: host.wall).run()
        #expect(outcome == .released)
        #expect(lock.script.isEmpty, "\(lock.calls) at \(lock.times)")
        // The first watch's open was in flight until the expiry at 15.05.
        let watches = zip(lock.calls, lock.times).filter { $0.0 == "watch" }.map(\.1)
        #expect(watches.count == 2 && watches[1] >= 15.05 + 2, "watches at \(watches)")
        #expect(host.events.count == 1 && host.events[0].hasPrefix("leader@17."), "\(host.events)")
        #expect(!logs.text.contains("watch failed"), "a slow open is not a failure: \(logs.text)")
    }

    /// Random seed 106187: a watch opened late in the wait before a retried
    /// read (paced after an open that was still in flight at a deadline) was
    /// ended by that read, and the wait after the read opened the next watch
    /// 39 ms later. Now no watch opens within a retry period of the last
    /// one, whatever ended it.
    @Test func aReadEndingAFreshWatch_doesNotOpenTheNextWithinARetryPeriod() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(20)
        let failed = KubeError(.serverError, "503 ServiceUnavailable")
        let lock = ScriptedLock(host: host, [
            .get(.failure(failed)),                                        // 0
            .watchOpenTimesOut,                                            // until the read's retry at 2.05
            .get(.failure(failed)),                                        // 2.05
            .watch(after: nil, nil),                                       // opened at 4.05 (paced), until 4.1
            .get(.success(.present(snapshot("other", rv: "1")))),          // 4.1: the retried read ends that watch
            .watch(after: nil, nil),                                       // not before 6.05; until the expiry
            .update(check: { r, _ in #expect(r.holderIdentity == "me") }, .success(snapshot("me", rv: "2"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "3"))),
        ])
        #expect(run(host, lock) == .released)
        #expect(lock.script.isEmpty, "\(lock.calls) at \(lock.times)")
        #expect(lock.watchOpens.count == 3, "\(lock.watchOpens)")
        for (a, b) in zip(lock.watchOpens, lock.watchOpens.dropFirst()) {
            #expect(b - a >= 2, "watches opened at \(lock.watchOpens)")
        }
    }

    /// The watch pacing never delays a take-over: after a lost race the
    /// re-watch waits a retry period from the previous watch, which was
    /// opened before the lost write, so it is open again before the election
    /// may write again (a retry period after the lost write), and a release
    /// by the winner meanwhile is seen from the read's version.
    @Test func afterALostRace_watchPacingDoesNotDelayTheTakeOver() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(4)
        let lock = ScriptedLock(host: host, [
            .get(.success(.present(snapshot("other", rv: "1")))),          // 0
            .watch(after: 1.0, .present(snapshot("", rv: "2"))),           // opened at 0.05; the release at 1.0
            .update(check: { r, _ in #expect(r.holderIdentity == "me") },
                    .failure(KubeError(.conflict, "409 Conflict"))),       // another standby won
            .get(.success(.present(snapshot("other2", rv: "3")))),         // 1.1: the winner
            .watch(after: 2.05, .present(snapshot("", rv: "4"))),          // opened at 2.05, from the read: the winner has released
            .watch(after: nil, nil),                                       // writes wait until 3.0 (the lost write + retry)
            .update(check: { r, b in #expect(r.holderIdentity == "me"); #expect(b.resourceVersion == "4") },
                    .success(snapshot("me", rv: "5"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "6"))),
        ])
        #expect(run(host, lock) == .released)
        #expect(lock.script.isEmpty, "\(lock.calls) at \(lock.times)")
        #expect(lock.watchOpens.count == 2 && lock.watchOpens[1] >= 2.05, "watches opened at \(lock.watchOpens)")
        #expect(host.events.first?.hasPrefix("leader@3.") == true, "\(host.events) \(lock.calls) at \(lock.times)")
    }

    /// Row 4: a renew answered with the same resourceVersion does not count:
    /// with nothing but no-ops the leader loses at the renew deadline.
    @Test func row4_noOpRenews_loseAtTheDeadline() {
        let host = VirtualHost()
        let noop = ScriptedLock.Call.update(check: { _, _ in }, .success(snapshot("me", rv: "1")))
        let lock = ScriptedLock(host: host, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            noop, noop, noop, noop,  // at 2.05, 4.1, 6.15 and 8.2 s; at 10.05 s it gives up
        ])
        let outcome = run(host, lock)
        guard case .lost(let reason) = outcome else { Issue.record("got \(outcome)"); return }
        #expect(reason.contains("10s"), "\(reason)")
        #expect(lock.script.isEmpty, "\(lock.calls)")
        #expect(host.t0.duration(to: host.now) == .milliseconds(10_050))
    }

    /// Hostile: a create answered with another holder is not leadership.
    @Test func createAnsweredWithAnotherHolder_doesNotStartTheChild() {
        let host = VirtualHost()
        host.releaseAt = host.seconds(16)
        let lock = ScriptedLock(host: host, [
            .get(.success(.absent)),
            .create(.success(snapshot("intruder", rv: "2"))),
            .watch(after: nil, nil),  // the intruder's record is waited out like any other
            .update(check: { r, b in #expect(r.holderIdentity == "me"); #expect(b.resourceVersion == "2") },
                    .success(snapshot("me", rv: "3"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "4"))),
        ])
        #expect(run(host, lock) == .released)
        #expect(host.events.count == 1 && host.events[0].hasPrefix("leader@15."), "\(host.events)")
        #expect(lock.script.isEmpty, "\(lock.calls)")
    }
}
