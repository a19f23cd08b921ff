import KLCore
import KLSupport

/// The Kubernetes calls the drain and `ready` need. `KubeCluster` implements
/// it over KLKube's client; tests use an in-memory one.
public protocol ClusterAPI: Sendable {
    func listNodes() throws(NodeLifecycleError) -> [JSON]
    /// nil when the node does not exist.
    func getNode(_ name: String) throws(NodeLifecycleError) -> JSON?
    /// PUT with the object's `resourceVersion`; false on a conflict.
    func updateNode(_ node: JSON) throws(NodeLifecycleError) -> Bool
    /// Pods with `spec.nodeName` = `name`, all namespaces.
    func podsOnNode(_ name: String) throws(NodeLifecycleError) -> [JSON]
    /// POST pods/eviction.
    func evict(namespace: String, name: String) -> EvictionResult
}

/// The Auto Scaling calls of a drain.
public protocol LifecycleAPI: Sendable {
    func complete(_ action: LifecycleAction, result: LifecycleActionResult) throws(NodeLifecycleError)
    func heartbeat(_ action: LifecycleAction) throws(NodeLifecycleError)
}

extension AutoScalingClient: LifecycleAPI {
    public func complete(_ action: LifecycleAction, result: LifecycleActionResult) throws(NodeLifecycleError) {
        try completeLifecycleAction(action, result: result)
    }
    public func heartbeat(_ action: LifecycleAction) throws(NodeLifecycleError) {
        try recordHeartbeat(action)
    }
}

/// The queue the lifecycle hook writes to.
public protocol QueueAPI: Sendable {
    /// Receives up to `max` messages, hidden from other receivers for
    /// `visibilitySeconds`.
    func receive(max: Int, waitSeconds: Int, visibilitySeconds: Int) throws(NodeLifecycleError) -> [SQSMessage]
    func delete(_ message: SQSMessage) throws(NodeLifecycleError)
    /// Keeps the message invisible `seconds` longer (while its drain runs).
    func extend(_ message: SQSMessage, seconds: Int) throws(NodeLifecycleError)
}

/// One SQS queue.
public struct SQSQueue: QueueAPI {
    public var client: SQSClient
    public var queueURL: String

    public init(client: SQSClient, queueURL: String) {
        self.client = client
        self.queueURL = queueURL
    }

    public func receive(max: Int, waitSeconds: Int, visibilitySeconds: Int) throws(NodeLifecycleError) -> [SQSMessage] {
        try client.receive(queueURL: queueURL, max: max, waitSeconds: waitSeconds, visibilityTimeout: visibilitySeconds)
    }
    public func delete(_ message: SQSMessage) throws(NodeLifecycleError) {
        try client.delete(queueURL: queueURL, receiptHandle: message.receiptHandle)
    }
    public func extend(_ message: SQSMessage, seconds: Int) throws(NodeLifecycleError) {
        try client.changeVisibility(queueURL: queueURL, receiptHandle: message.receiptHandle, seconds: seconds)
    }
}

/// Monotonic time and blocking waits, injectable so loops run on a fake clock.
public protocol Sleeper: Sendable {
    func now() -> MonotonicClock.Instant
    func sleep(until: MonotonicClock.Instant)
}

/// The real clock: `MonotonicClock` and `nanosleep` (blocks the calling thread;
/// the drain runs on its own threads).
public struct RealSleeper: Sleeper {
    public init() {}
    public func now() -> MonotonicClock.Instant { .now }
    public func sleep(until: MonotonicClock.Instant) {
        let d = until - .now
        guard d > .zero else { return }
        blockingSleep(d)
    }
}
