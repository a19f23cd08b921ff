import KLCore
import KLSystem
import Synchronization
import KLTestSupport
import Testing
@testable import NodeLifecycleKit

/// Auto Scaling on a virtual clock: an action not heartbeated (or completed)
/// within `heartbeatTimeout` of its start or last heartbeat takes its
/// DefaultResult (CONTINUE): the instance terminates undrained, and later
/// calls get "No active Lifecycle Action".
final class ClockedLifecycle: LifecycleAPI {
    struct State {
        var lastSeen: [String: MonotonicClock.Instant] = [:]
        var timedOut: Set<String> = []
        var completed: [String] = []
        var heartbeats: [String: Int] = [:]
    }
    let state = Mutex(State())
    let clock: any BlockingClock<MonotonicInstant>
    let heartbeatTimeout: Duration

    init(clock: any BlockingClock<MonotonicInstant>, heartbeatTimeout: Duration) {
        self.clock = clock
        self.heartbeatTimeout = heartbeatTimeout
    }

    /// The hook fires: the action starts now.
    func start(_ token: String) { state.withLock { $0.lastSeen[token] = clock.now } }

    /// Applies DefaultResult to every action whose timeout passed by now.
    func expire() {
        let now = clock.now
        state.withLock { s in
            for (token, seen) in s.lastSeen where now - seen > heartbeatTimeout && !s.completed.contains(token) {
                s.timedOut.insert(token)
            }
        }
    }

    func touch(_ token: String) throws(NodeLifecycleError) {
        expire()
        let ok = state.withLock { s -> Bool in
            guard !s.timedOut.contains(token), !s.completed.contains(token) else { return false }
            s.lastSeen[token] = clock.now
            return true
        }
        if !ok { throw FakeLifecycle.noActive }
    }

    func heartbeat(_ action: LifecycleAction) throws(NodeLifecycleError) {
        try touch(action.lifecycleActionToken)
        state.withLock { $0.heartbeats[action.lifecycleActionToken, default: 0] += 1 }
    }
    func complete(_ action: LifecycleAction, result: LifecycleActionResult) throws(NodeLifecycleError) {
        try touch(action.lifecycleActionToken)
        state.withLock { $0.completed.append(action.lifecycleActionToken) }
    }
    var timedOut: Set<String> { state.withLock { $0.timedOut } }
    var completed: [String] { state.withLock { $0.completed } }
}

/// SQS as it treats receipt handles: every receive issues a new handle and
/// only the newest one works for ChangeMessageVisibility and DeleteMessage
/// (an older one gets ReceiptHandleIsInvalid).
final class HandleQueue: QueueAPI {
    struct Message { var id: String; var body: String; var handle: String?; var visible: Bool; var receives: Int }
    let state = Mutex<[Message]>([])
    let calls = Mutex<[String]>([])
    func put(_ body: String, id: String) {
        state.withLock { $0.append(Message(id: id, body: body, handle: nil, visible: true, receives: 0)) }
    }
    /// The visibility timeout of `id` ran out: it can be received again.
    func expireVisibility(_ id: String) { state.withLock { for i in $0.indices where $0[i].id == id { $0[i].visible = true } } }
    func receive(max: Int, waitSeconds: Int, visibilitySeconds: Int) throws(NodeLifecycleError) -> [SQSMessage] {
        state.withLock { all in
            var out: [SQSMessage] = []
            for i in all.indices where all[i].visible && out.count < max {
                all[i].receives += 1
                all[i].visible = false
                all[i].handle = "rh-\(all[i].id)-\(all[i].receives)"
                out.append(SQSMessage(messageID: all[i].id, receiptHandle: all[i].handle!, body: all[i].body, receiveCount: all[i].receives))
            }
            return out
        }
    }
    func check(_ m: SQSMessage, _ verb: String) throws(NodeLifecycleError) {
        let current = state.withLock { $0.first { $0.id == m.messageID }?.handle }
        calls.withLock { $0.append("\(verb):\(m.receiptHandle)") }
        guard current == m.receiptHandle else {
            throw NodeLifecycleError(.aws, "The receipt handle \(m.receiptHandle) is not valid.", awsCode: "ReceiptHandleIsInvalid", httpStatus: 400)
        }
    }
    func delete(_ message: SQSMessage) throws(NodeLifecycleError) {
        try check(message, "delete")
        state.withLock { $0.removeAll { $0.id == message.messageID } }
    }
    func extend(_ message: SQSMessage, seconds: Int) throws(NodeLifecycleError) { try check(message, "extend") }
    var remaining: [String] { state.withLock { $0.map(\.id) } }
    var log: [String] { calls.withLock { $0 } }
}

