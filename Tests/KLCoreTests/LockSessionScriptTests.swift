import KLCore
import Testing

/// The scenarios the blocking runner was tested with, now on the session
/// itself (virtual time, no sockets): every one still asserts what it did.
@Suite struct LockSessionScriptTests: ElectionScript {
    @Test func standby_watchesWithoutPolling_thenTakesReleasedLock_renewsAndReleases() {
        let lock = SessionHarness(timing, releaseAt: 25, [
            .get(.success(.present(snapshot("other", rv: "1")))),
            // Renews by the holder arrive through the watch; no requests of ours.
            .watch(after: 2, .present(snapshot("other", rv: "2"))),
            .watch(after: 4, .present(snapshot("other", rv: "3"))),
            // Released: taken at once with one update on the watched version.
            .watch(after: 6, .present(snapshot("", rv: "4"))),
            .update(check: { r, base in #expect(r.holderIdentity == "me"); #expect(base == "4") },
                    .success(snapshot("me", rv: "5"))),
        ] + (0..<9).map { i in
            // A renew every 2 s on the version of the previous write, no read.
            .update(check: { _, base in #expect(base == String(5 + i)) }, .success(snapshot("me", rv: String(6 + i))))
        } + [
            .update(check: { r, _ in #expect(r.holderIdentity == ""); #expect(r.leaseDurationSeconds == 1) },
                    .success(snapshot("", rv: "99"))),
        ])
        #expect(lock.run() == .released)
        #expect(lock.events == ["leader@6.05 seconds"])
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.calls.filter { $0 == "get" }.count == 1)
    }

    @Test func leader_losesAfterRenewDeadline_withFailuresPacedByTheRetryPeriod() {
        let failing = SessionHarness.Call.update(check: { _, _ in }, .failure(.status(503, "503 Service Unavailable")))
        let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            failing, failing, failing, failing, failing,
        ])
        lock.latency = .seconds(1)  // every request takes a second and then fails
        let outcome = lock.run()
        guard case .lost(let reason) = outcome else { Issue.record("got \(String(describing: outcome))"); return }
        #expect(reason.contains("could not renew within 10s"))
        #expect(lock.events.last?.hasPrefix("lost:") == true)
        // Acquire sent at 1 s, so the deadline is 11 s; renews at 3, 6 and 9 s
        // failed; at 11 s it gives up without another request.
        #expect(lock.t0.duration(to: lock.now) == .seconds(11))
        #expect(lock.calls == ["get", "create", "update", "update", "update"])
    }

    /// Dead connections: a renew stuck on a dead kept-alive connection times
    /// out after half of what is left of the renew deadline, and is tried
    /// again at once (on a fresh connection): the leader keeps the lock.
    /// Before, its one attempt waited until the deadline and the leader lost.
    @Test func row4_renewStuckOnADeadConnection_isRetriedWithinTheDeadline() {
        let lock = SessionHarness(timing, releaseAt: 7, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),                                     // sent 0.05: deadline 10.05
            .update(check: { _, _ in }, .failure(LockSession.Failure(.timedOut, "timed out"))), // 2.05: hangs 4 s
            .update(check: { _, _ in }, .success(snapshot("me", rv: "2"))),                 // 6.05: at once
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "3"))),
        ])
        lock.hangs = true
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "\(lock.calls) at \(lock.times)")
        #expect(!lock.events.contains { $0.hasPrefix("lost") }, "\(lock.events)")
        #expect(lock.timeouts.first == .seconds(4), "half of the 8 s left: \(lock.timeouts)")
        let updates = zip(lock.calls, lock.times).filter { $0.0 == "update" }.map(\.1)
        #expect(updates.prefix(2) == [2.05, 6.05], "\(updates)")
    }

    @Test func forbiddenWhileStandby_endsWithConfigurationError() {
                let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.failure(.status(403, "forbidden: create configmaps"))),
        ])
        #expect(lock.run() == .configurationError("forbidden: create configmaps"))
        #expect(lock.events.isEmpty)
    }

    @Test func createRaceLost_readsAndStandsBy_thenTakesOverAfterLeaseOfSilence() {
        let lock = SessionHarness(timing, releaseAt: 99, [
            .get(.success(.absent)),
            .create(.failure(.status(409, "already exists"))),
            .get(.success(.present(snapshot("fast", rv: "1")))),
            .watch(after: nil, nil),  // the holder died: silence until expiry
            .update(check: { r, b in #expect(r.leaderTransitions == 1); #expect(b == "1") },
                    .success(snapshot("me", rv: "2"))),
        ] + (0..<41).map { i in
            .update(check: { _, _ in }, .success(snapshot("me", rv: String(3 + i))))
        } + [.update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "x")))])
        #expect(lock.run() == .released)
        let took = lock.events.first ?? ""
        // Seen at ≈0.15 s, expired 15 s later by our clock.
        #expect(took.hasPrefix("leader@15."), "\(lock.events)")
    }

    /// Row 7: a release answered 503 is retried once per retry period until
    /// the renew deadline (the loop sleeps; no hot loop on the known request).
    @Test func row7_failedRelease_isRetriedEveryRetryPeriodUntilTheDeadline() {
        let failing = SessionHarness.Call.update(check: { r, _ in #expect(r.holderIdentity == "") },
                                               .failure(.status(503, "503 Service Unavailable")))
        let lock = SessionHarness(timing, releaseAt: 1, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            failing, failing, failing, failing, failing,
        ])
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "\(lock.calls)")
        // Acquired at 0.05 s (deadline 10.05 s); release tries at 1, 3.05, 5.1, 7.15, 9.2 s.
        #expect(lock.times.dropFirst(2).map { ($0 * 100).rounded() / 100 } == [1, 3.05, 5.1, 7.15, 9.2])
        #expect(lock.t0.duration(to: lock.now) <= .milliseconds(10_050))
    }

    /// Row 7: a release answered 409 re-reads and releases on the new version.
    @Test func row7_conflictingRelease_rereadsThenReleases() {
        let lock = SessionHarness(timing, releaseAt: 1, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .update(check: { _, b in #expect(b == "1") }, .failure(.status(409, "409 Conflict"))),
            .get(.success(.present(snapshot("me", rv: "7")))),
            .update(check: { r, b in #expect(r.holderIdentity == ""); #expect(b == "7") }, .success(snapshot("", rv: "8"))),
        ])
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "\(lock.calls)")
        #expect(lock.times[4] >= lock.times[2] + 2)  // paced: one retry period after the conflict
    }

    /// Row 2: every watch failure (410, junk) costs one paced read and one
    /// watch: never more than one of each per retry period.
    @Test func row2_watchFailures_arePacedByTheRetryPeriod() {
        let expired = LockSession.Failure(.transport, "watch: error 410: too old resource version")
        var script: [SessionHarness.Call] = []
        for i in 0..<6 {
            script.append(.get(.success(.present(snapshot("other", rv: String(1 + i))))))
            script.append(.watchFails(expired))
        }
        let lock = SessionHarness(timing, releaseAt: 11.5, script)
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "\(lock.calls)")
        let gets = zip(lock.calls, lock.times).filter { $0.0 == "get" }.map(\.1)
        for (a, b) in zip(gets, gets.dropFirst()) { #expect(b - a >= 2, "reads at \(gets)") }
        #expect(lock.events.isEmpty)
    }

    /// Found by the simulation: a watch that fails shortly before the standby's
    /// own deadline (the holder's expiry) used to pause only until that
    /// deadline, so the next read came sooner than a retry period after the
    /// previous one. Now neither the read nor the watch repeats within a
    /// retry period; the acquiring write at expiry follows that read.
    @Test func watchFailureNearTheDeadline_stillPacesReadsAndWatches() {
                        let expired = LockSession.Failure(.transport, "watch: error 410: too old resource version")
        let lock = SessionHarness(timing, releaseAt: 16.5, [
            .get(.success(.present(snapshot("other", rv: "1")))),          // 0: seen at 0.05, expires at 15.05
            .watch(after: 11.5, .present(snapshot("other", rv: "2"))),     // same record: expiry unchanged
            .watchFails(expired),                                          // 11.5: fails at once
            .get(.success(.present(snapshot("other", rv: "2")))),          // 13.55
            .watchFails(expired),                                          // 13.6: fails 1.45 s before the expiry
            .get(.success(.present(snapshot("other", rv: "2")))),          // not before 15.55 (was 15.05)
            .update(check: { r, b in #expect(r.holderIdentity == "me"); #expect(b == "2") },
                    .success(snapshot("me", rv: "3"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "4"))),
        ])
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "\(lock.calls)")
        let gets = zip(lock.calls, lock.times).filter { $0.0 == "get" }.map(\.1)
        let watches = zip(lock.calls, lock.times).filter { $0.0 == "watch" }.map(\.1)
        for (a, b) in zip(gets, gets.dropFirst()) { #expect(b - a >= 2, "reads at \(gets)") }
        #expect(gets.count == 3 && watches.count == 3, "\(lock.calls) at \(lock.times)")
        for (a, b) in zip(watches, watches.dropFirst()) { #expect(b - a >= 2, "watches at \(watches)") }
        #expect(lock.events.first?.hasPrefix("leader@15.") == true, "\(lock.events)")
    }

    /// After a failed watch, no new watch for a retry period, even when the
    /// read after it comes sooner (the standby's deadline was near) and the
    /// election then waits again: the runner pauses instead of watching.
    @Test func afterAWatchFailure_noWatchForARetryPeriod() {
        let lock = SessionHarness(timing, releaseAt: 16, [
            .get(.success(.present(snapshot("other", rv: "1")))),          // 0: expires at 15.05
            .watch(after: 14.5, .present(snapshot("other", rv: "2"))),     // same record
            .watchFails(LockSession.Failure(.transport, "watch: connection reset")), // 14.5
            .get(.success(.present(snapshot("other2", rv: "3")))),         // 15.05 (the deadline): a new holder
            // No watch before 16.55: the pause ends with the release request at 16.
        ])
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty && lock.calls.count == 4, "\(lock.calls) at \(lock.times)")
        #expect(lock.events.isEmpty)
    }

    /// The seed-100022 corner of the simulation: a watch still being opened
    /// when the standby's deadline comes is not a failure (no warning, no
    /// extra read), but the next watch is paced like one. Before, the failed
    /// acquire at the deadline was followed by a new watch 30 ms after the
    /// one that never opened.
    @Test func watchOpenTimingOutAtTheDeadline_pacesTheNextWatch() {
        let lock = SessionHarness(timing, releaseAt: 18, [
            .get(.success(.present(snapshot("other", rv: "1")))),          // 0: expires at 15.05
            .watchOpenTimesOut,                                            // opened ~0.1, times out at 15.05
            .update(check: { r, _ in #expect(r.holderIdentity == "me") },
                    .failure(.status(500, "500 InternalError"))), // the acquire at expiry fails
            .watch(after: nil, nil),                                       // not before 17.05
            .update(check: { r, _ in #expect(r.holderIdentity == "me") }, .success(snapshot("me", rv: "2"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "3"))),
        ])
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "\(lock.calls) at \(lock.times)")
        // The first watch's open was in flight until the expiry at 15.05.
        let watches = zip(lock.calls, lock.times).filter { $0.0 == "watch" }.map(\.1)
        #expect(watches.count == 2 && watches[1] >= 15.05 + 2, "watches at \(watches)")
        #expect(lock.events.count == 1 && lock.events[0].hasPrefix("leader@17."), "\(lock.events)")
        #expect(!lock.logs.contains { $0.contains("watch failed") }, "a slow open is not a failure: \(lock.logs)")
    }

    /// Scenario `read-ends-fresh-watch`: a watch opened late in the wait before a retried
    /// read (paced after an open that was still in flight at a deadline) was
    /// ended by that read, and the wait after the read opened the next watch
    /// 39 ms later. Now no watch opens within a retry period of the last
    /// one, whatever ended it.
    @Test func aReadEndingAFreshWatch_doesNotOpenTheNextWithinARetryPeriod() {
        let failed = LockSession.Failure.status(503, "503 ServiceUnavailable")
        let lock = SessionHarness(timing, releaseAt: 20, [
            .get(.failure(failed)),                                        // 0
            .watchOpenTimesOut,                                            // until the read's retry at 2.05
            .get(.failure(failed)),                                        // 2.05
            .watch(after: nil, nil),                                       // opened at 4.05 (paced), until 4.1
            .get(.success(.present(snapshot("other", rv: "1")))),          // 4.1: the retried read ends that watch
            .watch(after: nil, nil),                                       // not before 6.05; until the expiry
            .update(check: { r, _ in #expect(r.holderIdentity == "me") }, .success(snapshot("me", rv: "2"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "3"))),
        ])
        #expect(lock.run() == .released)
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
        let lock = SessionHarness(timing, releaseAt: 4, [
            .get(.success(.present(snapshot("other", rv: "1")))),          // 0
            .watch(after: 1.0, .present(snapshot("", rv: "2"))),           // opened at 0.05; the release at 1.0
            .update(check: { r, _ in #expect(r.holderIdentity == "me") },
                    .failure(.status(409, "409 Conflict"))),       // another standby won
            .get(.success(.present(snapshot("other2", rv: "3")))),         // 1.1: the winner
            .watch(after: 2.05, .present(snapshot("", rv: "4"))),          // opened at 2.05, from the read: the winner has released
            .watch(after: nil, nil),                                       // writes wait until 3.0 (the lost write + retry)
            .update(check: { r, b in #expect(r.holderIdentity == "me"); #expect(b == "4") },
                    .success(snapshot("me", rv: "5"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "6"))),
        ])
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "\(lock.calls) at \(lock.times)")
        #expect(lock.watchOpens.count == 2 && lock.watchOpens[1] >= 2.05, "watches opened at \(lock.watchOpens)")
        #expect(lock.events.first?.hasPrefix("leader@3.") == true, "\(lock.events) \(lock.calls) at \(lock.times)")
    }

    /// Row 4: a renew answered with the same resourceVersion does not count:
    /// with nothing but no-ops the leader loses at the renew deadline.
    @Test func row4_noOpRenews_loseAtTheDeadline() {
                let noop = SessionHarness.Call.update(check: { _, _ in }, .success(snapshot("me", rv: "1")))
        let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            noop, noop, noop, noop,  // at 2.05, 4.1, 6.15 and 8.2 s; at 10.05 s it gives up
        ])
        let outcome = lock.run()
        guard case .lost(let reason) = outcome else { Issue.record("got \(outcome)"); return }
        #expect(reason.contains("10s"), "\(reason)")
        #expect(lock.script.isEmpty, "\(lock.calls)")
        #expect(lock.t0.duration(to: lock.now) == .milliseconds(10_050))
    }

    /// Hostile: a create answered with another holder is not leadership.
    @Test func createAnsweredWithAnotherHolder_doesNotStartTheChild() {
        let lock = SessionHarness(timing, releaseAt: 16, [
            .get(.success(.absent)),
            .create(.success(snapshot("intruder", rv: "2"))),
            .watch(after: nil, nil),  // the intruder's record is waited out like any other
            .update(check: { r, b in #expect(r.holderIdentity == "me"); #expect(b == "2") },
                    .success(snapshot("me", rv: "3"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "4"))),
        ])
        #expect(lock.run() == .released)
        #expect(lock.events.count == 1 && lock.events[0].hasPrefix("leader@15."), "\(lock.events)")
        #expect(lock.script.isEmpty, "\(lock.calls)")
    }
}
