/// The PDB-required rules on parsed workloads and budgets, pure: exactly the
/// verdicts and messages of `policies/pdb-required/src.rego`.
///
/// 1. A Deployment or StatefulSet with `replicas >= 2` needs a budget of its
///    namespace whose selector matches its pod template's labels.
/// 2. Every budget that selects it must allow one eviction at full scale:
///    `maxUnavailable: 0`/`"0%"` and `minAvailable: "100%"` block every drain
///    at any scale; `minAvailable` (percentages rounded up, as the disruption
///    controller does) at or above the replica count blocks at full scale.
/// 3. More than one budget selecting its pods: the eviction API refuses them.
/// 4. The workload annotation `kube-leader.io/skip-pdb-required: "true"`
///    skips it (the namespace label is applied by the caller).
public enum PDBRule {
    /// A Kubernetes IntOrString as a budget holds it: pods, or a whole percentage.
    public enum Amount: Sendable, Equatable {
        case pods(Int)
        case percent(Int)

        /// Resolved against `n` pods as the disruption controller does
        /// (`intstr.GetScaledValueFromIntOrPercent(…, roundUp: true)`).
        /// Both values are bounded (`percent` 0…100, `n` 0…2³¹−1): no overflow.
        public func scaled(to n: Int) -> Int {
            switch self {
            case .pods(let p): p
            case .percent(let p): (p * n + 99) / 100
            }
        }

        /// As the message prints it: `3`, `50%`.
        public var text: String {
            switch self {
            case .pods(let p): "\(p)"
            case .percent(let p): "\(p)%"
            }
        }
    }

    public struct Requirement: Sendable, Equatable {
        public enum Operator: String, Sendable { case `in` = "In", notIn = "NotIn", exists = "Exists", doesNotExist = "DoesNotExist" }
        public var key: String
        public var op: Operator
        public var values: [String]

        public init(key: String, op: Operator, values: [String]) {
            self.key = key
            self.op = op
            self.values = values
        }

        func matches(_ labels: [String: String]) -> Bool {
            switch op {
            case .in: labels[key].map(values.contains) ?? false
            case .notIn: !(labels[key].map(values.contains) ?? false)
            case .exists: labels[key] != nil
            case .doesNotExist: labels[key] == nil
            }
        }
    }

    /// A label selector; `nil` in a budget (missing or null) selects nothing,
    /// an empty one every pod of the namespace (policy/v1).
    public struct Selector: Sendable, Equatable {
        public var matchLabels: [String: String] = [:]
        public var matchExpressions: [Requirement] = []

        public init(matchLabels: [String: String] = [:], matchExpressions: [Requirement] = []) {
            self.matchLabels = matchLabels
            self.matchExpressions = matchExpressions
        }

        public func matches(_ labels: [String: String]) -> Bool {
            matchLabels.allSatisfy { labels[$0.key] == $0.value } && matchExpressions.allSatisfy { $0.matches(labels) }
        }
    }

    public struct Budget: Sendable, Equatable {
        public var namespace: String
        public var name: String
        public var selector: Selector?
        public var maxUnavailable: Amount?
        public var minAvailable: Amount?

        public init(namespace: String, name: String, selector: Selector?, maxUnavailable: Amount? = nil, minAvailable: Amount? = nil) {
            self.namespace = namespace
            self.name = name
            self.selector = selector
            self.maxUnavailable = maxUnavailable
            self.minAvailable = minAvailable
        }

        /// `maxUnavailable 0`: the field that decides (maxUnavailable wins, as
        /// in the disruption controller), nil when neither is set.
        var setting: String? {
            if let m = maxUnavailable { return "maxUnavailable \(m.text)" }
            return minAvailable.map { "minAvailable \($0.text)" }
        }

        /// No scale lets a drain evict anything.
        var blocksEveryDrain: Bool {
            if let m = maxUnavailable { return m.scaled(to: 1) == 0 }
            if case .percent(let p)? = minAvailable { return p >= 100 }
            return false
        }

        /// At `n >= 1` pods, all healthy, no eviction is allowed.
        func blocks(at n: Int) -> Bool {
            if let m = maxUnavailable { return m.scaled(to: n) < 1 }
            if let m = minAvailable { return m.scaled(to: n) >= n }
            return false
        }
    }

    public struct Workload: Sendable, Equatable {
        public var kind: String
        public var namespace: String
        public var name: String
        /// `spec.replicas`; unset is 1.
        public var replicas: Int
        public var podLabels: [String: String]
        /// Annotated `kube-leader.io/skip-pdb-required: "true"`.
        public var optedOut: Bool

        public init(kind: String, namespace: String, name: String, replicas: Int, podLabels: [String: String], optedOut: Bool = false) {
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.replicas = replicas
            self.podLabels = podLabels
            self.optedOut = optedOut
        }
    }

    /// The reasons `workload` violates the policy given every budget known,
    /// in a fixed order: rule 1, rule 2 per budget by name, rule 3.
    public static func reasons(for workload: Workload, budgets: [Budget]) -> [String] {
        guard workload.kind == "Deployment" || workload.kind == "StatefulSet", !workload.optedOut else { return [] }
        let n = workload.replicas
        let selecting = budgets
            .filter { $0.namespace == workload.namespace && ($0.selector?.matches(workload.podLabels) ?? false) }
            .sorted { $0.name.utf8.lexicographicallyPrecedes($1.name.utf8) }  // OPA sorts strings bytewise
        var reasons: [String] = []
        if n >= 2 && selecting.isEmpty {
            reasons.append("\(n) replicas and no PodDisruptionBudget selects its pods")
        }
        for budget in selecting {
            guard let setting = budget.setting else { continue }
            if budget.blocksEveryDrain {
                reasons.append("PodDisruptionBudget \(budget.name) blocks every drain (\(setting))")
            } else if n >= 1 && budget.blocks(at: n) {
                reasons.append("PodDisruptionBudget \(budget.name) allows no disruption at full scale (replicas \(n), \(setting))")
            }
        }
        if selecting.count > 1 {
            let names = selecting.map(\.name).joined(separator: ", ")
            reasons.append("selected by \(selecting.count) PodDisruptionBudgets (\(names)); the eviction API refuses to evict its pods")
        }
        return reasons
    }
}
