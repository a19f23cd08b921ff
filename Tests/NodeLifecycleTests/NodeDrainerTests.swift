import KLCore
import KLSystem
import KLTestSupport
import Testing
@testable import NodeLifecycleKit

@Suite("Node drainer and drain loop (fake cluster, fake clock)")
struct NodeDrainerTests {
    let sink = MemorySink()
    var logger: Logger { Logger(level: .debug, sink: sink) }

    func drainer(_ cluster: FakeCluster, _ lifecycle: FakeLifecycle, _ queue: FakeQueue, clock: VirtualMonotonicClock,
                 settings: DrainSettings = DrainSettings()) -> NodeDrainer {
        NodeDrainer(cluster: cluster, lifecycle: lifecycle, queue: queue, settings: settings,
                    taint: Taint(key: "node-lifecycle/draining", effect: "NoSchedule"), clock: clock, logger: logger)
    }

    func message(_ queue: FakeQueue, instance: String, token: String, id: String) -> (LifecycleAction, SQSMessage) {
        queue.put(lifecycleBody(instance: instance, token: token), id: id)
        let m = try! queue.receive(max: 10, waitSeconds: 0, visibilitySeconds: 30).first { $0.messageID == id }!
        guard case .action(let a) = try! LifecycleMessage.parse(m.body) else { fatalError() }
        return (a, m)
    }

    @Test func pdbBlockedDrain_skipsDaemonSetAndMirror_heartbeats_completesOnce_deletes() throws {
        // web-1 is blocked by its PDB for the first 30 attempts (2.5 minutes of 5 s retries).
        let cluster = FakeCluster { key, attempt in key == "shop/web-1" && attempt <= 30 ? .blocked(retryAfter: nil) : .accepted }
        cluster.addNode("n1", instance: "i-1")
        cluster.addNode("n2", instance: "i-2")
        cluster.addPod("shop", "web-1", node: "n1", owner: "ReplicaSet")
        cluster.addPod("shop", "web-2", node: "n2", owner: "ReplicaSet")
        cluster.addPod("kube-system", "agent-n1", node: "n1", owner: "DaemonSet")
        cluster.addPod("kube-system", "etcd-n1", node: "n1", mirror: true)
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        let clock = VirtualMonotonicClock()
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        let report = drainer(cluster, lifecycle, queue, clock: clock).handle(action, message: msg)
        #expect(report == .drained(node: "n1"))
        #expect(cluster.podKeys == ["kube-system/agent-n1", "kube-system/etcd-n1", "shop/web-2"])
        #expect(!cluster.evictions.contains("kube-system/agent-n1") && !cluster.evictions.contains("kube-system/etcd-n1"))
        #expect(cluster.evictions.filter { $0 == "shop/web-1" }.count == 31)
        let node = try #require(cluster.node("n1"))
        #expect(node[path: "spec", "unschedulable"] == .bool(true))
        #expect(NodeEdits.hasTaint(node, key: "node-lifecycle/draining"))
        #expect(lifecycle.all.filter { $0.hasPrefix("heartbeat") }.count == 2)  // at 60 s and 120 s
        #expect(lifecycle.all.filter { $0.hasPrefix("complete") } == ["complete:i-1:CONTINUE"])
        #expect(lifecycle.all.last == "complete:i-1:CONTINUE")
        #expect(queue.deletedIDs == ["m1"])
        #expect(queue.extended.withLock { $0 } == ["m1:120", "m1:120"])
        #expect(sink.contains("\"pod\":\"kube-system/agent-n1\"") && sink.contains("DaemonSet pod"))
    }

    @Test func redelivery_afterCompletion_doesNoHarm() {
        let cluster = FakeCluster()
        cluster.addNodesWithAPod(1)
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        let d = drainer(cluster, lifecycle, queue, clock: VirtualMonotonicClock())
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        #expect(d.handle(action, message: msg) == .drained(node: "n1"))
        // The same message again (e.g. the delete was lost).
        let updatesBefore = cluster.state.withLock { $0.updates }
        #expect(d.handle(action, message: msg) == .alreadyCompleted(node: "n1"))
        #expect(cluster.state.withLock { $0.updates } == updatesBefore)
        #expect(lifecycle.all.filter { $0.hasPrefix("complete") }.count == 1)
        #expect(queue.deletedIDs == ["m1", "m1"])
    }

