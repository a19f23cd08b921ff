import KLCore
import KLSupport
import Testing
@testable import NodeLifecycleKit

@Suite("Node drainer and drain loop (fake cluster, fake clock)")
struct NodeDrainerTests {
    let sink = MemorySink()
    var logger: Logger { Logger(level: .debug, sink: sink) }

    func drainer(_ cluster: FakeCluster, _ lifecycle: FakeLifecycle, _ queue: FakeQueue, sleeper: FakeSleeper,
                 settings: DrainSettings = DrainSettings()) -> NodeDrainer {
        NodeDrainer(cluster: cluster, lifecycle: lifecycle, queue: queue, settings: settings,
                    taint: Taint(key: "node-lifecycle/draining", effect: "NoSchedule"), sleeper: sleeper, logger: logger)
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
        let sleeper = FakeSleeper()
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        let report = drainer(cluster, lifecycle, queue, sleeper: sleeper).handle(action, message: msg)
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
        cluster.addNode("n1", instance: "i-1")
        cluster.addPod("shop", "web-1", node: "n1", owner: "ReplicaSet")
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        let d = drainer(cluster, lifecycle, queue, sleeper: FakeSleeper())
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        #expect(d.handle(action, message: msg) == .drained(node: "n1"))
        // The same message again (e.g. the delete was lost).
        let updatesBefore = cluster.state.withLock { $0.updates }
        #expect(d.handle(action, message: msg) == .alreadyCompleted(node: "n1"))
        #expect(cluster.state.withLock { $0.updates } == updatesBefore)
        #expect(lifecycle.all.filter { $0.hasPrefix("complete") }.count == 1)
        #expect(queue.deletedIDs == ["m1", "m1"])
    }

    @Test func unknownInstance_isCompletedAndDeleted_withALogLine() {
        let cluster = FakeCluster()
        cluster.addNode("n1", instance: "i-1")
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        let (action, msg) = message(queue, instance: "i-404", token: "t9", id: "m9")
        #expect(drainer(cluster, lifecycle, queue, sleeper: FakeSleeper()).handle(action, message: msg) == .unknownNode)
        #expect(lifecycle.all == ["complete:i-404:CONTINUE"])
        #expect(queue.deletedIDs == ["m9"])
        #expect(sink.contains("no node has this instance's providerID"))
    }

    @Test func drainTimeout_completesWithPodsLeft() {
        let cluster = FakeCluster { _, _ in .blocked(retryAfter: nil) }
        cluster.addNode("n1", instance: "i-1")
        cluster.addPod("shop", "web-1", node: "n1", owner: "ReplicaSet")
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        let (action, msg) = message(queue, instance: "i-1", token: "t1", id: "m1")
        let report = drainer(cluster, lifecycle, queue, sleeper: FakeSleeper(), settings: DrainSettings(timeout: .seconds(90)))
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
        let service = DrainService(queue: queue, drainer: drainer(cluster, lifecycle, queue, sleeper: FakeSleeper()),
                                   concurrency: 4, waitSeconds: 0, logger: logger)
        #expect(try service.pollOnce(inline: true) == 3)
        #expect(queue.remaining == ["bad"])
        #expect(queue.deletedIDs == ["test", "launch"])
        #expect(service.finished == [.launchCompleted])
        #expect(sink.contains("malformed message left on the queue"))
        // A lifecycle action already in flight is not started twice.
        let noop = DrainService(queue: queue, drainer: drainer(cluster, lifecycle, queue, sleeper: FakeSleeper()),
                                concurrency: 4, waitSeconds: 0, logger: logger)
        _ = noop.inFlightInsertForTests("t2")
        queue.put(lifecycleBody(instance: "i-1", token: "t2"), id: "dup")
        _ = try noop.pollOnce(inline: true)
        #expect(queue.remaining.contains("dup"))
        #expect(sink.contains("redelivery ignored"))
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
        let drainer = NodeDrainer(cluster: cluster, lifecycle: lifecycle, queue: queue, settings: DrainSettings(),
                                  taint: Taint(key: "d"), sleeper: FakeSleeper(), logger: Logger(sink: MemorySink()))
        let service = DrainService(queue: queue, drainer: drainer, concurrency: 2, waitSeconds: 0, logger: Logger(sink: MemorySink()))
        // Two drains start on their own threads; the third message is not even received.
        #expect(try service.pollOnce() == 2)
        #expect(cluster.started.wait(for: 2) == 2)
        #expect(service.running == 2)
        #expect(try service.pollOnce() == 0)
        cluster.open.signal()
        #expect(lifecycle.completed.wait(for: 2) >= 2)
        // Capacity is back: the third instance is drained.
        var polled = 0
        while polled == 0 { polled = try service.pollOnce() }
        #expect(lifecycle.completed.wait(for: 3) == 3)
        #expect(Set(lifecycle.inner.all) == ["complete:i-1:CONTINUE", "complete:i-2:CONTINUE", "complete:i-3:CONTINUE"])
    }
}

extension DrainConcurrencyTests {
    /// SQS deletes reliably only with the newest receipt handle: a copy
    /// received while the drain runs is extended, then deleted with it.
    @Test func messageReceivedAgainDuringItsDrain_isExtended_thenDeletedToo() throws {
        let base = FakeCluster()
        base.addNode("n1", instance: "i-1")
        let cluster = BlockingCluster(base)
        let lifecycle = CountingLifecycle()
        let queue = FakeQueue()
        let body = lifecycleBody(instance: "i-1", token: "t1")
        queue.put(body, id: "m1")
        let drainer = NodeDrainer(cluster: cluster, lifecycle: lifecycle, queue: queue, settings: DrainSettings(),
                                  taint: Taint(key: "d"), sleeper: FakeSleeper(), logger: Logger(sink: MemorySink()))
        let service = DrainService(queue: queue, drainer: drainer, concurrency: 2, waitSeconds: 0, logger: Logger(sink: MemorySink()))
        #expect(try service.pollOnce() == 1)
        #expect(cluster.started.wait(for: 1) == 1)
        queue.put(body, id: "m1-again")
        #expect(try service.pollOnce() == 1)
        #expect(queue.extended.withLock { $0 } == ["m1-again:120"])
        cluster.open.signal()
        #expect(lifecycle.completed.wait(for: 1) == 1)
        while service.running > 0 { _ = try service.pollOnce() }
        #expect(Set(queue.deletedIDs) == ["m1", "m1-again"])
        #expect(queue.remaining.isEmpty)
        #expect(lifecycle.inner.all == ["complete:i-1:CONTINUE"])
    }
}

extension DrainConcurrencyTests {
    @Test func releaseInFlight_makesTheDrainsMessagesVisibleAtOnce() throws {
        let base = FakeCluster()
        base.addNode("n1", instance: "i-1")
        let cluster = BlockingCluster(base)
        let queue = FakeQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        let drainer = NodeDrainer(cluster: cluster, lifecycle: CountingLifecycle(), queue: queue, settings: DrainSettings(),
                                  taint: Taint(key: "d"), sleeper: FakeSleeper(), logger: Logger(sink: MemorySink()))
        let service = DrainService(queue: queue, drainer: drainer, concurrency: 2, waitSeconds: 0, logger: Logger(sink: MemorySink()))
        #expect(try service.pollOnce() == 1)
        #expect(cluster.started.wait(for: 1) == 1)
        #expect(service.releaseInFlight() == 1)
        #expect(queue.extended.withLock { $0 } == ["m1:0"])
        cluster.open.signal()
    }
}
