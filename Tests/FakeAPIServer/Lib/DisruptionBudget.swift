import KLCore

/// A policy/v1 PodDisruptionBudget and the arithmetic of the real disruption
/// controller and eviction handler (pkg/controller/disruption,
/// pkg/registry/core/pod/storage/eviction.go).
struct DisruptionBudget {
    var object: JSON
    init(_ object: JSON) { self.object = object }

    /// Annotation on a PodDisruptionBudget that fixes `expectedPods`.
    static let expectedPodsAnnotation = "fake.kube-leader.dev/expected-pods"

    var name: String { object[path: "metadata", "name"]?.stringValue ?? "" }

    func selects(_ pod: JSON) -> Bool {
        LabelSelector.matches(selector: object[path: "spec", "selector"], labels: pod[path: "metadata", "labels"]?.objectValue)
    }

    /// Ready=True and not terminating.
    static func isHealthy(_ pod: JSON) -> Bool {
        if pod[path: "metadata", "deletionTimestamp"].map({ !$0.isNull }) == true { return false }
        return (pod[path: "status", "conditions"]?.arrayValue ?? []).contains {
            $0["type"]?.stringValue == "Ready" && $0["status"]?.stringValue == "True"
        }
    }

    /// An int-or-percent value scaled to `total`, rounding up as the controller does.
    static func scaled(_ v: JSON?, total: Int) -> Int? {
        guard let v else { return nil }
        if let n = v.intValue { return n }
        if let s = v.stringValue, s.hasSuffix("%"), let p = Int(s.dropLast()) { return (p * total + 99) / 100 }
        if let s = v.stringValue, let n = Int(s) { return n }
        return nil
    }

    func counts(pods: [JSON]) -> (expected: Int, desired: Int, healthy: Int) {
        let selected = pods.filter(selects)
        // The real controller takes the expected count from the owning
        // controller's scale; the fake counts the matching pods unless the
        // budget pins it with the annotation below (so evicted pods stay
        // "expected", as with a Deployment that will replace them).
        let pinned = object[path: "metadata", "annotations", Self.expectedPodsAnnotation]?.stringValue.flatMap { Int($0) }
        let expected = pinned ?? selected.count
        let healthy = selected.filter(Self.isHealthy).count
        var desired = 0
        if let minAvailable = Self.scaled(object[path: "spec", "minAvailable"], total: expected) {
            desired = minAvailable
        } else if let maxUnavailable = Self.scaled(object[path: "spec", "maxUnavailable"], total: expected) {
            desired = max(0, expected - maxUnavailable)
        }
        return (expected, desired, healthy)
    }

    func status(pods: [JSON]) -> JSON {
        let c = counts(pods: pods)
        var status = object["status"] ?? .object(JSONObject())
        status["observedGeneration"] = object[path: "metadata", "generation"] ?? JSON(1)
        status["disruptionsAllowed"] = JSON(max(0, c.healthy - c.desired))
        status["currentHealthy"] = JSON(c.healthy)
        status["desiredHealthy"] = JSON(c.desired)
        status["expectedPods"] = JSON(c.expected)
        return status
    }

    /// nil when the pod may be evicted; otherwise the error answer.
    static func evictionDecision(pod: JSON, budgets: [DisruptionBudget], pods: [JSON]) -> APIResult? {
        if budgets.isEmpty { return nil }
        if budgets.count > 1 {
            return .error(Status.failure(code: 500, reason: "InternalError",
                                         message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
                                         details: ["causes": [["message": "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."]]]))
        }
        // Pods that are not running never count against a budget.
        let phase = pod[path: "status", "phase"]?.stringValue ?? ""
        if phase == "Succeeded" || phase == "Failed" || phase == "Pending" { return nil }
        let budget = budgets[0]
        let c = budget.counts(pods: pods)
        // An unhealthy pod may go when the budget is otherwise met (IfHealthyBudget).
        if !isHealthy(pod) && c.healthy >= c.desired { return nil }
        if c.healthy - c.desired > 0 { return nil }
        let cause = "The disruption budget \(budget.name) needs \(c.desired) healthy pods and has \(c.healthy) currently"
        let status = Status.failure(code: 429, reason: "TooManyRequests",
                                    message: "Cannot evict pod as it would violate the pod's disruption budget.",
                                    details: ["causes": [["reason": "DisruptionBudget", "message": .string(cause)]]])
        return .error(status)
    }
}
