import KLCore
import Testing

/// The LeaseCandidate upkeep machine, scripted on a virtual clock: every
/// input is made up, nothing sleeps, no socket is opened.
@Suite struct CandidateSessionTests {
    let t0 = MonotonicInstant(nanoseconds: 5_000_000_000_000)
    let wall0 = WallTime(seconds: 1_800_000_000)
    let config = CandidateSession.Config(namespace: "ns", name: "pod-a", leaseName: "lock",
                                         election: CoordinatedElection(binaryVersion: "1.4.2", emulationVersion: "1.4.0"),
                                         retryPeriod: .seconds(2))

    func at(_ s: Double) -> MonotonicInstant { t0 + .milliseconds(Int64((s * 1000).rounded())) }
    func wall(_ s: Double) -> WallTime { wall0.adding(.milliseconds(Int64((s * 1000).rounded()))) }

    /// The blocking command at the end (after any log lines).
    func blocking(_ commands: [CandidateSession.Command]) -> CandidateSession.Command? {
        let last = commands.last
        if case .log = last { return nil }
        return last
    }

    func object(rv: String, renew: WallTime?, ping: WallTime? = nil, binary: String = "1.4.2") -> JSON {
        var spec: JSON = ["leaseName": "lock", "binaryVersion": .string(binary), "emulationVersion": "1.4.0", "strategy": "OldestEmulationVersion"]
        if let renew { spec["renewTime"] = .string(RFC3339.formatMicro(renew)) }
        if let ping { spec["pingTime"] = .string(RFC3339.formatMicro(ping)) }
        return ["metadata": ["name": "pod-a", "namespace": "ns", "resourceVersion": .string(rv)], "spec": spec]
    }

    func failure(_ status: Int) -> LockSession.Answer { .failed(LockSession.Failure(.status(status), "HTTP \(status)")) }

    /// A session whose candidate was created at t0 (answered rv "1").
    func running() -> CandidateSession {
        var s = CandidateSession(config: config)
        guard case .send(.create(let body), _)? = blocking(s.step(.start, now: at(0), wall: wall(0))) else { Issue.record("no create"); return s }
        #expect(body[path: "spec", "leaseName"] == "lock")
        #expect(body[path: "spec", "binaryVersion"] == "1.4.2")
        #expect(body[path: "spec", "emulationVersion"] == "1.4.0")
        #expect(body[path: "spec", "strategy"] == "OldestEmulationVersion")
        #expect(body[path: "spec", "renewTime"] == .string(RFC3339.formatMicro(wall(0))))
        #expect(blocking(s.step(.answer(.ok(object(rv: "1", renew: wall(0)))), now: at(0.1), wall: wall(0.1))) == .sleep(until: at(1.1)))
        #expect(s.phase == .running)
        return s
    }

    @Test func create_thenPollsEverySecond_withoutWritingWhenNothingIsDue() {
        var s = running()
        #expect(blocking(s.step(.woke, now: at(1.1), wall: wall(1.1))) == .send(.get, timeout: .seconds(5)))
        #expect(blocking(s.step(.answer(.ok(object(rv: "1", renew: wall(0)))), now: at(1.2), wall: wall(1.2))) == .sleep(until: at(2.2)))
    }

