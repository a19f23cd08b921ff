import KLCore

/// A core/v1 Event about a Node (`kubectl describe node` shows it).
public struct NodeEvent: Sendable, Equatable {
    public enum Kind: String, Sendable { case normal = "Normal", warning = "Warning" }
    public var node: String
    /// The Node's `metadata.uid`, when known.
    public var nodeUID: String?
    /// `DrainStarted`, `DrainFinished`, `DrainTimedOut`.
    public var reason: String
    public var message: String
    public var kind: Kind

    public init(node: String, nodeUID: String? = nil, reason: String, message: String, kind: Kind = .normal) {
        self.node = node
        self.nodeUID = nodeUID
        self.reason = reason
        self.message = message
        self.kind = kind
    }

    /// The Event object, in namespace `default` as kubelet writes node
    /// events. `time` is RFC 3339; `instance` is this replica (host name).
    public func object(time: String, instance: String) -> JSON {
        var involved: JSONObject = ["apiVersion": "v1", "kind": "Node", "name": .string(node)]
        if let nodeUID { involved["uid"] = .string(nodeUID) }
        return .object(JSONObject([
            ("apiVersion", "v1"), ("kind", "Event"),
            ("metadata", ["generateName": .string(node + "."), "namespace": "default"]),
            ("involvedObject", .object(involved)),
            ("reason", .string(reason)), ("message", .string(message)), ("type", .string(kind.rawValue)),
            ("source", ["component": "node-lifecycle"]),
            ("reportingComponent", "node-lifecycle"), ("reportingInstance", .string(instance)),
            ("firstTimestamp", .string(time)), ("lastTimestamp", .string(time)), ("count", 1),
        ]))
    }
}
