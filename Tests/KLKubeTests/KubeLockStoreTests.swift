import KLCore
import KLSupport
import KLTestSupport
import Synchronization
import Testing
@testable import KLKube

/// `KubeLockStore` against a canned API server: reads are LISTs whose
/// version the watch starts from, every odd watch answer is a failure for the
/// runner to pace (never a retry loop inside the store), 404 on create is a
/// configuration error, the original kube-leader's Pod is looked up.
@Suite("KubeLockStore", .timeLimit(.minutes(1)))
struct KubeLockStoreTests {
    static let lockObject = #"{"metadata":{"name":"lock","namespace":"ns","resourceVersion":"7","annotations":{"control-plane.alpha.kubernetes.io/leader":"{\"holderIdentity\":\"a\",\"leaseDurationSeconds\":15}"}}}"#

    static func list(_ items: String = lockObject, rv: String = "500") -> String {
        jsonResponse(200, #"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"\#(rv)"},"items":[\#(items)]}"#)
    }

    static func chunked(_ lines: [String]) -> String {
        var out = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        for line in lines {
            let text = line + "\n"
            out += String(text.utf8.count, radix: 16) + "\r\n" + text + "\r\n"
        }
        return out + "0\r\n\r\n"
    }

    static func store(_ server: CannedAPIServer, retry: Duration = .seconds(2),
                      clock: any BlockingClock<MonotonicInstant> = MonotonicClock()) throws -> KubeLockStore {
        KubeLockStore(client: try client(server), kind: .configMap, namespace: "ns", name: "lock",
                      logger: Logger(level: .critical), retryPeriod: retry, clock: clock)
    }

    func store(_ server: CannedAPIServer, retry: Duration = .seconds(2)) throws -> KubeLockStore {
        try Self.store(server, retry: retry)
    }

    @Test func read_isAList_andTheWatchStartsFromTheListVersion() throws {
        let modified = #"{"type":"MODIFIED","object":{"metadata":{"name":"lock","resourceVersion":"501","annotations":{"control-plane.alpha.kubernetes.io/leader":"{\"holderIdentity\":\"b\"}"}}}}"#
        let server = CannedAPIServer { req in
            req.path.contains("watch=1") ? Self.chunked([modified]) : Self.list()
        }
        let s = try store(server)
        guard case .present(let snapshot) = try s.get(timeout: .seconds(5)) else { Issue.record("expected the lock"); return }
        #expect(snapshot.resourceVersion == "7")
        #expect(snapshot.record?.holderIdentity == "a")
        let next = try s.waitForChange(known: snapshot, deadline: .now + .seconds(5))
        guard case .observed(.present(let changed)) = next else { Issue.record("expected the MODIFIED event, got \(String(describing: next))"); return }
        #expect(changed.record?.holderIdentity == "b")
        let paths = server.seen.map(\.path)
        #expect(paths.count == 2, "\(paths)")
        #expect(paths[0].hasPrefix("/api/v1/namespaces/ns/configmaps?") && paths[0].contains("fieldSelector=metadata.name%3Dlock") && !paths[0].contains("watch"), "\(paths)")
        #expect(paths[1].contains("watch=1") && paths[1].contains("resourceVersion=500"), "from the list's version, not the object's 7: \(paths)")
    }

    @Test func emptyList_isAbsent() throws {
        let server = CannedAPIServer { _ in Self.list("") }
        #expect(try store(server).get(timeout: .seconds(5)) == .absent)
    }

    /// Odd watch answers: each one is thrown after one watch request (the
    /// runner waits a retry period before the next read and watch).
    @Test(arguments: [
        ("blank line", [""]),
        ("unknown event type", [#"{"type":"WHATEVER","object":{"metadata":{"name":"lock"}}}"#]),
        ("DELETED without metadata", [#"{"type":"DELETED","object":{}}"#]),
        ("event for another object", [#"{"type":"MODIFIED","object":{"metadata":{"name":"other","resourceVersion":"9"}}}"#]),
        ("410 Expired", [#"{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old resource version: 500 (900)"}}"#]),
        ("not JSON", ["<html>"]),
        ("empty 200", []),
    ] as [(String, [String])])
    func oddWatchAnswers_areFailuresAfterOneWatch(name: String, lines: [String]) throws {
        let server = CannedAPIServer { req in req.path.contains("watch=1") ? Self.chunked(lines) : Self.list() }
        let s = try store(server)
        _ = try s.get(timeout: .seconds(5))
        let error = #expect(throws: KubeError.self) { _ = try s.waitForChange(known: nil, deadline: .now + .seconds(5)) }
        #expect(error?.disposition == .transient, "\(name): \(String(describing: error))")
        #expect(server.seen.filter { $0.path.contains("watch=1") }.count == 1, "\(name): \(server.seen.map(\.path))")
    }

    /// A server that answers every watch with a stream of bookmarks is cut off.
    @Test func tooManyEvents_isAFailure() throws {
        let bookmark = #"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"600"}}}"#
        let server = CannedAPIServer { req in req.path.contains("watch=1") ? Self.chunked(Array(repeating: bookmark, count: 50)) : Self.list() }
        let s = try store(server)
        _ = try s.get(timeout: .seconds(5))
        let error = #expect(throws: KubeError.self) { _ = try s.waitForChange(known: nil, deadline: .now + .seconds(5)) }
        #expect(error?.message.contains("faster than 10 per retry period") == true, "\(String(describing: error))")
    }

    @Test func create404_isAConfigurationErrorNamingTheNamespace() throws {
        let server = CannedAPIServer { _ in statusResponse(404, reason: "NotFound", message: #"namespaces \"ns\" not found"#) }
        let record = LeaderElectionRecord(holderIdentity: "me", leaseDurationSeconds: 15, acquireTime: nil, renewTime: nil, leaderTransitions: 0)
        let error = #expect(throws: KubeError.self) { _ = try store(server).create(record, timeout: .seconds(5)) }
        #expect(error?.code == .namespaceMissing && error?.disposition == .configuration)
        #expect(error?.message.contains("namespace 'ns'") == true, "\(String(describing: error))")
    }

    /// The original kube-leader's lock: held while its Pod exists (or cannot
    /// be checked), free once the Pod GET answers 404.
    @Test(arguments: [(200, true), (404, false), (403, true), (500, true)])
    func ownerPod_isLookedUp(status: Int, alive: Bool) throws {
        let legacy = #"{"metadata":{"name":"lock","resourceVersion":"3","ownerReferences":[{"apiVersion":"v1","kind":"Pod","name":"orig-0","uid":"u"}]}}"#
        let server = CannedAPIServer { req in
            if req.path.hasPrefix("/api/v1/namespaces/ns/pods/orig-0") {
                return status == 200 ? jsonResponse(200, #"{"metadata":{"name":"orig-0"}}"#) : statusResponse(status, reason: "X", message: "x")
            }
            return Self.list(legacy)
        }
        guard case .present(let s) = try store(server).get(timeout: .seconds(5)) else { Issue.record("expected the lock"); return }
        #expect(s.state == .ownerPod("orig-0", alive: alive))
    }

    /// A Role without `list`: one forbidden LIST, then GETs, and watches
    /// without a version (the server starts them with the current object).
    @Test func listForbidden_fallsBackToGet() throws {
        let server = CannedAPIServer { req in
            if req.path.contains("watch=1") { return Self.chunked([]) }
            if req.path.hasPrefix("/api/v1/namespaces/ns/configmaps/lock") { return jsonResponse(200, Self.lockObject) }
            return statusResponse(403, reason: "Forbidden", message: "cannot list")
        }
        let s = try store(server, retry: .milliseconds(100))
        guard case .present = try s.get(timeout: .seconds(5)) else { Issue.record("expected the lock"); return }
        guard case .present = try s.get(timeout: .seconds(5)) else { Issue.record("expected the lock"); return }
        _ = try? s.waitForChange(known: nil, deadline: .now + .seconds(2))
        let paths = server.seen.map(\.path)
        #expect(paths.filter { $0.contains("fieldSelector") && !$0.contains("watch") }.count == 1, "\(paths)")
        #expect(paths.filter { $0.hasPrefix("/api/v1/namespaces/ns/configmaps/lock") }.count == 2, "\(paths)")
        #expect(paths.last?.contains("watch=1") == true && paths.last?.contains("resourceVersion") == false, "\(paths)")
    }
}

/// What the election does with a transport failure is decided by the HTTP
/// layer's code, never by the English message: rewording a message must not
/// turn "exit 2" into endless retries, nor a network blip into an exit.
@Suite("KubeError.disposition")
struct KubeErrorDispositionTests {
    static func transport(_ code: KubeError.Code, _ message: String) -> KubeError {
        KubeError(code: code, message: message, verb: "update", resource: "configmaps", name: "lock", namespace: "ns")
    }

    @Test func certificateFailures_areConfiguration_whateverTheMessageSays() {
        #expect(Self.transport(.certificateRejected, "reworded").disposition == .configuration)
        #expect(Self.transport(.caUnusable, "reworded").disposition == .configuration)
    }

    @Test func otherTransportFailures_areTransient_evenWhenTheMessageMentionsCertificates() {
        let words = "TLS certificate verification failed; check the CA file (PEM certificate)"
        for code: KubeError.Code in [.tls, .connectFailed, .connectionClosed, .protocolError, .timedOut, .tooLarge, .invalidURL] {
            #expect(Self.transport(code, words).disposition == .transient)
        }
    }

    /// The lock store's own findings: a create's 404 (no such namespace) ends
    /// a standby; a watch that misbehaves is retried, whatever the words say.
    @Test func lockStoreFindings_areDecidedByTheirCode() {
        #expect(KubeError(.namespaceMissing, "reworded").disposition == .configuration)
        #expect(KubeError(.watchFailed, "Forbidden: check the Role").disposition == .transient)
        #expect(KubeError(.conflict, "reworded").disposition == .lostRace)
    }
}

/// The watch's bookkeeping runs on the store's injected clock (the runner's),
/// not on the real one: answers that are failures on the real clock (an
/// empty 200, 50 events at once) are fine when the store's clock says they
/// were spread out, and a silent watch ends at the deadline on that clock.
@Suite("KubeLockStore on a virtual clock", .timeLimit(.minutes(1)))
struct KubeLockStoreClockTests {
    /// A virtual clock that moves `step` forward at each reading.
    final class SteppingClock: BlockingClock {
        let base = VirtualMonotonicClock()
        let step: Duration
        init(step: Duration) { self.step = step }
        var now: MonotonicInstant {
            base.advance(by: step)
            return base.now
        }
        func sleep(until deadline: MonotonicInstant) { base.sleep(until: deadline) }
    }

    final class Counter: Sendable {
        let value = Mutex(0)
        func next() -> Int { value.withLock { $0 += 1; return $0 } }
    }

    static let modified = #"{"type":"MODIFIED","object":{"metadata":{"name":"lock","resourceVersion":"601","annotations":{"control-plane.alpha.kubernetes.io/leader":"{\"holderIdentity\":\"b\"}"}}}}"#

    func holder(_ change: LockChange) -> String? {
        guard case .observed(.present(let snapshot)) = change else { return nil }
        return snapshot.record?.holderIdentity
    }

    @Test func eventsSpreadOutOnTheStoresClock_areNotTooFast() throws {
        let bookmark = #"{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"600"}}}"#
        let server = CannedAPIServer { req in
            req.path.contains("watch=1") ? KubeLockStoreTests.chunked(Array(repeating: bookmark, count: 50) + [Self.modified]) : KubeLockStoreTests.list()
        }
        let clock = SteppingClock(step: .seconds(1))
        let s = try KubeLockStoreTests.store(server, clock: clock)
        _ = try s.get(timeout: .seconds(5))
        let change = try s.waitForChange(known: nil, deadline: clock.now + .seconds(3600))
        #expect(holder(change) == "b", "\(change)")
    }

    @Test func watchEndingARetryPeriodAfterItOpened_onTheStoresClock_isReopened() throws {
        let watches = Counter()
        let server = CannedAPIServer { req in
            guard req.path.contains("watch=1") else { return KubeLockStoreTests.list() }
            return KubeLockStoreTests.chunked(watches.next() == 1 ? [] : [Self.modified])
        }
        let clock = SteppingClock(step: .seconds(5))
        let s = try KubeLockStoreTests.store(server, clock: clock)
        _ = try s.get(timeout: .seconds(5))
        let change = try s.waitForChange(known: nil, deadline: clock.now + .seconds(3600))
        #expect(holder(change) == "b", "\(change)")
        #expect(server.seen.filter { $0.path.contains("watch=1") }.count == 2, "\(server.seen.map(\.path))")
    }

    /// The socket waits in real time (the same time left); then the store's
    /// clock is at the deadline too, so a silent watch ends there.
    @Test func silentWatch_endsAtTheDeadlineOnTheStoresClock() throws {
        let server = CannedAPIServer { req in
            req.path.contains("watch=1") ? "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" : KubeLockStoreTests.list()
        }
        let clock = VirtualMonotonicClock()
        let s = try KubeLockStoreTests.store(server, clock: clock)
        _ = try s.get(timeout: .seconds(5))
        let deadline = clock.now + .milliseconds(200)
        #expect(try s.waitForChange(known: nil, deadline: deadline) == .deadline)
        #expect(clock.now == deadline)
        s.stopWatching()
    }
}
