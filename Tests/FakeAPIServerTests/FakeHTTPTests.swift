import FakeAPIServerKit
import KLCore
import KLTestSupport
import Testing

/// HTTP/1.1 details: keep-alive, chunked request bodies, bad requests, discovery.
@Suite("kube-apiserver-fake: HTTP/1.1 and discovery", .timeLimit(.minutes(1)))
struct FakeHTTPTests {
    @Test func keepAlive_servesManyRequestsOnOneConnection() throws {
        let h = try Harness()
        let c = try h.connect()
        for i in 0..<20 {
            try c.send("POST", "/api/v1/namespaces/default/configmaps", token: h.server.token,
                       body: #"{"metadata":{"name":"k\#(i)"}}"#)
            #expect(try c.readResponse().status == 201)
        }
        try c.send("GET", "/api/v1/namespaces/default/configmaps", token: h.server.token)
        #expect(try c.readResponse().json["items"]?.arrayValue?.count == 20)
    }

    @Test func chunkedRequestBody_isDecoded() throws {
        let h = try Harness()
        let c = try h.connect()
        let body = #"{"metadata":{"name":"chunky"},"data":{"k":"v"}}"#
        let bytes = Array(body.utf8)
        var wire = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \(h.server.token)\r\n"
        wire += "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        var i = 0
        while i < bytes.count {   // 7-byte chunks, one with an extension
            let n = min(7, bytes.count - i)
            wire += String(n, radix: 16) + (i == 0 ? ";ext=1" : "") + "\r\n" + String(decoding: bytes[i..<i + n], as: UTF8.self) + "\r\n"
            i += n
        }
        wire += "0\r\n\r\n"
        try c.write(wire)
        let r = try c.readResponse()
        #expect(r.status == 201)
        #expect(h.server.object("/api/v1/namespaces/default/configmaps/chunky")?[path: "data", "k"] == "v")
    }

    @Test func malformedRequestLine_gets400AndClose() throws {
        let h = try Harness()
        let c = try h.connect()
        try c.write("NONSENSE\r\n\r\n")
        #expect(try c.readResponse().status == 400)
        #expect(c.readsEOF())
    }

    @Test func unknownPathAndBadBody_getStatusErrors() throws {
        let h = try Harness()
        let unknown = try h.request("GET", "/api/v1/namespaces/default/widgets")
        #expect(unknown.status == 404)
        #expect(unknown.json["kind"] == "Status")
        let bad = try h.rawRequest("POST", "/api/v1/namespaces/default/configmaps", body: "{not json", token: h.server.token)
        #expect(bad.status == 400)
        #expect(bad.json["reason"] == "BadRequest")
    }

    @Test func discovery_documentsListOurResources() throws {
        let h = try Harness()
        #expect(try h.request("GET", "/api").json["versions"] == ["v1"])
        let groups = try h.request("GET", "/apis").json["groups"]?.arrayValue?.compactMap { $0["name"]?.stringValue }
        #expect(groups == ["coordination.k8s.io", "policy"])
        let core = try h.request("GET", "/api/v1").json["resources"]?.arrayValue?.compactMap { $0["name"]?.stringValue } ?? []
        for r in ["configmaps", "pods", "pods/eviction", "pods/status", "nodes", "namespaces", "events"] { #expect(core.contains(r)) }
        #expect(try h.request("GET", "/apis/coordination.k8s.io/v1").json["resources"]?[0]?["kind"] == "Lease")
        #expect(try h.request("GET", "/version").json["major"] == "1")
        #expect(try h.rawRequest("GET", "/healthz", body: nil, token: nil).body == "ok")
    }

    @Test func stop_freesThePortForAnInProcessRestart() throws {
        let dir = makeTemporaryDirectory(prefix: "fake-apiserver-test")
        let first = try FakeAPIServer.start(FakeAPIServerOptions(dir: dir))
        let port = first.port
        let idle = try TestConnection(url: first.url, caFile: first.caFile)   // an open connection must not keep the port
        first.stop()
        #expect(idle.readsEOF())
        var options = FakeAPIServerOptions(dir: dir)
        options.port = port
        let second = try FakeAPIServer.start(options)
        defer { second.stop() }
        #expect(second.url == first.url)
        #expect(second.token == first.token)
    }
}