@Suite("drain service: every received action is heartbeated (virtual clock)")
struct DrainServiceTests {
    /// Regression guard: while `--concurrency` drains ran, no
    /// message was received, so queued actions got no heartbeat and their
    /// instances terminated undrained after HeartbeatTimeout.
    @Test func scaleInBeyondConcurrency_everyActionHeartbeated_noneTimesOut() throws {
        let nodes = 6
        // Each node's pod is blocked by its PDB for 5 minutes (60 tries, 5 s apart).
        let cluster = FakeCluster { _, attempt in attempt <= 60 ? .blocked(retryAfter: nil) : .accepted }
        let queue = HandleQueue()
        let box = Mutex<DrainService?>(nil)
        // The virtual clock drives the heartbeat loop: whenever a drain waits,
        // the loop runs at the new time, as its own thread would.
        let clock = VirtualMonotonicClock { _ in _ = box.withLock { $0 }?.heartbeatDue() }
        let lifecycle = ClockedLifecycle(clock: clock, heartbeatTimeout: .seconds(300))
        let service = scaleIn(nodes, cluster, queue, lifecycle, clock: clock, concurrency: 2)
        box.withLock { $0 = service }
        // One receive takes all six; the drains run inline, one after the other: half an hour of virtual time.
        #expect(try service.pollOnce(inline: true) == nodes)
        lifecycle.expire()
        #expect(lifecycle.timedOut.isEmpty)
        #expect(Set(lifecycle.completed) == Set((1...nodes).map { "t\($0)" }))
        #expect(service.finished.count == nodes)
        #expect(service.finished.allSatisfy { if case .drained = $0 { return true }; return false })
        #expect(queue.remaining.isEmpty)
        // The last action waited about 25 virtual minutes and drained 5: one heartbeat a minute.
        #expect(try #require(lifecycle.state.withLock { $0.heartbeats["t6"] }) >= 25)
        #expect(!queue.log.contains { $0.hasPrefix("extend:") && !$0.hasSuffix("-1") })
    }

    /// The same scale-in without the heartbeat loop must lose every action
    /// that outlives HeartbeatTimeout: proves the test above can fail.
    @Test func withoutTheHeartbeatLoop_actionsTimeOut() throws {
        let cluster = FakeCluster { _, attempt in attempt <= 120 ? .blocked(retryAfter: nil) : .accepted }
        let queue = HandleQueue()
        let clock = VirtualMonotonicClock()
        let lifecycle = ClockedLifecycle(clock: clock, heartbeatTimeout: .seconds(300))
        let service = scaleIn(3, cluster, queue, lifecycle, clock: clock, concurrency: 1)
        _ = try service.pollOnce(inline: true)
        lifecycle.expire()
        #expect(lifecycle.timedOut == ["t1", "t2", "t3"])
        #expect(service.finished.allSatisfy { if case .alreadyCompleted = $0 { return true }; return false })
    }

    /// Regression guard: after a redelivery the drain kept extending (and
    /// finally deleting) with the first receipt handle.
    @Test func redelivery_newestReceiptHandleIsUsedForExtendAndDelete() throws {
        let cluster = FakeCluster { _, attempt in attempt <= 30 ? .blocked(retryAfter: nil) : .accepted }
        cluster.addNodesWithAPod(1)
        let queue = HandleQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        // 30 s into the drain the message's visibility runs out once (say the
        // extension call was lost) and the service receives it again.
        let redelivery = InterruptingClock(after: .seconds(30), { queue.expireVisibility("m1") }, everyStep: { $0.heartbeatDue() })
        let lifecycle = FakeLifecycle()
        let service = drainService(cluster, lifecycle, queue, settings: DrainSettings(heartbeatInterval: .seconds(60)), clock: redelivery.clock)
        redelivery.drive(service)
        #expect(try service.pollOnce(inline: true) == 1)
        #expect(redelivery.interrupted)
        #expect(service.finished == [.drained(node: "n1")])
        #expect(queue.remaining.isEmpty)
        let log = queue.log
        let firstExtendWithNew = try #require(log.firstIndex(of: "extend:rh-m1-2"))
        #expect(!log[firstExtendWithNew...].contains("extend:rh-m1-1"))
        #expect(log.last == "delete:rh-m1-2")
        #expect(lifecycle.all.filter { $0.hasPrefix("complete") } == ["complete:i-1:CONTINUE"])
    }

