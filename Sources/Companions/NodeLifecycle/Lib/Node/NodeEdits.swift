import KLCore

/// A node taint (`spec.taints[]`).
public struct Taint: Sendable, Equatable {
    public var key: String
    public var value: String
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    public var effect: String

    public init(key: String, value: String = "", effect: String = "NoSchedule") {
        self.key = key
        self.value = value
        self.effect = effect
    }

    /// Parses `KEY[=VALUE][:EFFECT]` as kubelet's `--register-with-taints` writes it.
    public static func parse(_ text: String) -> Taint? {
        var rest = Substring(text)
        var effect = "NoSchedule"
        if let colon = rest.lastIndex(of: ":") {
            effect = String(rest[rest.index(after: colon)...])
            rest = rest[..<colon]
        }
        guard ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(effect) else { return nil }
        var value = ""
        if let eq = rest.firstIndex(of: "=") {
            value = String(rest[rest.index(after: eq)...])
            rest = rest[..<eq]
        }
        guard !rest.isEmpty else { return nil }
        return Taint(key: String(rest), value: value, effect: effect)
    }

    var json: JSON {
        var o = JSONObject()
        o["key"] = .string(key)
        if !value.isEmpty { o["value"] = .string(value) }
        o["effect"] = .string(effect)
        return .object(o)
    }
}

/// Pure edits of a Node object. Each returns the object to PUT back (with
/// the `resourceVersion` it was read with), or nil when nothing needs to
/// change: running them again is harmless, which makes redelivered messages
/// and restarts idempotent.
public enum NodeEdits {
    /// `spec.unschedulable: true` plus `taint` (what `kubectl cordon` does, and
    /// a taint that names why).
    public static func cordonAndTaint(_ node: JSON, taint: Taint, labels: [(String, String)] = []) -> JSON? {
        var node = node
        var changed = false
        // Labels first (`node.kubernetes.io/exclude-from-external-load-balancers`):
        // in the same update as the cordon, so load balancers stop sending
        // traffic before any pod is evicted.
        for (key, value) in labels where node[path: "metadata", "labels", key]?.stringValue != value {
            if node[path: "metadata", "labels"]?.objectValue == nil { node[path: "metadata", "labels"] = .object(JSONObject()) }
            node[path: "metadata", "labels", key] = .string(value)
            changed = true
        }
        if node[path: "spec", "unschedulable"]?.boolValue != true {
            node[path: "spec", "unschedulable"] = .bool(true)
            changed = true
        }
        var taints = node[path: "spec", "taints"]?.arrayValue ?? []
        if !taints.contains(where: { $0["key"]?.stringValue == taint.key && $0["effect"]?.stringValue == taint.effect }) {
            taints.append(taint.json)
            node[path: "spec", "taints"] = .array(taints)
            changed = true
        }
        // Not `changed ? node : nil`: JSON is ExpressibleByNilLiteral, so that
        // would return `.some(.null)`.
        if changed { return .some(node) }
        return .none
    }

    /// Adds `taint` (same key and effect: left as it is).
    public static func addTaint(_ node: JSON, taint: Taint) -> JSON? {
        var taints = node[path: "spec", "taints"]?.arrayValue ?? []
        if taints.contains(where: { $0["key"]?.stringValue == taint.key && $0["effect"]?.stringValue == taint.effect }) { return .none }
        taints.append(taint.json)
        var node = node
        node[path: "spec", "taints"] = .array(taints)
        return .some(node)
    }

    /// Removes every taint with `key` (any effect).
    public static func removeTaint(_ node: JSON, key: String) -> JSON? {
        let taints = node[path: "spec", "taints"]?.arrayValue ?? []
        let kept = taints.filter { $0["key"]?.stringValue != key }
        if kept.count == taints.count { return .none }
        var node = node
        if kept.isEmpty {
            node[path: "spec", "taints"] = Optional<JSON>.none
        } else {
            node[path: "spec", "taints"] = .array(kept)
        }
        return .some(node)
    }

    public static func hasTaint(_ node: JSON, key: String) -> Bool {
        (node[path: "spec", "taints"]?.arrayValue ?? []).contains { $0["key"]?.stringValue == key }
    }
}

/// Whether a node is healthy enough to take work.
public struct NodeHealth: Sendable, Equatable {
    public var healthy: Bool
    /// Why not, one entry per condition (`Ready is False (KubeletNotReady)`,
    /// `KernelDeadlock is not reported yet`).
    public var problems: [String]

    /// Ready must be True; each condition in `mustBeFalse` (node-problem-
    /// detector's `KernelDeadlock`, `ReadonlyFilesystem`, ...) must be
    /// reported and False. A condition not reported yet counts as not
    /// healthy: the detector may not have run.
    public static func check(_ node: JSON, mustBeFalse: [String]) -> NodeHealth {
        var byType: [String: JSON] = [:]
        for c in node[path: "status", "conditions"]?.arrayValue ?? [] {
            if let t = c["type"]?.stringValue { byType[t] = c }
        }
        var problems: [String] = []
        func describe(_ type: String, _ c: JSON) -> String {
            let status = c["status"]?.stringValue ?? "Unknown"
            let reason = c["reason"]?.stringValue.map { " (\($0))" } ?? ""
            return "\(type) is \(status)\(reason)"
        }
        if let ready = byType["Ready"] {
            if ready["status"]?.stringValue != "True" { problems.append(describe("Ready", ready)) }
        } else {
            problems.append("Ready is not reported yet")
        }
        for type in mustBeFalse {
            guard let c = byType[type] else { problems.append("\(type) is not reported yet"); continue }
            if c["status"]?.stringValue != "False" { problems.append(describe(type, c)) }
        }
        return NodeHealth(healthy: problems.isEmpty, problems: problems)
    }
}
