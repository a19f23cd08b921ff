import FakeAPIServerKit
import KLCore
import KLKube
import Testing

/// The project's own client (KLKube) against the fake: the errors it maps
/// from the fake's Status bodies are the ones the real server would cause.
@Suite("kube-apiserver-fake: with the KLKube client", .timeLimit(.minutes(1)))
struct FakeWithKubeClientTests {
    private func client(_ h: Harness, token: String? = nil) throws -> KubeClient {
        try KubeClient(config: KubeConfig(server: h.server.url, caFile: h.server.caFile,
                                          tokenFile: token == nil ? h.server.tokenFile : nil, token: token),
                       requestTimeout: .seconds(5))
    }

    @Test func kubeClient_crudConflictAndNotFound_mapToTypedErrors() throws {
        let h = try Harness()
        let c = try client(h)
        let created = try c.create(.leases, namespace: "default", body: ["metadata": ["name": "l"], "spec": ["holderIdentity": "a"]])
        var stale = created
        var fresh = created
        fresh[path: "spec", "holderIdentity"] = "b"
        _ = try c.update(.leases, namespace: "default", name: "l", body: fresh)
        stale[path: "spec", "holderIdentity"] = "c"
        let conflict = #expect(throws: KubeError.self) { _ = try c.update(.leases, namespace: "default", name: "l", body: stale) }
        #expect(conflict?.code == .conflict)
        let missing = #expect(throws: KubeError.self) { _ = try c.get(.configMaps, namespace: "default", name: "none") }
        #expect(missing?.code == .notFound)
        #expect(missing?.message == "configmaps \"none\" not found")
    }

    @Test func kubeClient_forbiddenToken_mapsToForbidden() throws {
        let h = try Harness()
        h.server.registerToken("ro", user: "system:serviceaccount:default:ro", allow: ["get configmaps"])
        let c = try client(h, token: "ro")
        let e = #expect(throws: KubeError.self) {
            _ = try c.create(.configMaps, namespace: "default", body: ["metadata": ["name": "x"]])
        }
        #expect(e?.code == .forbidden)
        #expect(e?.httpStatus == 403)
    }

    @Test func kubeClient_watch_receivesEventsAndExpired() throws {
        let h = try Harness(historySize: 2)
        let c = try client(h)
        h.server.put("/api/v1/namespaces/default/configmaps/w", ["data": ["n": "0"]])
        let w = try c.watch(.configMaps, namespace: "default", fieldSelector: "metadata.name=w", resourceVersion: "0")
        guard case .event(let added) = try w.next(deadline: .now + .seconds(5)) else { Issue.record("no ADDED event"); return }
        #expect(added.type == "ADDED")
        h.server.put("/api/v1/namespaces/default/configmaps/w", ["data": ["n": "1"]])
        guard case .event(let modified) = try w.next(deadline: .now + .seconds(5)) else { Issue.record("no MODIFIED event"); return }
        #expect(modified.type == "MODIFIED")
        w.close()
        for i in 2...6 { h.server.put("/api/v1/namespaces/default/configmaps/w", ["data": ["n": .string(String(i))]]) }
        let old = try c.watch(.configMaps, namespace: "default", resourceVersion: "1")
        guard case .event(let expired) = try old.next(deadline: .now + .seconds(5)) else { Issue.record("no ERROR event"); return }
        #expect(expired.type == "ERROR")
        #expect(expired.object["code"] == 410)
    }

    @Test func kubeClient_evictionBlocked_mapsToTooManyRequests() throws {
        let h = try Harness()
        h.server.put("/api/v1/namespaces/default/pods/p", ["metadata": ["labels": ["app": "a"]],
                                                           "status": ["phase": "Running", "conditions": [["type": "Ready", "status": "True"]]]])
        h.server.put("/apis/policy/v1/namespaces/default/poddisruptionbudgets/b",
                     ["spec": ["minAvailable": 1, "selector": ["matchLabels": ["app": "a"]]]])
        let c = try client(h)
        let e = #expect(throws: KubeError.self) {
            _ = try c.post(.pods, namespace: "default", name: "p", subresource: "eviction",
                           body: ["apiVersion": "policy/v1", "kind": "Eviction", "metadata": ["name": "p", "namespace": "default"]])
        }
        #expect(e?.code == .tooManyRequests)
    }

    @Test func kubeClient_partitionHang_timesOutWithinDeadline() throws {
        let h = try Harness()
        h.server.registerToken("cut", user: "u")
        h.server.setFaults(["partitionedTokens": ["cut"], "partitionMode": "hang"])
        let c = try KubeClient(config: KubeConfig(server: h.server.url, caFile: h.server.caFile, token: "cut"),
                               requestTimeout: .milliseconds(500))
        let start = monotonicNow()
        let e = #expect(throws: KubeError.self) { _ = try c.get(.configMaps, namespace: "default", name: "x") }
        #expect(e?.code == .timedOut)
        #expect(monotonicNow() - start < 3)
    }
}