    /// A waiting action that Auto Scaling no longer has is dropped, its
    /// message deleted, and never drained.
    @Test func waitingActionGone_isDroppedWithoutADrain() throws {
        let cluster = FakeCluster()
        let queue = HandleQueue()
        let clock = VirtualMonotonicClock()
        let lifecycle = ClockedLifecycle(clock: clock, heartbeatTimeout: .seconds(300))
        for i in 1...2 {
            cluster.addNode("n\(i)", instance: "i-\(i)")
            queue.put(lifecycleBody(instance: "i-\(i)", token: "t\(i)"), id: "m\(i)")
            lifecycle.start("t\(i)")
        }
        let service = drainService(cluster, lifecycle, queue, settings: DrainSettings(heartbeatInterval: .seconds(60)), clock: clock)
        // Receive without starting drains (as when all slots are busy).
        for m in try queue.receive(max: 10, waitSeconds: 0, visibilitySeconds: 30) { service.accept(m) }
        #expect(service.waiting == 2)
        // Someone else completes t2 (say, an operator); the next heartbeat finds it gone.
        try lifecycle.complete(LifecycleAction(autoScalingGroupName: "nodes", lifecycleHookName: "drain", lifecycleActionToken: "t2",
                                               instanceID: "i-2", transition: .terminating), result: .continue)
        clock.sleep(until: clock.now + .seconds(60))
        service.heartbeatDue()
        #expect(service.waiting == 1)
        #expect(queue.remaining == ["m1"])
        #expect(service.finished == [.alreadyCompleted(node: nil)])
    }

    /// One node list per receive, not per message (clusters of thousands of nodes).
    @Test func nodesListedOncePerBatch() throws {
        final class Counting: ClusterAPI {
            let inner = FakeCluster()
            let lists = Mutex(0)
            func listNodes() throws(NodeLifecycleError) -> [JSON] { lists.withLock { $0 += 1 }; return try inner.listNodes() }
            func getNode(_ name: String) throws(NodeLifecycleError) -> JSON? { try inner.getNode(name) }
            func updateNode(_ node: JSON) throws(NodeLifecycleError) -> Bool { try inner.updateNode(node) }
            func podsOnNode(_ name: String, labelSelector: String?) throws(NodeLifecycleError) -> [JSON] { try inner.podsOnNode(name, labelSelector: labelSelector) }
            func evict(namespace: String, name: String, gracePeriodSeconds: Int?) -> EvictionResult { .accepted }
            func recordEvent(_ event: NodeEvent) throws(NodeLifecycleError) {}
        }
        let cluster = Counting()
        let queue = HandleQueue()
        for i in 1...5 { queue.put(lifecycleBody(instance: "i-elsewhere-\(i)", token: "t\(i)"), id: "m\(i)") }
        let service = drainService(cluster, FakeLifecycle(), queue)
        #expect(try service.pollOnce(inline: true) == 5)
        #expect(service.finished == Array(repeating: .unknownNodeLeft, count: 5))
        #expect(cluster.lists.withLock { $0 } == 1)
    }

    @Test func unknownNode_leaveIsDecidedAtReceipt_andNotHeartbeated() throws {
        let cluster = FakeCluster()
        cluster.addNode("n1", instance: "i-1")
        let queue = HandleQueue()
        queue.put(lifecycleBody(instance: "i-other-cluster", token: "t9"), id: "m9")
        let lifecycle = FakeLifecycle()
        let sink = MemorySink()
        let service = drainService(cluster, lifecycle, queue, sink: sink)
        #expect(try service.pollOnce(inline: true) == 1)
        #expect(service.finished == [.unknownNodeLeft])
        #expect(lifecycle.all.isEmpty)
        #expect(queue.remaining == ["m9"] && queue.log.isEmpty)
        #expect(service.tracked.isEmpty)
        #expect(sink.contains("\"on_unknown_node\":\"leave\""))
    }
}

@Suite("drain metrics")
struct DrainMetricsTests {
    @Test func render_countsByLabel_andCumulativeHistogram() {
        let m = DrainMetrics()
        let action = LifecycleAction(autoScalingGroupName: "nodes", lifecycleHookName: "drain", lifecycleActionToken: "t",
                                     instanceID: "i-1", transition: .terminating)
        m.received(action)
        m.received(action)
        m.received(LifecycleAction(autoScalingGroupName: "", lifecycleHookName: "", lifecycleActionToken: "instance:i-2",
                                   instanceID: "i-2", transition: .terminating, source: .spotInterruption))
        m.completed(.drained(node: "n1"))
        m.completed(.unknownNodeLeft)
        m.heartbeat(ok: true)
        m.heartbeat(ok: false)
        m.evictionBlocked()
        m.setInProgress(running: 1, waiting: 3)
        m.drainDuration(.seconds(7))
        m.drainDuration(.seconds(4000))
        let text = m.render()
        #expect(text.contains("node_lifecycle_actions_received_total{transition=\"terminating\"} 2\n"))
        #expect(text.contains("node_lifecycle_actions_received_total{transition=\"launching\"} 0\n"))
        #expect(text.contains("node_lifecycle_actions_received_total{transition=\"spot_interruption\"} 1\n"))
        #expect(text.contains("node_lifecycle_actions_completed_total{result=\"unknown_node_left\"} 1\n"))
        #expect(text.contains("node_lifecycle_heartbeats_total{outcome=\"failed\"} 1\n"))
        #expect(text.contains("node_lifecycle_actions_waiting 3\n") && text.contains("node_lifecycle_drains_in_progress 1\n"))
        #expect(text.contains("node_lifecycle_drain_duration_seconds_bucket{le=\"5.0\"} 0\n"))
        #expect(text.contains("node_lifecycle_drain_duration_seconds_bucket{le=\"10.0\"} 1\n"))
        #expect(text.contains("node_lifecycle_drain_duration_seconds_bucket{le=\"3600.0\"} 1\n"))
        #expect(text.contains("node_lifecycle_drain_duration_seconds_bucket{le=\"+Inf\"} 2\n"))
        #expect(text.contains("node_lifecycle_drain_duration_seconds_count 2\n"))
    }
}

