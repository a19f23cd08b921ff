import KLCore
import Synchronization
import Testing
import KLSystem
import KLNetworkTestSupport
@testable import KLKube
@testable import KLTransport

/// One request as the canned API server saw it.
struct SeenRequest: Sendable {
    var method: String
    var path: String
    var headers: [(String, String)]
    var body: String
    func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
}

/// A local HTTP server answering each request with whatever `respond`
/// returns (a complete HTTP/1.1 response), recording every request.
final class CannedAPIServer: @unchecked Sendable {
    private final class Recorder: @unchecked Sendable {
        let list = Mutex<[SeenRequest]>([])
    }
    private let recorder = Recorder()
    private(set) var server: TestServer!
    var url: String { server.url }
    var seen: [SeenRequest] { recorder.list.withLock { $0 } }

    init(_ respond: @escaping @Sendable (SeenRequest) -> String) {
        server = TestServer { [recorder] fd, _ in
            while let (head, body) = readRequest(fd) {
                let lines = head.split(separator: "\r\n").map(String.init)
                let first = lines[0].split(separator: " ")
                let headers = lines.dropFirst().compactMap { line -> (String, String)? in
                    guard let c = line.firstIndex(of: ":") else { return nil }
                    return (String(line[..<c]), String(line[line.index(after: c)...].drop { $0 == " " }))
                }
                let req = SeenRequest(method: String(first[0]), path: String(first[1]), headers: headers, body: String(decoding: body, as: UTF8.self))
                recorder.list.withLock { $0.append(req) }
                if !sendAll(fd, respond(req)) { return }
            }
        }
    }

    deinit { server.stop() }
}

func jsonResponse(_ status: Int, _ body: String, headers: String = "") -> String {
    "HTTP/1.1 \(status) X\r\nContent-Type: application/json\r\n\(headers)Content-Length: \(body.utf8.count)\r\n\r\n\(body)"
}

