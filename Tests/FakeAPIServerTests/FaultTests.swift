import FakeAPIServerKit
import KLSystem
import KLCore
import Testing

private let cms = "/api/v1/namespaces/default/configmaps"

@Suite("kube-apiserver-fake: fault injection", .timeLimit(.minutes(1)))
struct FaultTests {
    private func setFaults(_ h: Harness, _ body: String) throws {
        let r = try h.rawRequest("POST", "/fake/faults", body: body, token: nil)
        #expect(r.status == 200)
    }

    @Test func errorRate_one_answersEveryAPIRequestWithStatus503() throws {
        let h = try Harness()
        try setFaults(h, #"{"errorRate":1,"errorStatus":503}"#)
        let r = try h.request("GET", cms)
        #expect(r.status == 503)
        #expect(r.json["kind"] == "Status")
        #expect(r.json["reason"] == "ServiceUnavailable")
        #expect(try h.rawRequest("GET", "/fake/healthz", body: nil, token: nil).body == "ok")   // control API is exempt
        _ = try h.rawRequest("DELETE", "/fake/faults", body: nil, token: nil)
        #expect(try h.request("GET", cms).status == 200)
    }

    @Test func errorStatus500_isInternalError() throws {
        let h = try Harness()
        h.server.setFaults(["errorRate": 1, "errorStatus": 500])
        let r = try h.request("GET", cms)
        #expect(r.status == 500)
        #expect(r.json["reason"] == "InternalError")
    }

    @Test func latency_delaysTheResponse() throws {
        let h = try Harness()
        try setFaults(h, #"{"latencyMs":400}"#)
        let start = monotonicNow()
        #expect(try h.request("GET", cms).status == 200)
        #expect(monotonicNow() - start >= 0.39)
    }

    @Test func latency_delaysWatchHeaders() throws {
        let h = try Harness()
        h.server.setFaults(["latencyMs": 300])
        let c = try h.connect()
        let start = monotonicNow()
        try c.send("GET", "\(cms)?watch=1", token: h.server.token)
        #expect(try c.readHead().0 == 200)
        #expect(monotonicNow() - start >= 0.29)
    }

    @Test func partitionReset_closesTheConnectionAtOnce() throws {
        let h = try Harness()
        h.server.registerToken("cut-off", user: "u")
        try setFaults(h, #"{"partitionedTokens":["cut-off"],"partitionMode":"reset"}"#)
        let c = try h.connect(timeoutSeconds: 5)
        try c.send("GET", cms, token: "cut-off")
        let start = monotonicNow()
        #expect(c.readsEOF())
        #expect(monotonicNow() - start < 2)
        #expect(try h.request("GET", cms).status == 200)   // other tokens are unaffected
    }

    @Test func partitionHang_neverAnswersUntilTheClientGivesUp() throws {
        let h = try Harness()
        h.server.registerToken("stuck", user: "u")
        try setFaults(h, #"{"partitionedTokens":["stuck"],"partitionMode":"hang"}"#)
        let c = try h.connect(timeoutSeconds: 1)
        try c.send("GET", cms, token: "stuck")
        let start = monotonicNow()
        #expect(c.readsEOF())                 // our read timed out: nothing arrived
        #expect(monotonicNow() - start >= 0.9)
        _ = try h.rawRequest("DELETE", "/fake/faults", body: nil, token: nil)
        #expect(try h.request("GET", cms, token: "stuck").status == 200)
    }

    @Test func dropRate_one_closesWithoutAnswer() throws {
        let h = try Harness()
        try setFaults(h, #"{"dropRate":1,"seed":7}"#)
        let c = try h.connect(timeoutSeconds: 5)
        try c.send("GET", cms, token: h.server.token)
        #expect(c.readsEOF())
    }

    @Test func badFaultBody_isRejectedWithMessage() throws {
        let h = try Harness()
        let r = try h.rawRequest("POST", "/fake/faults", body: #"{"partitionMode":"sideways"}"#, token: nil)
        #expect(r.status == 400)
        #expect(r.json["error"]?.stringValue?.contains("partitionMode") == true)
    }
}

@Suite("kube-apiserver-fake: partitions cut open watch streams", .timeLimit(.minutes(1)))
struct PartitionWatchTests {
    private func openWatch(_ h: Harness, token: String, timeoutSeconds: Int) throws -> TestConnection {
        let c = try h.connect(timeoutSeconds: timeoutSeconds)
        try c.send("GET", "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=\(h.server.resourceVersion)", token: token)
        #expect(try c.readHead().0 == 200)
        return c
    }

    @Test func partitionHang_silencesAnOpenWatch() throws {
        let h = try Harness()
        h.server.registerToken("w-hang", user: "u")
        let c = try openWatch(h, token: "w-hang", timeoutSeconds: 3)
        h.server.setFaults(["partitionedTokens": ["w-hang"], "partitionMode": "hang"])
        h.server.put("/api/v1/namespaces/default/configmaps/after", ["data": [:]])
        let start = monotonicNow()
        #expect(throws: TestFailure.self) { _ = try c.readChunk() }   // nothing arrives ...
        #expect(monotonicNow() - start >= 2.5)                       // ... and the stream is not closed either
    }

    @Test func partitionReset_resetsAnOpenWatch() throws {
        let h = try Harness()
        h.server.registerToken("w-reset", user: "u")
        let c = try openWatch(h, token: "w-reset", timeoutSeconds: 10)
        h.server.setFaults(["partitionedTokens": ["w-reset"], "partitionMode": "reset"])
        let start = monotonicNow()
        #expect(c.readsEOF())
        #expect(monotonicNow() - start < 5)
    }
}
