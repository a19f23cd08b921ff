import KLCore
import Testing
import KLSystem
@testable import NodeLifecycleKit

@Suite("Drain plan")
struct DrainPlanTests {
    let t0 = MonotonicClock.now
    let web1 = DrainPod(namespace: "shop", name: "web-1", uid: "u1", controllerKind: "ReplicaSet")
    let web2 = DrainPod(namespace: "shop", name: "web-2", uid: "u2", controllerKind: "ReplicaSet")
    let agent = DrainPod(namespace: "kube-system", name: "agent-x", uid: "u3", controllerKind: "DaemonSet")
    let mirror = DrainPod(namespace: "kube-system", name: "etcd-n1", uid: "u4", isMirror: true)
    let done = DrainPod(namespace: "batch", name: "job-1", uid: "u5", controllerKind: "Job", isFinished: true)

    func evictions(_ actions: [DrainAction]) -> [String] {
        actions.compactMap { if case .evict(let p) = $0 { return p.key }; return nil }
    }

    @Test func make_skipsDaemonSetAndMirrorPods_andIgnoresFinished() {
        var plan = DrainPlan.make(pods: [agent, web1, mirror, done, web2], settings: DrainSettings(), now: t0)
        #expect(plan.skipped.map { $0.0.key } == ["kube-system/agent-x", "kube-system/etcd-n1"])
        #expect(plan.skipped.map { $0.1 } == [.daemonSet, .mirror])
        #expect(evictions(plan.next(now: t0)) == ["shop/web-1", "shop/web-2"])
    }

