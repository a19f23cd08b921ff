import KLCore
import KLSystem
import KLTestSupport
import Synchronization
import Testing
@testable import NodeLifecycleKit

/// Nodes and pods in memory. Evictions go through `evictionPolicy`.
final class FakeCluster: ClusterAPI {
    struct State {
        var nodes: [String: JSON] = [:]
        var pods: [String: JSON] = [:]  // ns/name
        var evictions: [String] = []
        var graces: [String: Int] = [:]
        var events: [NodeEvent] = []
        var updates = 0
    }
    let state = Mutex(State())
    let evictionPolicy: @Sendable (String, Int) -> EvictionResult  // (pod key, attempt) -> result

    init(evictionPolicy: @escaping @Sendable (String, Int) -> EvictionResult = { _, _ in .accepted }) {
        self.evictionPolicy = evictionPolicy
    }

    func addNode(_ name: String, instance: String) {
        state.withLock {
            $0.nodes[name] = ["metadata": ["name": .string(name), "resourceVersion": "1"],
                              "spec": ["providerID": .string("aws:///eu-west-1a/\(instance)")]]
        }
    }

    func addPod(_ ns: String, _ name: String, node: String, owner: String? = nil, mirror: Bool = false) {
        var pod: JSON = ["metadata": ["name": .string(name), "namespace": .string(ns), "uid": .string("uid-\(name)")],
                         "spec": ["nodeName": .string(node)], "status": ["phase": "Running"]]
        if let owner { pod[path: "metadata", "ownerReferences"] = [["kind": .string(owner), "name": "x", "controller": true]] }
        if mirror { pod[path: "metadata", "annotations"] = ["kubernetes.io/config.mirror": "abc"] }
        state.withLock { $0.pods["\(ns)/\(name)"] = pod }
    }

    /// Nodes `n1`…`n<count>` on instances `i-1`…, each running one
    /// ReplicaSet pod `shop/web-<i>`: the usual nodes to drain.
    func addNodesWithAPod(_ count: Int) {
        for i in 1...count {
            addNode("n\(i)", instance: "i-\(i)")
            addPod("shop", "web-\(i)", node: "n\(i)", owner: "ReplicaSet")
        }
    }

    func node(_ name: String) -> JSON? { state.withLock { $0.nodes[name] } }
    var podKeys: [String] { state.withLock { $0.pods.keys.sorted() } }
    var evictions: [String] { state.withLock { $0.evictions } }

    func listNodes() throws(NodeLifecycleError) -> [JSON] { state.withLock { Array($0.nodes.values) } }
    func getNode(_ name: String) throws(NodeLifecycleError) -> JSON? { node(name) }
    func updateNode(_ node: JSON) throws(NodeLifecycleError) -> Bool {
        state.withLock {
            guard let name = node[path: "metadata", "name"]?.stringValue else {
                Issue.record("updateNode without a name: \(node)")
                return false
            }
            $0.nodes[name] = node
            $0.updates += 1
            return true
        }
    }
    func podsOnNode(_ name: String, labelSelector: String?) throws(NodeLifecycleError) -> [JSON] {
        // Equality selectors only (`a=b,c=d`): the real selector syntax is
        // tested end to end against kube-apiserver-fake.
        let wanted = (labelSelector ?? "").split(separator: ",").map { $0.split(separator: "=", maxSplits: 1).map(String.init) }
        return state.withLock { s in
            s.pods.keys.sorted().compactMap { s.pods[$0] }.filter { pod in
                pod[path: "spec", "nodeName"]?.stringValue == name
                    && wanted.allSatisfy { $0.count == 2 && pod[path: "metadata", "labels", $0[0]]?.stringValue == $0[1] }
            }
        }
    }
    func recordEvent(_ event: NodeEvent) throws(NodeLifecycleError) { state.withLock { $0.events.append(event) } }
    var events: [NodeEvent] { state.withLock { $0.events } }
    func evict(namespace: String, name: String, gracePeriodSeconds: Int?) -> EvictionResult {
        let key = "\(namespace)/\(name)"
        if let gracePeriodSeconds { state.withLock { $0.graces[key] = gracePeriodSeconds } }
        let attempt = state.withLock { s in s.evictions.append(key); return s.evictions.filter { $0 == key }.count }
        guard state.withLock({ $0.pods[key] != nil }) else { return .notFound }
        let result = evictionPolicy(key, attempt)
        if result == .accepted { _ = state.withLock { $0.pods.removeValue(forKey: key) } }
        return result
    }
}

/// Auto Scaling as it behaves: an action completes once; afterwards
/// heartbeats and completions fail with "No active Lifecycle Action".
final class FakeLifecycle: LifecycleAPI {
    let calls = Mutex<[String]>([])
    let done = Mutex<Set<String>>([])
    static let noActive = NodeLifecycleError(.aws, "No active Lifecycle Action found with instance ID i-1", awsCode: "ValidationError", httpStatus: 400)

    func complete(_ action: LifecycleAction, result: LifecycleActionResult) throws(NodeLifecycleError) {
        let first = done.withLock { $0.insert(action.lifecycleActionToken).inserted }
        guard first else { throw Self.noActive }
        calls.withLock { $0.append("complete:\(action.instanceID):\(result.rawValue)") }
    }
    func heartbeat(_ action: LifecycleAction) throws(NodeLifecycleError) {
        if done.withLock({ $0.contains(action.lifecycleActionToken) }) { throw Self.noActive }
        calls.withLock { $0.append("heartbeat:\(action.instanceID)") }
    }
    var all: [String] { calls.withLock { $0 } }
}