/// A Status body as the real API server writes it.
func statusResponse(_ code: Int, reason: String, message: String, details: String = "{}", headers: String = "") -> String {
    jsonResponse(code, #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"\#(message)","reason":"\#(reason)","details":\#(details),"code":\#(code)}"#, headers: headers)
}

func client(_ server: CannedAPIServer, token: String? = "t0", tokenFile: String? = nil, reload: Duration = .seconds(10)) throws -> KubeClient {
    try KubeClient(config: KubeConfig(server: server.url, tokenFile: tokenFile, token: token), requestTimeout: .seconds(5), tokenReloadInterval: reload)
}

@Suite("Kubernetes config and resources")
struct KubeConfigTests {
    @Test func resourcePaths() {
        #expect(KubeResource.configMaps.path(namespace: "x", name: "y") == "/api/v1/namespaces/x/configmaps/y")
        #expect(KubeResource.configMaps.path(namespace: "x", name: nil) == "/api/v1/namespaces/x/configmaps")
        #expect(KubeResource.configMaps.path(namespace: nil, name: nil) == "/api/v1/configmaps")
        #expect(KubeResource.leases.path(namespace: "kube-system", name: "lock") == "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/lock")
        #expect(KubeResource.pods.path(namespace: "a", name: "p", subresource: "eviction") == "/api/v1/namespaces/a/pods/p/eviction")
        #expect(KubeResource.nodes.path(namespace: "ignored", name: "n1") == "/api/v1/nodes/n1")
        #expect(KubeResource.namespaces.path(namespace: nil, name: "default") == "/api/v1/namespaces/default")
        #expect(KubeResource.podDisruptionBudgets.path(namespace: "a", name: nil) == "/apis/policy/v1/namespaces/a/poddisruptionbudgets")
        #expect(KubeResource.events.path(namespace: "a", name: nil) == "/api/v1/namespaces/a/events")
        #expect(KubeResource.configMaps.path(namespace: "x", name: "a/b") == "/api/v1/namespaces/x/configmaps/a%2Fb")
        #expect(queryString([("fieldSelector", "metadata.name=x"), ("watch", "1")]) == "?fieldSelector=metadata.name%3Dx&watch=1")
    }
}

@Suite("credentials checked before start")
struct CredentialProblemTests {
    @Test func readableTokenAndCA_areNoProblem_andNeitherIsNoneGiven() {
        let dir = makeTempDir("kl-cred")
        writeTextFile(dir + "/token", "tok\n")
        writeTextFile(dir + "/ca.crt", "-----BEGIN CERTIFICATE-----\n")
        #expect(KubeConfig(server: "https://h", caFile: dir + "/ca.crt", tokenFile: dir + "/token").credentialProblem() == nil)
        #expect(KubeConfig(server: "http://127.0.0.1:8001").credentialProblem() == nil)
    }

    @Test func missingToken_namesTheFileTheErrnoAndTheFix() {
        let problem = KubeConfig(server: "https://h", tokenFile: "/nonexistent/token").credentialProblem()
        #expect(problem == "cannot read the token file /nonexistent/token: no such file or directory. Mount the service account token (automountServiceAccountToken) or pass --token-file")
    }

    @Test func tokenWithAControlCharacter_isNotUsable() {
        let dir = makeTempDir("kl-cred")
        writeTextFile(dir + "/token", "tok\r\nGET / HTTP/1.1\r\n")
        let problem = KubeConfig(server: "https://h", tokenFile: dir + "/token").credentialProblem()
        #expect(problem?.hasPrefix("cannot use the token file \(dir)/token: ") == true, "\(String(describing: problem))")
    }

    @Test func missingCA_namesTheFileTheErrnoAndTheFix() {
        let dir = makeTempDir("kl-cred")
        writeTextFile(dir + "/token", "tok\n")
        let problem = KubeConfig(server: "https://h", caFile: "/nonexistent/ca.crt", tokenFile: dir + "/token").credentialProblem()
        #expect(problem == "cannot read the CA file /nonexistent/ca.crt: no such file or directory. Mount the service account CA or pass --ca-file")
    }
}

@Suite("Kubernetes client against a canned server")
struct KubeClientTests {
    @Test func statusErrors_mapToCodes() throws {
        let server = CannedAPIServer { req in
            switch (req.method, req.path) {
            case ("GET", "/api/v1/namespaces/ns/configmaps/missing"):
                return statusResponse(404, reason: "NotFound", message: #"configmaps \"missing\" not found"#, details: #"{"name":"missing","kind":"configmaps"}"#)
            case ("POST", "/api/v1/namespaces/ns/configmaps"):
                return statusResponse(409, reason: "AlreadyExists", message: #"configmaps \"x\" already exists"#)
            case ("PUT", "/api/v1/namespaces/ns/configmaps/x"):
                return statusResponse(409, reason: "Conflict", message: #"Operation cannot be fulfilled on configmaps \"x\": the object has been modified; please apply your changes to the latest version and try again"#)
            case ("POST", "/apis/coordination.k8s.io/v1/namespaces/ns/leases"):
                return statusResponse(422, reason: "Invalid", message: #"Lease.coordination.k8s.io \"l\" is invalid: spec.leaseDurationSeconds: Invalid value"#)
            case ("POST", "/api/v1/namespaces/ns/pods/p/eviction"):
                return statusResponse(429, reason: "TooManyRequests", message: "Cannot evict pod as it would violate the pod's disruption budget.",
                                      details: #"{"causes":[{"reason":"DisruptionBudget"}],"retryAfterSeconds":7}"#, headers: "Retry-After: 7\r\n")
            case ("GET", "/api/v1/namespaces/ns/configmaps/old"):
                return statusResponse(410, reason: "Expired", message: "too old resource version")
            default:
                return "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nbusy!"
            }
        }
        let kube = try client(server)
        func failure(_ body: () throws -> Void) -> KubeError? {
            do { try body(); return nil } catch let e as KubeError { return e } catch { return nil }
        }
        let notFound = failure { _ = try kube.get(.configMaps, namespace: "ns", name: "missing") }
        #expect(notFound?.code == .notFound)
        #expect(notFound?.httpStatus == 404 && notFound?.reason == "NotFound")
        #expect(notFound?.message == #"configmaps "missing" not found"#)
        #expect(notFound?.status?["details"]?["name"]?.stringValue == "missing")
        #expect(notFound?.description.contains(#"configmaps "missing" not found"#) == true)

        let exists = failure { _ = try kube.create(.configMaps, namespace: "ns", body: ["metadata": ["name": "x"]]) }
        #expect(exists?.code == .alreadyExists)
        #expect(exists?.verb == "create" && exists?.name == "x")

        let conflict = failure { _ = try kube.update(.configMaps, namespace: "ns", name: "x", body: ["metadata": ["name": "x", "resourceVersion": "1"]]) }
        #expect(conflict?.code == .conflict)
        #expect(conflict?.message.contains("the object has been modified") == true)

        let invalid = failure { _ = try kube.create(.leases, namespace: "ns", body: ["metadata": ["name": "l"]]) }
        #expect(invalid?.code == .invalid && invalid?.httpStatus == 422)

        let tooMany = failure { _ = try kube.post(.pods, namespace: "ns", name: "p", subresource: "eviction", body: ["kind": "Eviction"]) }
        #expect(tooMany?.code == .tooManyRequests)
        #expect(tooMany?.retryAfter == .seconds(7))
        #expect(tooMany?.verb == "create" && tooMany?.resource == "pods/eviction")
        #expect(tooMany?.description.contains("retry after 7s") == true)

        #expect(failure { _ = try kube.get(.configMaps, namespace: "ns", name: "old") }?.code == .gone)

        let unavailable = failure { _ = try kube.get(.configMaps, namespace: "ns", name: "other") }
        #expect(unavailable?.code == .serverError && unavailable?.httpStatus == 503)
        #expect(unavailable?.message == "busy!")
    }

    @Test func forbidden_namesVerbResourceNamespaceAndRole() throws {
        let server = CannedAPIServer { _ in
            statusResponse(403, reason: "Forbidden", message: #"leases.coordination.k8s.io \"lock\" is forbidden: User \"system:serviceaccount:ns:app\" cannot update resource \"leases\" in API group \"coordination.k8s.io\" in the namespace \"ns\""#)
        }
        let kube = try client(server)
        let e = #expect(throws: KubeError.self) { try kube.update(.leases, namespace: "ns", name: "lock", body: [:]) }
        #expect(e?.code == .forbidden)
        let text = e?.description ?? ""
        #expect(text.contains(#""update""#) && text.contains(#""leases""#) && text.contains(#"namespace "ns""#))
        #expect(text.contains("coordination.k8s.io") && text.contains("Role") && text.contains("deploy/"))

        let eviction = #expect(throws: KubeError.self) { try kube.post(.pods, namespace: "ns", name: "p", subresource: "eviction", body: [:]) }
        #expect(eviction?.description.contains(#"may not "create" "pods/eviction""#) == true)
        let watch = #expect(throws: KubeError.self) { try kube.watch(.configMaps, namespace: "ns", resourceVersion: nil) }
        #expect(watch?.code == .forbidden)
        #expect(watch?.description.contains(#""watch" "configmaps""#) == true)
    }

    @Test func unauthorized_pointsAtTheTokenFile() throws {
        let dir = makeTempDir("kl-tok")
        // A token no temp path or port can contain (mkdtemp uses no '-').
        writeTextFile(dir + "/token", "wrong-token-value")
        let server = CannedAPIServer { _ in statusResponse(401, reason: "Unauthorized", message: "Unauthorized") }
        let kube = try client(server, token: nil, tokenFile: dir + "/token")
        let e = #expect(throws: KubeError.self) { try kube.get(.configMaps, namespace: "ns", name: "x") }
        #expect(e?.code == .unauthorized)
        #expect(e?.description.contains("token file \(dir)/token") == true)
        #expect(e?.description.contains("wrong-token-value") == false)  // never the token itself
        #expect(server.seen.count == 1)  // the file did not change: no second try
    }

    @Test func rotatedTokenFile_isReadAgainAfter401() throws {
        let dir = makeTempDir("kl-tok")
        writeTextFile(dir + "/token", "old-token\n")
        let accepted = Mutex("old-token")
        let server = CannedAPIServer { req in
            req.header("Authorization") == "Bearer " + accepted.withLock { $0 }
                ? jsonResponse(200, #"{"kind":"ConfigMap","metadata":{"name":"x"}}"#)
                : statusResponse(401, reason: "Unauthorized", message: "Unauthorized")
        }
        let kube = try client(server, token: nil, tokenFile: dir + "/token")
        _ = try kube.get(.configMaps, namespace: "ns", name: "x")
        // The kubelet rotates the projected token; the server stops accepting the old one.
        writeTextFile(dir + "/token", "new-token\n")
        accepted.withLock { $0 = "new-token" }
        let cm = try kube.get(.configMaps, namespace: "ns", name: "x")
        #expect(cm[path: "metadata", "name"]?.stringValue == "x")
        #expect(server.seen.map { $0.header("Authorization") ?? "-" } == ["Bearer old-token", "Bearer old-token", "Bearer new-token"])
        #expect(kube.requestCount == 3)
    }

    @Test func tokenFile_isReadAgainAfterTheReloadInterval() throws {
        let dir = makeTempDir("kl-tok")
        writeTextFile(dir + "/token", "one")
        let server = CannedAPIServer { _ in jsonResponse(200, "{}") }
        let kube = try client(server, token: nil, tokenFile: dir + "/token", reload: .zero)
        _ = try kube.get(.configMaps, namespace: "ns", name: "x")
        writeTextFile(dir + "/token", "two")
        _ = try kube.get(.configMaps, namespace: "ns", name: "x")
        #expect(server.seen.map { $0.header("Authorization") ?? "-" } == ["Bearer one", "Bearer two"])

        let cached = try client(server, token: nil, tokenFile: dir + "/token", reload: .seconds(3600))
        _ = try cached.get(.configMaps, namespace: "ns", name: "x")
        writeTextFile(dir + "/token", "three")
        _ = try cached.get(.configMaps, namespace: "ns", name: "x")
        #expect(server.seen.suffix(2).map { $0.header("Authorization") ?? "-" } == ["Bearer two", "Bearer two"])
    }

    @Test func missingTokenFile_isUnauthorizedNamingTheFile() throws {
        let server = CannedAPIServer { _ in jsonResponse(200, "{}") }
        let kube = try client(server, token: nil, tokenFile: "/nonexistent/token")
        let e = #expect(throws: KubeError.self) { try kube.get(.configMaps, namespace: "ns", name: "x") }
        #expect(e?.code == .unauthorized)
        #expect(e?.description.contains("/nonexistent/token") == true)
        #expect(server.seen.isEmpty)
    }

    @Test func verbs_sendTheRightRequests_andKeepUnknownFields() throws {
        let object = #"{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x","resourceVersion":"5","futureField":{"a":[1,2]}},"data":{"k":"v"}}"#
        let server = CannedAPIServer { req in
            req.method == "DELETE" ? jsonResponse(200, #"{"kind":"Status","status":"Success"}"#) : jsonResponse(200, object)
        }
        let kube = try client(server)
        let got = try kube.get(.configMaps, namespace: "ns", name: "x")
        #expect(got.serialized() == object)
        var changed = got
        changed[path: "data", "k"] = "w"
        _ = try kube.update(.configMaps, namespace: "ns", name: "x", body: changed)
        _ = try kube.create(.configMaps, namespace: "ns", body: ["metadata": ["name": "y"]])
        _ = try kube.patch(.nodes, namespace: nil, name: "n1", patch: ["spec": ["unschedulable": true]])
        _ = try kube.patch(.pods, namespace: "ns", name: "p", patch: [["op": "remove", "path": "/x"]], type: .json, subresource: "status")
        _ = try kube.list(.pods, namespace: nil, labelSelector: "app=a,tier!=b", fieldSelector: "spec.nodeName=n1")
        try kube.delete(.leases, namespace: "ns", name: "l")
        let seen = server.seen
        #expect(seen.map { "\($0.method) \($0.path)" } == [
            "GET /api/v1/namespaces/ns/configmaps/x",
            "PUT /api/v1/namespaces/ns/configmaps/x",
            "POST /api/v1/namespaces/ns/configmaps",
            "PATCH /api/v1/nodes/n1",
            "PATCH /api/v1/namespaces/ns/pods/p/status",
            "GET /api/v1/pods?labelSelector=app%3Da%2Ctier%21%3Db&fieldSelector=spec.nodeName%3Dn1",
            "DELETE /apis/coordination.k8s.io/v1/namespaces/ns/leases/l",
        ])
        #expect(seen[1].body.contains(#""futureField":{"a":[1,2]}"#) && seen[1].body.contains(#""k":"w""#))
        #expect(seen[1].header("Content-Type") == "application/json")
        #expect(seen[3].header("Content-Type") == "application/merge-patch+json")
        #expect(seen[4].header("Content-Type") == "application/json-patch+json")
        #expect(seen[0].header("Accept") == "application/json")
        #expect(seen[0].header("User-Agent") == "kube-leader")
        #expect(seen.allSatisfy { $0.header("Authorization") == "Bearer t0" })
        #expect(server.server.connections == 1)  // one kept-alive connection for all
    }

    @Test func noToken_sendsNoAuthorizationHeader() throws {
        let server = CannedAPIServer { _ in jsonResponse(200, "{}") }
        let kube = try client(server, token: nil)
        _ = try kube.get(.configMaps, namespace: "ns", name: "x")
        #expect(server.seen.first?.header("Authorization") == nil)
    }

    @Test(.timeLimit(.minutes(1)))
    func watch_streamsEvents_errorEventsAndEnd() throws {
        let gate = Gate()
        let server = TestServer { fd, _ in
            guard let (head, _) = readRequest(fd) else { return }
            guard head.hasPrefix("GET /api/v1/namespaces/ns/configmaps?watch=1&resourceVersion=41&fieldSelector=metadata.name%3Dlock&timeoutSeconds=30&allowWatchBookmarks=true HTTP/1.1") else {
                sendAll(fd, "HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n")
                return
            }
            sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            func chunk(_ s: String) { sendAll(fd, String(s.utf8.count, radix: 16) + "\r\n" + s + "\r\n") }
            chunk(#"{"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"lock","resourceVersion":"42"}}}"# + "\n")
            chunk(#"{"type":"MODIFIED","object":{"kind":"ConfigMap","#)
            chunk(#""metadata":{"name":"lock","resourceVersion":"43"}}}"# + "\n")
            gate.wait()
            chunk(#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 41 (43)","reason":"Expired","code":410}}"# + "\n")
            sendAll(fd, "0\r\n\r\n")
        }
        defer { server.stop(); gate.open() }
        let kube = try KubeClient(config: KubeConfig(server: server.url), requestTimeout: .seconds(5))
        let watch = try kube.watch(.configMaps, namespace: "ns", fieldSelector: "metadata.name=lock", resourceVersion: "41", timeoutSeconds: 30)
        guard case .event(let a) = try watch.next(deadline: .now + .seconds(5)) else { Issue.record("expected ADDED"); return }
        #expect(a.type == "ADDED" && a.object[path: "metadata", "resourceVersion"]?.stringValue == "42")
        guard case .event(let m) = try watch.next(deadline: .now + .seconds(5)) else { Issue.record("expected MODIFIED"); return }
        #expect(m.type == "MODIFIED" && m.object[path: "metadata", "resourceVersion"]?.stringValue == "43")
        let start = MonotonicClock.now
        guard case .timedOut = try watch.next(deadline: .now + .milliseconds(200)) else { Issue.record("expected timedOut"); return }
        #expect(MonotonicClock.now - start < .milliseconds(200) + timingSlack)
        gate.open()
        guard case .event(let e) = try watch.next(deadline: .now + .seconds(5)) else { Issue.record("expected ERROR"); return }
        #expect(e.type == "ERROR" && e.object["code"]?.intValue == 410 && e.object["reason"]?.stringValue == "Expired")
        guard case .ended = try watch.next(deadline: .now + .seconds(5)) else { Issue.record("expected ended"); return }
        watch.close()
    }

    @Test func watch_cutShort_isTransportError() throws {
        let server = oneResponseServer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"typ")
        defer { server.stop() }
        let kube = try KubeClient(config: KubeConfig(server: server.url))
        let watch = try kube.watch(.leases, namespace: "ns", resourceVersion: nil)
        let e = #expect(throws: KubeError.self) { try watch.next(deadline: .now + .seconds(5)) }
        #expect(e?.code == .connectionClosed && e?.verb == "watch" && e?.resource == "leases")
    }

    @Test(.timeLimit(.minutes(1)))
    func silentServer_isTimedOutNamingTheServer() throws {
        let gate = Gate()
        let server = TestServer { _, _ in gate.wait() }
        defer { server.stop(); gate.open() }
        let kube = try KubeClient(config: KubeConfig(server: server.url), requestTimeout: .milliseconds(300))
        let start = MonotonicClock.now
        let e = #expect(throws: KubeError.self) { try kube.get(.leases, namespace: "ns", name: "l") }
        #expect(MonotonicClock.now - start < .milliseconds(300) + timingSlack)
        #expect(e?.code == .timedOut)
        #expect(e?.description.contains(server.url) == true)
        let short = #expect(throws: KubeError.self) { try kube.get(.leases, namespace: "ns", name: "l", timeout: .milliseconds(100)) }
        #expect(short?.code == .timedOut)
    }

    @Test func badCAFile_failsAtInitNamingTheFile() {
        let e = #expect(throws: KubeError.self) { try KubeClient(config: KubeConfig(server: "https://127.0.0.1:6443", caFile: "/nonexistent/ca.crt")) }
        #expect(e?.code == .caUnusable)
        #expect(e?.description.contains("/nonexistent/ca.crt") == true)
        let url = #expect(throws: KubeError.self) { try KubeClient(config: KubeConfig(server: "127.0.0.1:6443")) }
        #expect(url?.description.contains("https://") == true)
    }

    @Test func overTLS_withCAFile_works() throws {
        let certs = CertFixture.shared
        let server = TLSTestServer(cert: certs.good, key: certs.key)
        defer { server.stop() }
        let kube = try KubeClient(config: KubeConfig(server: "https://127.0.0.1:\(server.port)", caFile: certs.caFile, token: "x"))
        // The TLS test server answers "ok", which is not JSON: that proves the
        // TLS path works and that a non-JSON body is a clear badResponse.
        let e = #expect(throws: KubeError.self) { try kube.get(.configMaps, namespace: "ns", name: "x") }
        #expect(e?.code == .badResponse)
        let wrong = try KubeClient(config: KubeConfig(server: "https://127.0.0.1:\(server.port)", caFile: certs.otherCAFile))
        let tls = #expect(throws: KubeError.self) { try wrong.get(.configMaps, namespace: "ns", name: "x") }
        #expect(tls?.code == .certificateRejected)
        #expect(tls?.description.contains("unknown CA") == true)
    }
}
