import KLCore
import KLSystem

// The outside world of a drain as protocols: Kubernetes (`ClusterAPI`), Auto
// Scaling (`LifecycleAPI`) and the lifecycle hook's queue (`QueueAPI`, on SQS
// as `SQSQueue`). Tests implement them in memory.

/// The Kubernetes calls the drain and `ready` need. `KubeCluster` implements
/// it over KLKube's client; tests use an in-memory one.
public protocol ClusterAPI: Sendable {
    func listNodes() throws(NodeLifecycleError) -> [JSON]
    /// nil when the node does not exist.
    func getNode(_ name: String) throws(NodeLifecycleError) -> JSON?
    /// PUT with the object's `resourceVersion`; false on a conflict.
    func updateNode(_ node: JSON) throws(NodeLifecycleError) -> Bool
    /// Pods with `spec.nodeName` = `name`, all namespaces, restricted to
    /// `labelSelector` when given (kubectl drain `--pod-selector`).
    func podsOnNode(_ name: String, labelSelector: String?) throws(NodeLifecycleError) -> [JSON]
    /// POST pods/eviction, with `deleteOptions.gracePeriodSeconds` when given.
    func evict(namespace: String, name: String, gracePeriodSeconds: Int?) -> EvictionResult
    /// Records a Kubernetes Event about a node (best effort: failures are
    /// returned for the log, never fatal).
    func recordEvent(_ event: NodeEvent) throws(NodeLifecycleError)
}

extension ClusterAPI {
    public func podsOnNode(_ name: String) throws(NodeLifecycleError) -> [JSON] { try podsOnNode(name, labelSelector: nil) }
    public func evict(namespace: String, name: String) -> EvictionResult { evict(namespace: namespace, name: name, gracePeriodSeconds: nil) }
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