    @Test func podJSON_readsControllerMirrorAndPhase() throws {
        let json = try JSON.parse(#"""
        {"metadata":{"name":"a","namespace":"ns","uid":"U","annotations":{"kubernetes.io/config.mirror":"x"},
         "ownerReferences":[{"kind":"Node","name":"n","controller":true}]},"status":{"phase":"Succeeded"}}
        """#)
        let pod = try #require(DrainPod(json: json))
        #expect(pod == DrainPod(namespace: "ns", name: "a", uid: "U", controllerKind: "Node", isMirror: true, isFinished: true))
    }

    /// Regression guard (found by scripts/node-scale): a pod bound to the
    /// node just before the cordon took effect was left on it.
    @Test func podArrivingDuringTheDrain_isAdopted_andEvictedToo() {
        var plan = DrainPlan.make(pods: [web1], settings: DrainSettings(), now: t0)
        #expect(evictions(plan.next(now: t0)) == ["shop/web-1"])
        plan.record(.accepted, for: web1, now: t0)
        let late = DrainPod(namespace: "shop", name: "late", uid: "u9", controllerKind: "ReplicaSet")
        let lateBare = DrainPod(namespace: "shop", name: "bare", uid: "u10")
        #expect(plan.observe(pods: [late, lateBare, agent], now: t0 + .seconds(2)) == [late])
        #expect(plan.skipped.map { $0.0.key } == ["shop/bare", "kube-system/agent-x"])
        #expect(evictions(plan.next(now: t0 + .seconds(2))) == ["shop/late"])
        plan.record(.accepted, for: late, now: t0 + .seconds(2))
        #expect(plan.observe(pods: [lateBare, agent], now: t0 + .seconds(4)).isEmpty)
        #expect(plan.next(now: t0 + .seconds(4)) == [.finish(.drained)])
    }

    @Test func emptyNode_isDrainedAtOnce() {
        var plan = DrainPlan.make(pods: [agent, mirror], settings: DrainSettings(), now: t0)
        #expect(plan.next(now: t0) == [.finish(.drained)])
    }

    @Test func pdbBlocked_retriesEveryFiveSeconds_untilAccepted() {
        var plan = DrainPlan.make(pods: [web1], settings: DrainSettings(), now: t0)
        #expect(evictions(plan.next(now: t0)) == ["shop/web-1"])
        plan.record(.blocked(retryAfter: nil), for: web1, now: t0)
        // Not before 5 s.
        let early = plan.next(now: t0 + .seconds(4))
        #expect(evictions(early).isEmpty)
        #expect(early.last == .wait(until: t0 + .seconds(5)))
        #expect(evictions(plan.next(now: t0 + .seconds(5))) == ["shop/web-1"])
        plan.record(.blocked(retryAfter: .seconds(12)), for: web1, now: t0 + .seconds(5))
        #expect(evictions(plan.next(now: t0 + .seconds(10))).isEmpty)
        #expect(evictions(plan.next(now: t0 + .seconds(17))) == ["shop/web-1"])
        plan.record(.accepted, for: web1, now: t0 + .seconds(17))
        #expect(plan.attempts["shop/web-1"] == 3)
        // Evicted but still listed: wait (poll), do not evict again.
        plan.observe(pods: [web1], now: t0 + .seconds(18))
        let waiting = plan.next(now: t0 + .seconds(18))
        #expect(waiting == [.wait(until: t0 + .seconds(20))])
        plan.observe(pods: [], now: t0 + .seconds(20))
        #expect(plan.next(now: t0 + .seconds(20)) == [.finish(.drained)])
    }

    @Test func replacedPod_sameNameNewUID_countsAsGone() {
        var plan = DrainPlan.make(pods: [web1], settings: DrainSettings(), now: t0)
        _ = plan.next(now: t0)
        plan.record(.accepted, for: web1, now: t0)
        var replacement = web1
        replacement.uid = "u1-new"
        plan.observe(pods: [replacement], now: t0 + .seconds(2))
        #expect(plan.next(now: t0 + .seconds(2)) == [.finish(.drained)])
    }

    @Test func notFound_meansGone() {
        var plan = DrainPlan.make(pods: [web1], settings: DrainSettings(), now: t0)
        _ = plan.next(now: t0)
        plan.record(.notFound, for: web1, now: t0)
        #expect(plan.next(now: t0) == [.finish(.drained)])
    }

    @Test func heartbeats_areDueEveryInterval_duringALongDrain() {
        let settings = DrainSettings(timeout: .seconds(3600), heartbeatInterval: .seconds(60))
        var plan = DrainPlan.make(pods: [web1], settings: settings, now: t0)
        var heartbeats: [Duration] = []
        var now = t0
        while now < t0 + .seconds(300) {
            for action in plan.next(now: now) {
                switch action {
                case .heartbeat:
                    heartbeats.append(now - t0)
                    plan.heartbeatSent(now: now)
                case .evict(let pod):
                    plan.record(.blocked(retryAfter: nil), for: pod, now: now)
                case .wait(let until):
                    #expect(until > now)
                    now = until
                case .finish:
                    Issue.record("finished early")
                    return
                }
            }
        }
        #expect(heartbeats == [.seconds(60), .seconds(120), .seconds(180), .seconds(240)])
    }

    @Test func timeout_finishesWithThePodsLeft_andStaysFinished() {
        let settings = DrainSettings(timeout: .seconds(30))
        var plan = DrainPlan.make(pods: [web1, web2], settings: settings, now: t0)
        _ = plan.next(now: t0)
        plan.record(.blocked(retryAfter: nil), for: web1, now: t0)
        plan.record(.accepted, for: web2, now: t0)
        plan.observe(pods: [web1], now: t0 + .seconds(29))
        let wait = plan.next(now: t0 + .seconds(29))
        #expect(wait.last.map { if case .wait(let u) = $0 { return u <= t0 + .seconds(30) }; return false } == true)
        let finished = plan.next(now: t0 + .seconds(30))
        #expect(finished == [.finish(.timedOut(remaining: [web1]))])
        // Exactly one outcome: later calls repeat it, even if the pod goes.
        plan.observe(pods: [], now: t0 + .seconds(31))
        #expect(plan.next(now: t0 + .seconds(31)) == [.finish(.timedOut(remaining: [web1]))])
    }

    @Test func failedEviction_isRetried() {
        var plan = DrainPlan.make(pods: [web1], settings: DrainSettings(), now: t0)
        _ = plan.next(now: t0)
        plan.record(.failed("500 more than one PodDisruptionBudget"), for: web1, now: t0)
        #expect(evictions(plan.next(now: t0 + .seconds(1))).isEmpty)
        #expect(evictions(plan.next(now: t0 + .seconds(5))) == ["shop/web-1"])
    }
}