    /// Regression guard: two clusters sharing one queue completed each
    /// other's actions (CONTINUE) and terminated nodes undrained.
    @Test func unknownInstance_leftOnTheQueueByDefault_completedWithContinue() {
        let cluster = FakeCluster()
        cluster.addNode("n1", instance: "i-1")
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        let (action, msg) = message(queue, instance: "i-404", token: "t9", id: "m9")
        #expect(drainer(cluster, lifecycle, queue, clock: VirtualMonotonicClock()).handle(action, message: msg) == .unknownNodeLeft)
        #expect(lifecycle.all.isEmpty)
        #expect(queue.deletedIDs.isEmpty && queue.remaining == ["m9"])
        #expect(sink.contains("message left on the queue (--on-unknown-node leave)"))

        var continuing = drainer(cluster, lifecycle, queue, clock: VirtualMonotonicClock())
        continuing.onUnknownNode = .continue
        #expect(continuing.handle(action, message: msg) == .unknownNode)
        #expect(lifecycle.all == ["complete:i-404:CONTINUE"])
        #expect(queue.deletedIDs == ["m9"])
        #expect(sink.contains("completing the lifecycle action (--on-unknown-node continue)"))
    }

    @Test func drainTimeout_completesWithPodsLeft() {
        let cluster = FakeCluster { _, _ in .blocked(retryAfter: nil) }
        cluster.addNodesWithAPod(1)
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        let report = drainer(cluster, lifecycle, queue, clock: VirtualMonotonicClock(), settings: DrainSettings(timeout: .seconds(90)))
            .handle(action, message: msg)
        #expect(report == .timedOut(node: "n1", remaining: ["shop/web-1"]))
        #expect(lifecycle.all.filter { $0.hasPrefix("complete") } == ["complete:i-1:CONTINUE"])
        #expect(queue.deletedIDs == ["m1"])
        #expect(sink.contains("drain timeout reached") && sink.contains("shop/web-1"))
    }

