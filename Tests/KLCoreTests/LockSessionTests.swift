import KLCore
import Testing

/// The session's reads, watch and failure handling, input by input: what
/// the lock store and the runner decided before they were one pure machine.
@Suite struct LockSessionTests {
    static let timing = Election.Timing(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))
    static let t0 = MonotonicInstant(nanoseconds: 5_000_000_000_000)
    static let wall = WallTime(seconds: 1_795_859_505, nanoseconds: 0)

    /// A session and its clock, stepped by hand.
    struct Stepper {
        var session: LockSession
        var now = LockSessionTests.t0
        init(kind: LockKind = .configMap, timing: Election.Timing = LockSessionTests.timing, identity: String = "me") {
            session = LockSession(election: Election(identity: identity, timing: timing),
                                  config: LockSession.Config(kind: kind, namespace: "ns", name: "lock", requestTimeout: .seconds(10)))
        }
        mutating func step(_ input: LockSession.Input, after: Duration = .zero) -> [LockSession.Command] {
            now = now + after
            let out = session.step(input, now: now, wall: LockSessionTests.wall)
            #expect(out.filter(\.isBlocking).count == 1 && out.last?.isBlocking == true, "one blocking command, last: \(out)")
            return out
        }
        mutating func line(_ text: String, after: Duration = .zero) -> [LockSession.Command] { step(.watch(.line(text)), after: after) }
    }

    static func object(_ holder: String, rv: String, lease: Int = 15, name: String = "lock") -> JSON {
        var o = LockCodec.newObject(.configMap, namespace: "ns", name: name, record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: lease, acquireTime: nil, renewTime: nil, leaderTransitions: 0))
        o[path: "metadata", "resourceVersion"] = .string(rv)
        return o
    }

    static func list(_ items: [JSON], rv: String = "500") -> LockSession.Input {
        .answer(.ok(.object(["kind": .string("ConfigMapList"), "metadata": .object(["resourceVersion": .string(rv)]), "items": .array(items)])))
    }

    static func event(_ type: String, _ object: JSON) -> String {
        JSON.object(["type": .string(type), "object": object]).serialized()
    }

    static func requests(_ commands: [LockSession.Command]) -> [LockSession.Request] {
        commands.compactMap { if case .send(let r, _) = $0 { return r }; return nil }
    }

    static func watchOpen(_ commands: [LockSession.Command]) -> String?? {
        for c in commands { if case .send(.watch(let rv, _), _) = c { return .some(rv) } }
        return nil
    }

    static func sleepUntil(_ commands: [LockSession.Command]) -> MonotonicInstant? {
        if case .sleep(let u)? = commands.last { return u }
        return nil
    }

    static func logged(_ commands: [LockSession.Command], _ text: String) -> Bool {
        commands.contains { if case .log(_, let m, _) = $0 { return m.contains(text) }; return false }
    }

    /// A standby that has read the lock held by "a" (LIST at 500) and opened its watch.
    static func watching(_ s: inout Stepper, lease: Int = 15) {
        #expect(requests(s.step(.start)) == [.list])
        #expect(watchOpen(s.step(list([object("a", rv: "7", lease: lease)]))) == .some("500"), "from the list's version, not the object's 7")
        guard case .readWatch? = s.step(.answer(.ok(.null)), after: .milliseconds(5)).last else { Issue.record("expected a watch read"); return }
    }

    @Test func read_isAList_andTheWatchStartsFromTheListVersion_thenFollowsEvents() {
        var s = Stepper()
        Self.watching(&s)
        let out = s.line(Self.event("MODIFIED", Self.object("b", rv: "501")), after: .seconds(1))
        #expect(out.contains(.report(.watched(LockCodec.decode(.configMap, object: Self.object("b", rv: "501"))))))
        guard case .readWatch? = out.last else { Issue.record("still watching: \(out)"); return }
        #expect(s.session.election.observed?.record?.holderIdentity == "b")
        // A bookmark moves the resume point; the next open (after the server's end) uses it.
        _ = s.line(#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"640"}}}"#, after: .seconds(1))
        #expect(Self.watchOpen(s.step(.watch(.ended), after: .seconds(5))) == .some("640"))
    }

    @Test func emptyList_isAbsent_andTheSessionCreatesTheLock() {
        var s = Stepper()
        _ = s.step(.start)
        #expect(s.step(Self.list([])).last == .beginAcquire)
        guard case .send(.create(let o), _)? = s.step(.acquireAllowed(true)).last else { Issue.record("expected a create"); return }
        #expect(o[path: "metadata", "name"]?.stringValue == "lock")
    }

    /// Odd watch answers: each is a failure after one watch; the next read
    /// and watch wait a retry period (never a retry loop).
    @Test(arguments: [
        ("blank line", LockSession.WatchRead.line("")),
        ("unknown event type", .line(#"{"type":"WHATEVER","object":{"metadata":{"name":"lock"}}}"#)),
        ("DELETED without metadata", .line(#"{"type":"DELETED","object":{}}"#)),
        ("event for another object", .line(#"{"type":"MODIFIED","object":{"metadata":{"name":"other","resourceVersion":"9"}}}"#)),
        ("410 Expired", .line(#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 500 (900)"}}"#)),
        ("not JSON", .line("<html>")),
        ("empty 200", .ended),
        ("reset", .failed(LockSession.Failure(.transport, "connection reset"))),
    ] as [(String, LockSession.WatchRead)])
    func oddWatchAnswers_areFailures_pacedByTheRetryPeriod(name: String, read: LockSession.WatchRead) {
        var s = Stepper()
        Self.watching(&s)
        let out = s.step(.watch(read), after: .milliseconds(10))
        #expect(out.contains(.closeWatch) || read == .ended || { if case .failed = read { return true }; return false }(), "\(name): \(out)")
        #expect(out.contains(.report(.watchFailed)), "\(name): \(out)")
        #expect(Self.logged(out, "watch failed"), "\(name): \(out)")
        guard let until = Self.sleepUntil(out) else { Issue.record("\(name): expected a paced sleep, got \(out)"); return }
        #expect(until >= Self.t0 + .seconds(2), "\(name): the next read a retry period after the first")
        // Then one read, and the watch only a retry period after the failed one.
        #expect(Self.requests(s.step(.woke, after: s.now.duration(to: until))) == [.list], "\(name)")
    }

    @Test func tooManyEvents_isAFailure() {
        var s = Stepper()
        Self.watching(&s)
        var out: [LockSession.Command] = []
        for _ in 0..<11 { out = s.line(#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"600"}}}"#) }
        #expect(Self.logged(out, "watch failed") && out.contains(.report(.watchFailed)), "\(out)")
    }

    @Test func eventsSpreadOutOnTheClock_areNotTooFast() {
        var s = Stepper(timing: Election.Timing(leaseDuration: .seconds(600), renewDeadline: .seconds(400), retryPeriod: .seconds(2)))
        Self.watching(&s, lease: 600)
        for _ in 0..<50 {
            let out = s.line(#"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"600"}}}"#, after: .seconds(1))
            guard case .readWatch? = out.last else { Issue.record("\(out)"); return }
        }
    }

    @Test func watchEndingARetryPeriodAfterItOpened_isReopenedAtOnce_fromWhereItWas() {
        var s = Stepper()
        Self.watching(&s)
        _ = s.line(Self.event("MODIFIED", Self.object("a", rv: "510")), after: .seconds(1))
        #expect(Self.watchOpen(s.step(.watch(.ended), after: .seconds(5))) == .some("510"))
    }

    /// Dead connections: a watch that stays silent (no event, no bookmark) for
    /// two bookmark intervals is presumed dead: closed, and replaced after a
    /// paced read, long before its 330 s expiry.
    @Test func silentWatch_isReplacedAfterTwoBookmarkIntervals() {
        var s = Stepper(timing: Election.Timing(leaseDuration: .seconds(600), renewDeadline: .seconds(400), retryPeriod: .seconds(2)))
        Self.watching(&s, lease: 600)
        // The holder renews through the watch for a while, then silence.
        guard case .readWatch(let until)? = s.line(Self.event("MODIFIED", Self.object("a", rv: "510", lease: 600)), after: .seconds(1)).last else {
            Issue.record("expected a read"); return
        }
        #expect(until == s.now + .seconds(120), "the read waits two bookmark intervals at most")
        let out = s.step(.watch(.timedOut), after: .seconds(120))
        #expect(out.contains(.closeWatch) && Self.logged(out, "watch failed"), "\(out)")
        #expect(Self.sleepUntil(out) != nil, "paced: \(out)")
    }

    @Test func create404_isAConfigurationErrorNamingTheNamespace() {
        var s = Stepper()
        _ = s.step(.start)
        _ = s.step(Self.list([]))
        _ = s.step(.acquireAllowed(true))
        let out = s.step(.answer(.failed(.init(.status(404), #"namespaces "ns" not found"#))))
        guard case .done(.configurationError(let m))? = out.last else { Issue.record("\(out)"); return }
        #expect(m.contains("namespace 'ns'"), "\(m)")
    }

    /// The original kube-leader's lock: held while its Pod exists (or cannot
    /// be checked), free once the Pod GET answers 404.
    @Test(arguments: [(200, true), (404, false), (403, true), (500, true)])
    func ownerPod_isLookedUp(status: Int, alive: Bool) throws {
        let legacy = try JSON.parse(#"{"metadata":{"name":"lock","resourceVersion":"3","ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":"orig-0","uid":"u"}]}}"#)
        var s = Stepper()
        _ = s.step(.start)
        #expect(Self.requests(s.step(Self.list([legacy]))) == [.getPod("orig-0")])
        let answer: LockSession.Answer = status == 200 ? .ok(.object(["metadata": .object(["name": .string("orig-0")])])) : .failed(.init(.status(status), "x"))
        _ = s.step(.answer(answer))
        #expect(s.session.election.observed?.state == .ownerPod("orig-0", alive: alive))
    }

    /// A Role without `list`: one forbidden LIST, then GETs, and watches
    /// without a version (the server starts them with the current object).
    @Test func listForbidden_fallsBackToGet_andWatchesWithoutAVersion() {
        var s = Stepper()
        _ = s.step(.start)
        let out = s.step(.answer(.failed(.init(.status(403), "cannot list"))))
        #expect(Self.requests(out) == [.get] && Self.logged(out, "cannot list the lock"), "\(out)")
        #expect(Self.watchOpen(s.step(.answer(.ok(Self.object("a", rv: "7"))))) == .some(nil))
    }

    // MARK: Authorization outages

    /// 403 on the very first read: the Role is wrong; exit 2.
    @Test func forbiddenAtStartUp_isAConfigurationError() {
        var s = Stepper()
        _ = s.step(.start)
        _ = s.step(.answer(.failed(.init(.status(403), "cannot list"))))
        guard case .done(.configurationError)? = s.step(.answer(.failed(.init(.status(403), "cannot get")))).last else {
            Issue.record("expected exit 2"); return
        }
    }

    /// Reads answered 403 after reads had worked: retried every retry
    /// period with a warning (LIST again, no switch to GET for good); no exit.
    @Test func row5_forbiddenAfterReadsWorked_isRetried_withLISTAgain() {
        var s = Stepper()
        Self.watching(&s)
        // The watch fails; the paced read is answered 403.
        var out = s.step(.watch(.failed(.init(.transport, "reset"))), after: .seconds(1))
        guard let until = Self.sleepUntil(out) else { Issue.record("\(out)"); return }
        out = s.step(.woke, after: s.now.duration(to: until))
        #expect(Self.requests(out) == [.list])
        let readAt = s.now
        out = s.step(.answer(.failed(.init(.status(403), "forbidden: list"))))
        if case .done? = out.last { Issue.record("an outage after reads worked must not end the standby: \(out)"); return }
        #expect(Self.logged(out, "retrying"), "a warning: \(out)")
        #expect(!Self.requests(out).contains(.get), "no GET fallback: LIST has worked: \(out)")
        // Its watch is refused too (paced), then LIST again a retry period later; it works again.
        if Self.watchOpen(out) != nil { out = s.step(.answer(.failed(.init(.status(403), "forbidden: watch")))) }
        if case .done? = out.last { Issue.record("\(out)"); return }
        guard let next = Self.sleepUntil(out) else { Issue.record("\(out)"); return }
        #expect(next >= readAt + .seconds(2), "paced")
        out = s.step(.woke, after: s.now.duration(to: next))
        #expect(Self.requests(out) == [.list], "\(out)")
        out = s.step(Self.list([Self.object("a", rv: "9")]))
        #expect(Self.watchOpen(out) != nil, "\(out)")
    }

    /// A Role without "list" falls back to GET; a GET outage later is
    /// retried too, and LIST is tried again after its retry interval.
    @Test func row5_getFallback_triesListAgainLater() {
        var s = Stepper()
        _ = s.step(.start)
        _ = s.step(.answer(.failed(.init(.status(403), "cannot list"))))
        var out = s.step(.answer(.ok(Self.object("a", rv: "7"))))
        #expect(Self.watchOpen(out) == .some(nil))
        out = s.step(.answer(.failed(.init(.transport, "reset"))), after: .seconds(301))
        let reads = Self.sleepUntil(out).map { Self.requests(s.step(.woke, after: s.now.duration(to: $0))) } ?? Self.requests(out)
        #expect(reads == [.list], "\(out)")
        out = s.step(.answer(.failed(.init(.status(403), "cannot list"))))
        #expect(Self.requests(out) == [.get])
        out = s.step(.answer(.failed(.init(.status(403), "outage"))))
        if case .done? = out.last { Issue.record("GET had worked: \(out)") }
    }

    /// A Role without "create": exit 2 even though reads work.
    @Test func createForbidden_whenCreateNeverWorked_isAConfigurationError() {
        var s = Stepper()
        _ = s.step(.start)
        _ = s.step(Self.list([]))
        _ = s.step(.acquireAllowed(true))
        guard case .done(.configurationError)? = s.step(.answer(.failed(.init(.status(403), "forbidden: create")))).last else {
            Issue.record("expected exit 2"); return
        }
    }

    // MARK: Other writers

    /// Another writer hands the lock to "b" with a 1 s lease while "a"'s
    /// 15 s hold runs: the standby still waits 15 s from the change.
    @Test func row1_anotherWriterShorteningTheHold_doesNotShortenTheWait() {
        var s = Stepper()
        Self.watching(&s)
        var out = s.line(Self.event("MODIFIED", Self.object("b", rv: "520", lease: 1)), after: .seconds(3))
        let changedAt = s.now
        // b's 1 s lease runs out; nothing more arrives.
        guard case .readWatch(let until)? = out.last else { Issue.record("\(out)"); return }
        #expect(until >= changedAt + .seconds(15), "waits a.'s lease from the change, not b's 1 s: until \(changedAt.duration(to: until))")
        out = s.step(.watch(.timedOut), after: s.now.duration(to: until))
        #expect(out.last == .beginAcquire, "then takes it: \(out)")
    }

    /// The same with the lease lowered for the same holder (a mutating webhook).
    @Test func row1_aShorterLeaseForTheSameHolder_doesNotShortenTheWait() {
        var s = Stepper()
        Self.watching(&s)
        let out = s.line(Self.event("MODIFIED", Self.object("a", rv: "520", lease: 1)), after: .seconds(3))
        guard case .readWatch(let until)? = out.last else { Issue.record("\(out)"); return }
        #expect(until >= s.now + .seconds(15), "until \(s.now.duration(to: until))")
    }

    /// A holder's own renews and a takeover after the old hold expired shorten nothing.
    @Test func row1_ownRenewsAndReleases_stillHandOverAtOnce() {
        var s = Stepper()
        Self.watching(&s)
        _ = s.line(Self.event("MODIFIED", Self.object("a", rv: "520")), after: .seconds(2))
        let out = s.line(Self.event("MODIFIED", Self.object("", rv: "521", lease: 1)), after: .seconds(2))
        #expect(out.last == .beginAcquire, "a holder's release is taken at once: \(out)")
    }

    /// The leader treats an answer to its renew that is not its own hold as
    /// lost at once: a shorter lease than it wrote, or another holder.
    @Test(arguments: [("me", 1, "shorter"), ("intruder", 15, "intruder")])
    func row1_leaderAnsweredWithAnotherHold_losesAtOnce(holder: String, lease: Int, reasonNames: String) {
        var s = Stepper()
        _ = s.step(.start)
        _ = s.step(Self.list([]))
        _ = s.step(.acquireAllowed(true))
        _ = s.step(.answer(.ok(Self.object("me", rv: "1"))))
        _ = s.step(.answer(.ok(.null)))  // the leader's watch between renews
        let renew = s.step(.watch(.timedOut), after: .seconds(2))
        guard case .send(.update, _)? = renew.last else { Issue.record("expected a renew: \(renew)"); return }
        let out = s.step(.answer(.ok(Self.object(holder, rv: "2", lease: lease))))
        guard case .done(.lost(let reason))? = out.last else { Issue.record("expected lost: \(out)"); return }
        #expect(out.contains(.lostLeadership(reason: reason)) && reason.contains(reasonNames), "\(reason)")
    }
}
