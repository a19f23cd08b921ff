import KLCore
import KLSystem
import KLTestSupport
import Testing
import KLNetworkTestSupport
@testable import KLKube
@testable import KLTransport

/// `KubeLockStore` is the session's I/O: it sends what it is told, over real
/// sockets to a canned API server, and describes failures by status code.
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

    static func store(_ server: CannedAPIServer) throws -> KubeLockStore {
        KubeLockStore(client: try client(server), kind: .configMap, namespace: "ns", name: "lock", logger: Logger(level: .critical))
    }

    @Test func list_andWatch_areTheRequestsTheSessionAsksFor() throws {
        let modified = #"{"type":"MODIFIED","object":{"metadata":{"name":"lock","resourceVersion":"501"}}}"#
        let server = CannedAPIServer { req in req.path.contains("watch=1") ? Self.chunked([modified]) : Self.list() }
        let s = try Self.store(server)
        guard case .ok(let list) = s.send(.list, timeout: .seconds(5)) else { Issue.record("expected the list"); return }
        #expect(list[path: "metadata", "resourceVersion"]?.stringValue == "500")
        #expect(s.send(.watch(resourceVersion: "500", timeoutSeconds: 300), timeout: .seconds(5)) == .ok(.null))
        #expect(s.readWatch(until: .now + .seconds(5)) == .line(modified))
        #expect(s.readWatch(until: .now + .seconds(5)) == .ended)
        s.closeWatch()
        let paths = server.seen.map(\.path)
        #expect(paths[0].hasPrefix("/api/v1/namespaces/ns/configmaps?") && paths[0].contains("fieldSelector=metadata.name%3Dlock") && !paths[0].contains("watch"), "\(paths)")
        #expect(paths[1].contains("watch=1") && paths[1].contains("resourceVersion=500") && paths[1].contains("allowWatchBookmarks=true"), "\(paths)")
    }

    @Test func failures_areDescribedByStatus() throws {
        let server = CannedAPIServer { req in
            req.path.hasSuffix("/lock") ? statusResponse(403, reason: "Forbidden", message: "no") : statusResponse(404, reason: "NotFound", message: #"namespaces \"ns\" not found"#)
        }
        let s = try Self.store(server)
        let record = LeaderElectionRecord(holderIdentity: "me", leaseDurationSeconds: 15, acquireTime: nil, renewTime: nil, leaderTransitions: 0)
        guard case .failed(let f) = s.send(.create(LockCodec.newObject(.configMap, namespace: "ns", name: "lock", record: record)), timeout: .seconds(5)) else {
            Issue.record("expected a failure"); return
        }
        #expect(f.kind == .status(404))
        guard case .failed(let g) = s.send(.get, timeout: .seconds(5)) else { Issue.record("expected a failure"); return }
        #expect(g.kind == .status(403))
        #expect(s.readWatch(until: .now + .seconds(1)) == .failed(LockSession.Failure(.transport, "no watch of configmap ns/lock is open")))
    }

    @Test func kubeErrors_mapToTheSessionsFailureKinds() {
        #expect(LockSession.Failure(KubeError(.conflict, "x")).kind == .status(409))
        #expect(LockSession.Failure(KubeError(.alreadyExists, "x")).kind == .status(409))
        #expect(LockSession.Failure(KubeError(.timedOut, "x")).kind == .timedOut)
        #expect(LockSession.Failure(KubeError(.certificateRejected, "x")).kind == .untrustedServer)
        #expect(LockSession.Failure(KubeError(.unauthorized, "token file")).kind == .credentials)
        #expect(LockSession.Failure(KubeError(.connectionClosed, "x")).kind == .transport)
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