    @Test func service_deletesTests_leavesMalformed_ignoresInFlightDuplicates() throws {
        let cluster = FakeCluster()
        cluster.addNode("n1", instance: "i-1")
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        queue.put(#"{"Event":"autoscaling:TEST_NOTIFICATION","AutoScalingGroupName":"nodes"}"#, id: "test")
        queue.put("this is not json", id: "bad")
        queue.put(lifecycleBody(instance: "i-1", token: "t1", transition: "autoscaling:EC2_INSTANCE_LAUNCHING"), id: "launch")
        let service = DrainService(queue: queue, drainer: drainer(cluster, lifecycle, queue, clock: VirtualMonotonicClock()),
                                   concurrency: 4, waitSeconds: 0, logger: logger)
        #expect(try service.pollOnce(inline: true) == 3)
        #expect(queue.remaining == ["bad"])
        #expect(queue.deletedIDs == ["test", "launch"])
        #expect(service.finished == [.launchCompleted])
        #expect(sink.contains("malformed message left on the queue"))
    }

    @Test func kubectlFilters_leaveEmptyDirAndBarePods_unlessAllowed_andLogWhy() {
        func run(_ settings: DrainSettings) -> (DrainReport, FakeCluster, MemorySink) {
            let cluster = FakeCluster()
            cluster.addNodesWithAPod(1)
            cluster.addPod("shop", "bare", node: "n1")
            cluster.addPod("shop", "cache", node: "n1", owner: "ReplicaSet")
            cluster.state.withLock { $0.pods["shop/cache"]![path: "spec", "volumes"] = [["name": "tmp", "emptyDir": .object(JSONObject())]] }
            cluster.addPod("kube-system", "agent", node: "n1", owner: "DaemonSet")
            let sink = MemorySink()
            let queue = FakeQueue()
            let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
            let d = NodeDrainer(cluster: cluster, lifecycle: FakeLifecycle(), queue: queue, settings: settings,
                                taint: Taint(key: "d"), clock: VirtualMonotonicClock(), logger: Logger(level: .debug, sink: sink))
            return (d.handle(action, message: msg), cluster, sink)
        }
        // kubectl defaults (but --ignore-daemonsets): only web-1 goes.
        let (r1, c1, s1) = run(DrainSettings())
        #expect(r1 == .drained(node: "n1"))
        #expect(c1.evictions == ["shop/web-1"])
        #expect(s1.contains("Pods with local storage (use --delete-emptydir-data to override)") && s1.contains("\"pod\":\"shop/cache\""))
        #expect(s1.contains("Pods declaring no controller (use --force to override)") && s1.contains("\"pod\":\"shop/bare\""))
        #expect(s1.contains("ignoring DaemonSet-managed Pods"))
        // --delete-emptydir-data --force: everything but the DaemonSet pod.
        let (_, c2, _) = run(DrainSettings(deleteEmptyDirData: true, force: true))
        #expect(Set(c2.evictions) == ["shop/web-1", "shop/bare", "shop/cache"])
        // --ignore-daemonsets=false: kubectl's refusal text, the pod still stays.
        let (_, c3, s3) = run(DrainSettings(ignoreDaemonSets: false))
        #expect(!c3.evictions.contains("kube-system/agent"))
        #expect(s3.contains("DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"))
        // --pod-selector: only matching pods are considered at all.
        let cluster = FakeCluster()
        cluster.addNodesWithAPod(1)
        cluster.addPod("shop", "web-2", node: "n1", owner: "ReplicaSet")
        cluster.state.withLock { $0.pods["shop/web-2"]![path: "metadata", "labels"] = ["tier": "front"] }
        let queue = FakeQueue()
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        let d = NodeDrainer(cluster: cluster, lifecycle: FakeLifecycle(), queue: queue, settings: DrainSettings(podSelector: "tier=front"),
                            taint: Taint(key: "d"), clock: VirtualMonotonicClock(), logger: Logger(sink: MemorySink()))
        #expect(d.handle(action, message: msg) == .drained(node: "n1"))
        #expect(cluster.evictions == ["shop/web-2"])
    }

    @Test func drainEvents_startedAndFinished_orTimedOut() {
        let cluster = FakeCluster()
        cluster.addNodesWithAPod(1)
        let queue = FakeQueue()
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        let metrics = DrainMetrics()
        var d = drainer(cluster, FakeLifecycle(), queue, clock: VirtualMonotonicClock())
        d.metrics = metrics
        #expect(d.handle(action, message: msg) == .drained(node: "n1"))
        #expect(cluster.events.map(\.reason) == ["DrainStarted", "DrainFinished"])
        #expect(cluster.events.allSatisfy { $0.node == "n1" && $0.kind == .normal })
        #expect(metrics.render().contains("node_lifecycle_pods_evicted_total 1"))

        let blocked = FakeCluster { _, _ in .blocked(retryAfter: nil) }
        blocked.addNode("n2", instance: "i-2")
        blocked.addPod("shop", "web-2", node: "n2", owner: "ReplicaSet")
        let (a2, m2) = message(queue, instance: "i-2", token: "t2", id: "m2")
        let report = drainer(blocked, FakeLifecycle(), queue, clock: VirtualMonotonicClock(), settings: DrainSettings(timeout: .seconds(30)))
            .handle(a2, message: m2)
        #expect(report == .timedOut(node: "n2", remaining: ["shop/web-2"]))
        #expect(blocked.events.map(\.reason) == ["DrainStarted", "DrainTimedOut"])
        #expect(blocked.events.last?.kind == .warning)
    }

    /// The eviction's grace period never outlasts the drain timeout.
    @Test func gracePeriod_isCappedToTheDrainTimeLeft() {
        let cluster = FakeCluster { key, attempt in attempt <= 10 ? .blocked(retryAfter: nil) : .accepted }
        cluster.addNode("n1", instance: "i-1")
        cluster.addPod("shop", "slow", node: "n1", owner: "ReplicaSet")
        cluster.state.withLock { $0.pods["shop/slow"]![path: "spec", "terminationGracePeriodSeconds"] = 600 }
        let queue = FakeQueue()
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        // 10 blocked attempts every 5 s: accepted at 50 s of a 120 s drain: 70 s left.
        _ = drainer(cluster, FakeLifecycle(), queue, clock: VirtualMonotonicClock(), settings: DrainSettings(timeout: .seconds(120)))
            .handle(action, message: msg)
        #expect(cluster.state.withLock { $0.graces["shop/slow"] } == 70)
    }
}

@Suite("drain loop concurrency", .timeLimit(.minutes(1)))
struct DrainConcurrencyTests {
    @Test func severalInstancesAtOnce_butNoMoreThanTheBound() throws {
        let base = FakeCluster()
        for i in 1...3 { base.addNode("n\(i)", instance: "i-\(i)") }
        let cluster = BlockingCluster(base)
        let lifecycle = CountingLifecycle()
        let queue = FakeQueue()
        for i in 1...3 { queue.put(lifecycleBody(instance: "i-\(i)", token: "t\(i)"), id: "m\(i)") }
        let service = drainService(cluster, lifecycle, queue, concurrency: 2)
        // All three are received (and heartbeated); two drains start on their own threads.
        #expect(try service.pollOnce() == 3)
        #expect(cluster.started.wait(for: 2) == 2)
        #expect(service.running == 2)
        #expect(service.waiting == 1)
        #expect(Set(lifecycle.inner.all) == ["heartbeat:i-1", "heartbeat:i-2", "heartbeat:i-3"])
        cluster.open.signal()
        // A slot frees up: the third instance is drained without another receive.
        #expect(lifecycle.completed.wait(for: 3) == 3)
        #expect(Set(lifecycle.inner.all.filter { $0.hasPrefix("complete") }) == ["complete:i-1:CONTINUE", "complete:i-2:CONTINUE", "complete:i-3:CONTINUE"])
    }
}

extension DrainConcurrencyTests {
    /// Node n1 (instance i-1) in a cluster whose drains wait until opened, and
    /// a queue holding its lifecycle message m1 (token t1).
    func blockingNodeWithMessage() -> (BlockingCluster, FakeQueue) {
        let base = FakeCluster()
        base.addNode("n1", instance: "i-1")
        let queue = FakeQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        return (BlockingCluster(base), queue)
    }

