import KLSystem
import FakeAPIServerKit
import KLCore
import Testing

private let cms = "/api/v1/namespaces/default/configmaps"

/// Opens a watch and checks the HTTP framing of the stream's head.
private func openWatch(_ h: Harness, _ query: String, path: String = cms) throws -> TestConnection {
    let c = try h.connect()
    try c.send("GET", "\(path)?watch=1&\(query)", token: h.server.token)
    let (status, headers) = try c.readHead()
    #expect(status == 200)
    #expect(headers["transfer-encoding"] == "chunked")
    #expect(headers["content-type"] == "application/json")
    return c
}

/// One event: each chunk is exactly one JSON line.
private func nextEvent(_ c: TestConnection) throws -> JSON {
    let chunk = try #require(try c.readChunk())
    #expect(chunk.hasSuffix("\n"))
    #expect(chunk.dropLast().contains("\n") == false)
    return try JSON.parse(chunk)
}

@Suite("kube-apiserver-fake: watch streams", .timeLimit(.minutes(1)))
struct WatchTests {
    @Test func watch_fromZero_sendsCurrentObjectsThenLiveEvents() throws {
        let h = try Harness()
        h.server.put("\(cms)/a", ["data": ["n": "1"]])
        h.server.put("\(cms)/other", ["data": ["n": "1"]])
        let c = try openWatch(h, "fieldSelector=metadata.name%3Da&resourceVersion=0")
        let added = try nextEvent(c)
        #expect(added["type"] == "ADDED")
        #expect(added[path: "object", "metadata", "name"] == "a")
        _ = try h.request("PATCH", "\(cms)/other", body: ["data": ["n": "2"]], contentType: "application/merge-patch+json")
        _ = try h.request("PATCH", "\(cms)/a", body: ["data": ["n": "2"]], contentType: "application/merge-patch+json")
        let modified = try nextEvent(c)
        #expect(modified["type"] == "MODIFIED")
        #expect(modified[path: "object", "data", "n"] == "2")
        #expect(modified[path: "object", "metadata", "resourceVersion"] == .string(String(h.server.resourceVersion)))
        _ = try h.request("DELETE", "\(cms)/a")
        let deleted = try nextEvent(c)
        #expect(deleted["type"] == "DELETED")
        #expect(deleted[path: "object", "metadata", "name"] == "a")
    }

    @Test func watch_fromResourceVersion_replaysOnlyLaterEvents() throws {
        let h = try Harness()
        h.server.put("\(cms)/r", ["data": ["n": "1"]])
        let rv = h.server.resourceVersion
        h.server.put("\(cms)/r", ["data": ["n": "2"]])
        h.server.put("\(cms)/r", ["data": ["n": "3"]])
        let c = try openWatch(h, "resourceVersion=\(rv)")
        #expect(try nextEvent(c)[path: "object", "data", "n"] == "2")
        #expect(try nextEvent(c)[path: "object", "data", "n"] == "3")
    }

    @Test func watch_fromExpiredResourceVersion_sendsErrorEvent410() throws {
        let h = try Harness(historySize: 5)
        h.server.put("\(cms)/e", ["data": ["n": "0"]])
        let old = h.server.resourceVersion
        for i in 1...10 { h.server.put("\(cms)/e", ["data": ["n": .string(String(i))]]) }
        let c = try openWatch(h, "resourceVersion=\(old)")
        let error = try nextEvent(c)
        #expect(error["type"] == "ERROR")
        #expect(error[path: "object", "kind"] == "Status")
        #expect(error[path: "object", "code"] == 410)
        #expect(error[path: "object", "reason"] == "Expired")
        #expect(try c.readChunk() == nil)   // then the stream ends cleanly
    }

    @Test func watch_withTimeoutSeconds_endsWithTerminatingChunkAndKeepsConnection() throws {
        let h = try Harness()
        let c = try openWatch(h, "timeoutSeconds=1")
        let start = monotonicNow()
        #expect(try c.readChunk() == nil)
        #expect(monotonicNow() - start >= 0.9)
        try c.send("GET", cms, token: h.server.token)   // keep-alive: the connection is reusable
        #expect(try c.readResponse().status == 200)
    }

    @Test func watch_withBookmarks_sendsBookmarkWithResourceVersion() throws {
        let h = try Harness()
        let c = try openWatch(h, "allowWatchBookmarks=true&resourceVersion=\(1)")
        var event = try nextEvent(c)
        while event["type"] != "BOOKMARK" { event = try nextEvent(c) }
        #expect(event[path: "object", "kind"] == "ConfigMap")
        #expect(event[path: "object", "metadata", "resourceVersion"]?.stringValue != nil)
    }

    @Test func watch_labelSelector_objectLeavingSelectorIsDeletedForWatcher() throws {
        let h = try Harness()
        h.server.put("\(cms)/l", ["metadata": ["labels": ["app": "x"]]])
        let c = try openWatch(h, "labelSelector=app%3Dx&resourceVersion=0")
        #expect(try nextEvent(c)["type"] == "ADDED")
        h.server.put("\(cms)/l", ["metadata": ["labels": ["app": "y"]]])
        #expect(try nextEvent(c)["type"] == "DELETED")
    }

    @Test func watch_clusterScopedAndAllNamespaces_work() throws {
        let h = try Harness()
        let nodes = try openWatch(h, "resourceVersion=0", path: "/api/v1/nodes")
        let pods = try openWatch(h, "resourceVersion=0", path: "/api/v1/pods")
        h.server.put("/api/v1/nodes/n1", ["spec": [:]])
        h.server.put("/api/v1/namespaces/ns2/pods/p1", ["spec": ["nodeName": "n1"]])
        #expect(try nextEvent(nodes)[path: "object", "metadata", "name"] == "n1")
        let pod = try nextEvent(pods)
        #expect(pod[path: "object", "metadata", "namespace"] == "ns2")
    }

    @Test func fiveHundredConcurrentTLSWatches_allReceiveTheChange() throws {
        let h = try Harness()
        h.server.put("\(cms)/many", ["data": ["n": "0"]])
        var watches: [TestConnection] = []
        for _ in 0..<500 { watches.append(try openWatch(h, "fieldSelector=metadata.name%3Dmany&resourceVersion=\(h.server.resourceVersion)")) }
        h.server.put("\(cms)/many", ["data": ["n": "1"]])
        var received = 0
        for c in watches where try nextEvent(c)[path: "object", "data", "n"] == "1" { received += 1 }
        #expect(received == 500)
        #expect(h.server.activeWatches == 500)
    }
}

func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