/// A queue in memory: received messages stay until deleted but, as in SQS,
/// are not received again (their visibility timeout never runs out here).
final class FakeQueue: QueueAPI {
    let messages = Mutex<[SQSMessage]>([])
    let received = Mutex<Set<String>>([])
    let deleted = Mutex<[String]>([])
    let extended = Mutex<[String]>([])
    func put(_ body: String, id: String) {
        messages.withLock { $0.append(SQSMessage(messageID: id, receiptHandle: "rh-\(id)", body: body)) }
    }
    func receive(max: Int, waitSeconds: Int, visibilitySeconds: Int) throws(NodeLifecycleError) -> [SQSMessage] {
        let all = messages.withLock { $0 }
        return received.withLock { seen in
            let batch = Array(all.filter { !seen.contains($0.messageID) }.prefix(max))
            for m in batch { seen.insert(m.messageID) }
            return batch
        }
    }
    func delete(_ message: SQSMessage) throws(NodeLifecycleError) {
        messages.withLock { $0.removeAll { $0.receiptHandle == message.receiptHandle } }
        deleted.withLock { $0.append(message.messageID) }
    }
    func extend(_ message: SQSMessage, seconds: Int) throws(NodeLifecycleError) {
        extended.withLock { $0.append("\(message.messageID):\(seconds)") }
    }
    var remaining: [String] { messages.withLock { $0.map(\.messageID) } }
    var deletedIDs: [String] { deleted.withLock { $0 } }
}

func lifecycleBody(instance: String, token: String, transition: String = "autoscaling:EC2_INSTANCE_TERMINATING") -> String {
    JSON.object(JSONObject([
        ("LifecycleHookName", "drain"), ("AutoScalingGroupName", "nodes"), ("LifecycleActionToken", .string(token)),
        ("EC2InstanceId", .string(instance)), ("LifecycleTransition", .string(transition)), ("Service", "AWS Auto Scaling"),
    ])).serialized()
}

/// A drain service that does not wait for messages, over a drainer with
/// the taint `taint`; both log to `sink`.
func drainService(_ cluster: any ClusterAPI, _ lifecycle: any LifecycleAPI, _ queue: any QueueAPI,
                  settings: DrainSettings = DrainSettings(), taint: String = "d",
                  clock: VirtualMonotonicClock = VirtualMonotonicClock(), concurrency: Int = 1,
                  sink: MemorySink = MemorySink()) -> DrainService {
    let drainer = NodeDrainer(cluster: cluster, lifecycle: lifecycle, queue: queue, settings: settings,
                              taint: Taint(key: taint), clock: clock, logger: Logger(sink: sink))
    return DrainService(queue: queue, drainer: drainer, concurrency: concurrency, waitSeconds: 0, logger: Logger(sink: sink))
}

/// The virtual clock of a drain that something interrupts: once `after` has
/// passed on it, `interrupt` runs (a message arrives or reappears) and the
/// service polls its queue again, as its receive loop would; `everyStep`
/// runs with the service at every step. `drive(_:)` hands it the service.
final class InterruptingClock: Sendable {
    private final class Slot: Sendable {
        let service = Mutex<DrainService?>(nil)
        let interrupted = Mutex(false)
    }
    private let slot: Slot
    let clock: VirtualMonotonicClock

    init(after: Duration, _ interrupt: @escaping @Sendable () -> Void,
         everyStep: @escaping @Sendable (DrainService) -> Void = { _ in }) {
        let slot = Slot(), t0 = MonotonicClock.now
        self.slot = slot
        clock = VirtualMonotonicClock(start: t0) { now in
            guard let service = slot.service.withLock({ $0 }) else { return }
            if now - t0 >= after, !slot.interrupted.withLock({ $0 }) {
                slot.interrupted.withLock { $0 = true }
                interrupt()
                _ = try? service.pollOnce(inline: true)
            }
            everyStep(service)
        }
    }

    func drive(_ service: DrainService) { slot.service.withLock { $0 = service } }
    var interrupted: Bool { slot.interrupted.withLock { $0 } }
}

/// A counting gate threads block on until it has been signalled (the
/// webhook sender's `WakeSignal`: the test waits for an event, it never
/// sleeps for time).
typealias Gate = WakeSignal

/// A cluster whose node reads (the drain's cordon) block until `open` has
/// been signalled, and that reports each drain start on `started`.
final class BlockingCluster: ClusterAPI {
    let inner: FakeCluster
    let started = Gate()
    let open = Gate()
    init(_ inner: FakeCluster) { self.inner = inner }
    func listNodes() throws(NodeLifecycleError) -> [JSON] { try inner.listNodes() }
    func getNode(_ name: String) throws(NodeLifecycleError) -> JSON? {
        started.signal()
        open.wait(for: 1)
        return try inner.getNode(name)
    }
    func updateNode(_ node: JSON) throws(NodeLifecycleError) -> Bool { try inner.updateNode(node) }
    func podsOnNode(_ name: String, labelSelector: String?) throws(NodeLifecycleError) -> [JSON] {
        try inner.podsOnNode(name, labelSelector: labelSelector)
    }
    func evict(namespace: String, name: String, gracePeriodSeconds: Int?) -> EvictionResult {
        inner.evict(namespace: namespace, name: name, gracePeriodSeconds: gracePeriodSeconds)
    }
    func recordEvent(_ event: NodeEvent) throws(NodeLifecycleError) { try inner.recordEvent(event) }
}

/// Counts completions on a gate.
final class CountingLifecycle: LifecycleAPI {
    let inner = FakeLifecycle()
    let completed = Gate()
    func complete(_ action: LifecycleAction, result: LifecycleActionResult) throws(NodeLifecycleError) {
        defer { completed.signal() }
        try inner.complete(action, result: result)
    }
    func heartbeat(_ action: LifecycleAction) throws(NodeLifecycleError) { try inner.heartbeat(action) }
}