    /// SQS deletes reliably only with the newest receipt handle: a copy
    /// received while the drain runs is extended, then deleted with it.
    @Test func messageReceivedAgainDuringItsDrain_isExtended_thenDeletedToo() throws {
        let (cluster, queue) = blockingNodeWithMessage()
        let lifecycle = CountingLifecycle()
        let service = drainService(cluster, lifecycle, queue, concurrency: 2)
        #expect(try service.pollOnce() == 1)
        #expect(cluster.started.wait(for: 1) == 1)
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1-again")
        #expect(try service.pollOnce() == 1)
        #expect(queue.extended.withLock { $0 } == ["m1:120", "m1-again:120"])
        cluster.open.signal()
        #expect(lifecycle.completed.wait(for: 1) == 1)
        while service.running > 0 { _ = try service.pollOnce() }
        #expect(Set(queue.deletedIDs) == ["m1", "m1-again"])
        #expect(queue.remaining.isEmpty)
        #expect(lifecycle.inner.all == ["heartbeat:i-1", "complete:i-1:CONTINUE"])
    }
}

extension DrainConcurrencyTests {
    @Test func releaseInFlight_makesTheDrainsMessagesVisibleAtOnce() throws {
        let (cluster, queue) = blockingNodeWithMessage()
        let service = drainService(cluster, CountingLifecycle(), queue, concurrency: 2)
        #expect(try service.pollOnce() == 1)
        #expect(cluster.started.wait(for: 1) == 1)
        #expect(service.releaseInFlight() == 1)
        #expect(queue.extended.withLock { $0 } == ["m1:120", "m1:0"])
        cluster.open.signal()
    }
}