    @Test func ping_isAnsweredByRenewTime_neverEarlierThanThePing() {
        var s = running()
        _ = s.step(.woke, now: at(1.1), wall: wall(1.1))
        // The controller's clock is 30 s ahead of ours.
        let pinged = object(rv: "2", renew: wall(0), ping: wall(31))
        guard case .send(.update(let body), _)? = blocking(s.step(.answer(.ok(pinged)), now: at(1.2), wall: wall(1.2))) else {
            Issue.record("ping not answered"); return
        }
        #expect(body[path: "metadata", "resourceVersion"] == "2")
        #expect(body[path: "spec", "renewTime"] == .string(RFC3339.formatMicro(wall(31))))
        #expect(body[path: "spec", "pingTime"] == .string(RFC3339.formatMicro(wall(31))))
        #expect(blocking(s.step(.answer(.ok(object(rv: "3", renew: wall(31), ping: wall(31)))), now: at(1.3), wall: wall(1.3)))
            == .sleep(until: at(2.3)))
        // Answered: the next read writes nothing.
        _ = s.step(.woke, now: at(2.3), wall: wall(2.3))
        #expect(blocking(s.step(.answer(.ok(object(rv: "3", renew: wall(31), ping: wall(31)))), now: at(2.4), wall: wall(2.4)))
            == .sleep(until: at(3.4)))
    }

    @Test func renew_everyFiveMinutes_andSpecEditsAreRestored() {
        var s = running()
        _ = s.step(.woke, now: at(299), wall: wall(299))
        #expect(blocking(s.step(.answer(.ok(object(rv: "1", renew: wall(0)))), now: at(299.5), wall: wall(299.5))) == .sleep(until: at(300)))
        _ = s.step(.woke, now: at(300), wall: wall(300))
        guard case .send(.update(let body), _)? = blocking(s.step(.answer(.ok(object(rv: "1", renew: wall(0)))), now: at(300.1), wall: wall(300.1))) else {
            Issue.record("no renew"); return
        }
        #expect(body[path: "spec", "renewTime"] == .string(RFC3339.formatMicro(wall(300.1))))
        _ = s.step(.answer(.ok(object(rv: "2", renew: wall(300.1)))), now: at(300.2), wall: wall(300.2))
        _ = s.step(.woke, now: at(301.2), wall: wall(301.2))
        guard case .send(.update(let fixed), _)? = blocking(s.step(.answer(.ok(object(rv: "3", renew: wall(300.1), binary: "9.9.9"))), now: at(301.3), wall: wall(301.3))) else {
            Issue.record("edit not restored"); return
        }
        #expect(fixed[path: "spec", "binaryVersion"] == "1.4.2")
    }

    @Test func conflictOnAnswer_rereadsAtOnce_andWritesAfterARetryPeriod() {
        var s = running()
        _ = s.step(.woke, now: at(1.1), wall: wall(1.1))
        _ = s.step(.answer(.ok(object(rv: "2", renew: wall(0), ping: wall(1)))), now: at(1.2), wall: wall(1.2))
        #expect(blocking(s.step(.answer(failure(409)), now: at(1.3), wall: wall(1.3))) == .send(.get, timeout: .seconds(5)))
        let after = blocking(s.step(.answer(.ok(object(rv: "3", renew: wall(0), ping: wall(1.25)))), now: at(1.4), wall: wall(1.4)))
        #expect(after == .sleep(until: at(2.4)))
        _ = s.step(.woke, now: at(2.4), wall: wall(2.4))
        #expect(blocking(s.step(.answer(.ok(object(rv: "3", renew: wall(0), ping: wall(1.25)))), now: at(2.5), wall: wall(2.5))) == .sleep(until: at(3.3)))
        _ = s.step(.woke, now: at(3.3), wall: wall(3.3))
        guard case .send(.update, _)? = blocking(s.step(.answer(.ok(object(rv: "3", renew: wall(0), ping: wall(1.25)))), now: at(3.4), wall: wall(3.4))) else {
            Issue.record("no write after the retry period"); return
        }
    }

    @Test func startUp404_isAConfigurationError_withoutRetry() {
        var s = CandidateSession(config: config)
        _ = s.step(.start, now: at(0), wall: wall(0))
        let out = s.step(.answer(failure(404)), now: at(0.1), wall: wall(0.1))
        guard case .done(.configurationError(let message))? = blocking(out) else { Issue.record("got \(out)"); return }
        #expect(message.contains("does not serve coordination.k8s.io/v1beta1 leasecandidates"))
        #expect(message.contains("CoordinatedLeaderElection"))
        var forbidden = CandidateSession(config: config)
        _ = forbidden.step(.start, now: at(0), wall: wall(0))
        guard case .done(.configurationError(let m))? = blocking(forbidden.step(.answer(failure(403)), now: at(0.1), wall: wall(0.1))) else {
            Issue.record("403 not fatal"); return
        }
        #expect(m.contains("leasecandidates"))
    }

    @Test func transientFailures_areRetriedEveryRetryPeriod_andLater404Recreates() {
        var s = CandidateSession(config: config)
        _ = s.step(.start, now: at(0), wall: wall(0))
        #expect(blocking(s.step(.answer(failure(503)), now: at(0.1), wall: wall(0.1))) == .sleep(until: at(2.1)))
        guard case .send(.create, _)? = blocking(s.step(.woke, now: at(2.1), wall: wall(2.1))) else { Issue.record("no retry"); return }
        _ = s.step(.answer(.ok(object(rv: "1", renew: wall(2.1)))), now: at(2.2), wall: wall(2.2))
        _ = s.step(.woke, now: at(3.2), wall: wall(3.2))
        // Deleted by someone: created again (not a configuration error any more).
        guard case .send(.create, _)? = blocking(s.step(.answer(failure(404)), now: at(3.3), wall: wall(3.3))) else { Issue.record("not recreated"); return }
        #expect(blocking(s.step(.answer(failure(404)), now: at(3.4), wall: wall(3.4))) == .sleep(until: at(5.4)))
    }

    @Test func leftoverWithOurName_isTakenOver() {
        var s = CandidateSession(config: config)
        _ = s.step(.start, now: at(0), wall: wall(0))
        #expect(blocking(s.step(.answer(failure(409)), now: at(0.1), wall: wall(0.1))) == .send(.get, timeout: .seconds(5)))
        guard case .send(.update(let body), _)? = blocking(s.step(.answer(.ok(object(rv: "7", renew: wall(-3600), binary: "1.0.0"))), now: at(0.2), wall: wall(0.2))) else {
            Issue.record("no takeover"); return
        }
        #expect(body[path: "metadata", "resourceVersion"] == "7")
        #expect(body[path: "spec", "binaryVersion"] == "1.4.2")
        _ = s.step(.answer(.ok(object(rv: "8", renew: wall(0.2)))), now: at(0.3), wall: wall(0.3))
        #expect(s.everWorked)
    }

    @Test func stop_deletes_retriesUntilTheDeadline_thenGivesUp() {
        var s = running()
        s.noteStopRequested()
        #expect(blocking(s.step(.woke, now: at(0.5), wall: wall(0.5))) == .send(.delete, timeout: .seconds(5)))
        #expect(blocking(s.step(.answer(failure(500)), now: at(1), wall: wall(1))) == .sleep(until: at(3)))
        guard case .send(.delete, let timeout)? = blocking(s.step(.woke, now: at(3), wall: wall(3))) else { Issue.record("no retry"); return }
        #expect(timeout == .milliseconds(2500))   // bounded by the stop deadline
        #expect(blocking(s.step(.answer(.failed(LockSession.Failure(.timedOut, "t"))), now: at(5.5), wall: wall(5.5))) == .done(.notDeleted("t")))

        var ok = running()
        ok.noteStopRequested()
        _ = ok.step(.woke, now: at(0.5), wall: wall(0.5))
        #expect(blocking(ok.step(.answer(failure(404)), now: at(0.6), wall: wall(0.6))) == .done(.deleted))
    }

    @Test func stopDuringARequest_dropsItsAnswer_andDeletes() {
        var s = running()
        _ = s.step(.woke, now: at(1.1), wall: wall(1.1))   // a GET in flight
        s.noteStopRequested()
        #expect(blocking(s.step(.answer(.ok(object(rv: "1", renew: wall(0), ping: wall(1)))), now: at(1.2), wall: wall(1.2)))
            == .send(.delete, timeout: .seconds(5)))
        #expect(blocking(s.step(.answer(.ok(.null)), now: at(1.3), wall: wall(1.3))) == .done(.deleted))
    }
}
