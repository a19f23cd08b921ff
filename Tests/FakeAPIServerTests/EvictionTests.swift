import FakeAPIServerKit
import KLCore
import KLSystem
import Synchronization
import Testing

private let pods = "/api/v1/namespaces/default/pods"
private let pdbs = "/apis/policy/v1/namespaces/default/poddisruptionbudgets"

private func readyPod(_ name: String, app: String = "web", ready: Bool = true) -> JSON {
    ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": .string(name), "labels": ["app": .string(app)]],
     "spec": ["nodeName": "node-1", "containers": [["name": "c", "image": "busybox"]]],
     "status": ["phase": "Running", "conditions": [["type": "Ready", "status": ready ? "True" : "False"]]]]
}

private func eviction(_ name: String) -> JSON {
    ["apiVersion": "policy/v1", "kind": "Eviction", "metadata": ["name": .string(name), "namespace": "default"]]
}

@Suite("kube-apiserver-fake: pods/eviction and PodDisruptionBudgets", .timeLimit(.minutes(1)))
struct EvictionTests {
    @Test func eviction_blockedByBudget_then_allowedOnceReplacementIsReady() throws {
        let h = try Harness()
        for name in ["web-1", "web-2"] { #expect(try h.request("POST", pods, body: readyPod(name)).status == 201) }
        let pdb: JSON = ["apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": ["name": "web-pdb"],
                         "spec": ["minAvailable": 2, "selector": ["matchLabels": ["app": "web"]]]]
        #expect(try h.request("POST", pdbs, body: pdb).status == 201)

        let blocked = try h.request("POST", "\(pods)/web-1/eviction", body: eviction("web-1"))
        #expect(blocked.status == 429)
        #expect(blocked.json["reason"] == "TooManyRequests")
        #expect(blocked.json["message"] == "Cannot evict pod as it would violate the pod's disruption budget.")
        #expect(blocked.json[path: "details", "causes"] == [["reason": "DisruptionBudget",
                                                             "message": "The disruption budget web-pdb needs 2 healthy pods and has 2 currently"]])
        #expect(h.server.object("\(pods)/web-1") != nil)

        // A replacement that is not Ready yet does not help ...
        #expect(try h.request("POST", pods, body: readyPod("web-3", ready: false)).status == 201)
        #expect(try h.request("POST", "\(pods)/web-1/eviction", body: eviction("web-1")).status == 429)
        // ... once it is Ready, one disruption is allowed.
        let status = try h.request("PATCH", "\(pods)/web-3/status",
                                   body: ["status": ["conditions": [["type": "Ready", "status": "True"]]]],
                                   contentType: "application/merge-patch+json")
        #expect(status.status == 200)
        let budget = try h.request("GET", "\(pdbs)/web-pdb").json
        #expect(budget["status"]?["currentHealthy"] == 3)
        #expect(budget["status"]?["desiredHealthy"] == 2)
        #expect(budget["status"]?["disruptionsAllowed"] == 1)
        #expect(budget["status"]?["expectedPods"] == 3)

        let evicted = try h.request("POST", "\(pods)/web-1/eviction", body: eviction("web-1"))
        #expect(evicted.status == 201)
        #expect(evicted.json["kind"] == "Status")
        #expect(evicted.json["status"] == "Success")
        #expect(h.server.object("\(pods)/web-1") == nil)
        #expect(try h.request("POST", "\(pods)/web-2/eviction", body: eviction("web-2")).status == 429)
    }

    @Test func eviction_maxUnavailablePercent_roundsUp() throws {
        let h = try Harness()
        for i in 1...3 { h.server.put("\(pods)/p\(i)", readyPod("p\(i)", app: "db")) }
        h.server.put("\(pdbs)/db", ["apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                    "metadata": ["annotations": ["fake.kube-leader.dev/expected-pods": "3"]],
                                    "spec": ["maxUnavailable": "34%", "selector": ["matchLabels": ["app": "db"]]]])
        // 34% of 3 expected pods rounds up to 2 unavailable: desired healthy 1, so two evictions pass.
        #expect(try h.request("POST", "\(pods)/p1/eviction", body: eviction("p1")).status == 201)
        #expect(try h.request("POST", "\(pods)/p2/eviction", body: eviction("p2")).status == 201)
        #expect(try h.request("POST", "\(pods)/p3/eviction", body: eviction("p3")).status == 429)
    }

    @Test func eviction_twoMatchingBudgets_returns500() throws {
        let h = try Harness()
        h.server.put("\(pods)/x", readyPod("x"))
        for n in ["a", "b"] {
            h.server.put("\(pdbs)/\(n)", ["spec": ["minAvailable": 0, "selector": ["matchLabels": ["app": "web"]]]])
        }
        let r = try h.request("POST", "\(pods)/x/eviction", body: eviction("x"))
        #expect(r.status == 500)
        #expect(r.json["message"] == "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.")
    }

    @Test func eviction_noBudgetOrMissingPod() throws {
        let h = try Harness()
        h.server.put("\(pods)/free", readyPod("free"))
        #expect(try h.request("POST", "\(pods)/free/eviction", body: eviction("free")).status == 201)
        let missing = try h.request("POST", "\(pods)/free/eviction", body: eviction("free"))
        #expect(missing.status == 404)
        #expect(missing.json["message"] == "pods \"free\" not found")
    }

    @Test func pods_listByNodeNameAcrossNamespaces() throws {
        let h = try Harness()
        h.server.put("/api/v1/namespaces/a/pods/one", ["spec": ["nodeName": "n1"]])
        h.server.put("/api/v1/namespaces/b/pods/two", ["spec": ["nodeName": "n2"]])
        h.server.put("/api/v1/nodes/n1", ["spec": ["unschedulable": false]])
        let list = try h.request("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")
        #expect(list.json["kind"] == "PodList")
        #expect(list.json["items"]?.arrayValue?.count == 1)
        let cordon = try h.request("PATCH", "/api/v1/nodes/n1", body: ["spec": ["unschedulable": true]],
                                   contentType: "application/strategic-merge-patch+json")
        #expect(cordon.json[path: "spec", "unschedulable"] == true)
        #expect(try h.request("GET", "/api/v1/nodes/missing").json["message"] == "nodes \"missing\" not found")
    }

    @Test func podGrace_deletedPodIsTerminatingThenGone() throws {
        let h = try Harness(podGraceSeconds: 1)
        h.server.put("\(pods)/slow", readyPod("slow"))
        let c = try h.connect()
        try c.send("GET", "\(pods)?watch=1&resourceVersion=\(h.server.resourceVersion)", token: h.server.token)
        #expect(try c.readHead().0 == 200)
        let start = monotonicNow()
        let deleted = try h.request("DELETE", "\(pods)/slow")
        #expect(deleted.status == 200)
        #expect(deleted.json[path: "metadata", "deletionTimestamp"]?.stringValue != nil)
        #expect(h.server.object("\(pods)/slow") != nil)
        let terminating = try JSON.parse(try #require(try c.readChunk()))
        #expect(terminating["type"] == "MODIFIED")
        let gone = try JSON.parse(try #require(try c.readChunk()))
        #expect(gone["type"] == "DELETED")
        #expect(monotonicNow() - start >= 0.9)
        #expect(h.server.object("\(pods)/slow") == nil)
    }

    /// Regression guard (found by scripts/node-scale --nodes 200 --mix, two
    /// evictions of one budget 8 ms apart both accepted): the decision and
    /// the delete were two steps, so concurrent evictions could both take
    /// the last disruption. 40 evictions at once, ten rounds: exactly one
    /// accepted per round (without the fix, rounds saw 2 to 37 accepted).
    @Test func concurrentEvictions_takeTheLastDisruptionOnce() throws {
        let h = try Harness()
        nonisolated(unsafe) let harness = h   // each request opens its own connection
        let n = 40
        for round in 0..<10 {
            let app = "race\(round)"
            for i in 1...n { h.server.put("\(pods)/\(app)-\(i)", readyPod("\(app)-\(i)", app: app)) }
            h.server.put("\(pdbs)/\(app)", ["apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                                            "metadata": ["name": .string(app), "namespace": "default"],
                                            "spec": ["minAvailable": JSON(n - 1), "selector": ["matchLabels": ["app": .string(app)]]]])
            let statuses = Mutex<[Int]>([])
            let mc = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
            let cc = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
            pthread_mutex_init(mc, nil); pthread_cond_init(cc, nil)
            defer { mc.deallocate(); cc.deallocate() }
            nonisolated(unsafe) let m = mc, c = cc
            for i in 1...n {
                runOnNewThread {
                    let status = (try? harness.request("POST", "\(pods)/\(app)-\(i)/eviction", body: eviction("\(app)-\(i)")).status) ?? -1
                    pthread_mutex_lock(m); statuses.withLock { $0.append(status) }; pthread_cond_broadcast(c); pthread_mutex_unlock(m)
                }
            }
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            deadline.tv_sec += 30
            pthread_mutex_lock(m)
            while statuses.withLock({ $0.count }) < n { if pthread_cond_timedwait(c, m, &deadline) == ETIMEDOUT { break } }
            pthread_mutex_unlock(m)
            let got = statuses.withLock { $0 }
            #expect(got.filter { $0 == 201 }.count == 1 && got.filter { $0 == 429 }.count == n - 1, "round \(round): \(got.sorted())")
        }
    }
}