func ec2EventBody(_ detailType: String, instance: String, extra: String = "") -> String {
    #"{"version":"0","id":"e-\#(instance)","detail-type":"\#(detailType)","source":"aws.ec2","time":"2026-11-28T10:00:00Z","detail":{"instance-id":"\#(instance)"\#(extra)}}"#
}

@Suite("EC2 events: spot interruption, rebalance, state change", .timeLimit(.minutes(1)))
struct EC2EventServiceTests {
    @Test func spotInterruption_startsAtOnceBeyondConcurrency_noLifecycleCalls() throws {
        let base = FakeCluster()
        base.addNode("n1", instance: "i-1")
        base.addNode("n2", instance: "i-2")
        base.addPod("shop", "web-2", node: "n2", owner: "ReplicaSet")
        let cluster = BlockingCluster(base)
        let lifecycle = CountingLifecycle()
        let queue = FakeQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        queue.put(ec2EventBody("EC2 Spot Instance Interruption Warning", instance: "i-2", extra: #","instance-action":"terminate""#), id: "spot")
        let service = drainService(cluster, lifecycle, queue)
        #expect(try service.pollOnce() == 2)
        // Both drains run although --concurrency is 1.
        #expect(cluster.started.wait(for: 2) == 2)
        #expect(service.running == 2)
        cluster.open.signal()
        #expect(lifecycle.completed.wait(for: 1) == 1)
        while service.running > 0 || service.finished.count < 2 { _ = try service.pollOnce() }
        #expect(Set(service.finished) == [.drained(node: "n1"), .drained(node: "n2")])
        #expect(base.podKeys.isEmpty)
        // Auto Scaling heard only about the hook's action.
        #expect(lifecycle.inner.all == ["heartbeat:i-1", "complete:i-1:CONTINUE"])
        #expect(Set(queue.deletedIDs) == ["m1", "spot"])
    }

    @Test func rebalanceRecommendation_cordonsOnly_andStateChangeRunningIsIgnored() throws {
        let cluster = FakeCluster()
        cluster.addNodesWithAPod(1)
        let lifecycle = FakeLifecycle()
        let queue = FakeQueue()
        queue.put(ec2EventBody("EC2 Instance Rebalance Recommendation", instance: "i-1"), id: "rebalance")
        queue.put(ec2EventBody("EC2 Instance State-change Notification", instance: "i-1", extra: #","state":"running""#), id: "running")
        let service = drainService(cluster, lifecycle, queue, taint: "node-lifecycle/draining")
        #expect(try service.pollOnce(inline: true) == 2)
        #expect(service.finished == [.cordoned(node: "n1")])
        let node = try #require(cluster.node("n1"))
        #expect(node[path: "spec", "unschedulable"] == .bool(true) && NodeEdits.hasTaint(node, key: "node-lifecycle/draining"))
        #expect(cluster.evictions.isEmpty && cluster.podKeys == ["shop/web-1"])
        #expect(lifecycle.all.isEmpty)
        #expect(Set(queue.deletedIDs) == ["rebalance", "running"])
        #expect(cluster.events.map(\.reason) == ["RebalanceRecommendation"])
    }
}

/// A scale-in of `nodes` instances: node `n<i>` with one ReplicaSet pod, a
/// lifecycle message for `i-<i>` (token `t<i>`) on the queue, the action
/// started; then the drain service over them (heartbeat a minute).
func scaleIn(_ nodes: Int, _ cluster: FakeCluster, _ queue: HandleQueue, _ lifecycle: ClockedLifecycle,
             clock: VirtualMonotonicClock, concurrency: Int) -> DrainService {
    cluster.addNodesWithAPod(nodes)
    for i in 1...nodes {
        queue.put(lifecycleBody(instance: "i-\(i)", token: "t\(i)"), id: "m\(i)")
        lifecycle.start("t\(i)")
    }
    return drainService(cluster, lifecycle, queue, settings: DrainSettings(heartbeatInterval: .seconds(60)), clock: clock, concurrency: concurrency)
}
