import KLCore

/// `policy-check pdb`: the PDB-required policy over JSON as
/// `kubectl get namespaces,deployments,statefulsets,poddisruptionbudgets -A -o json`
/// prints it, without OPA.
///
/// Input is a `List` (or any `…List` with `items`), one object, an
/// `AdmissionReview`, or a Gatekeeper review: the Rego input
/// `{"review": {"object": …, "namespace": …}}`, optionally with the
/// replicated data beside it as `"inventory"` (Gatekeeper's `data.inventory`
/// shape: `namespace.NS["policy/v1"].PodDisruptionBudget.NAME` and
/// `cluster.v1.Namespace.NAME`). Namespace objects supply the opt-out label;
/// without them in the input no namespace is opted out. Shapes the API server
/// never prints (a string `replicas`, `minAvailable: "50"`, an unknown
/// selector operator) are bad input, reported with their place.
public enum PDBCheck {
    /// The namespace label and workload annotation that opt out, with value `"true"`.
    public static let optOut = "kube-leader.io/skip-pdb-required"

    public struct Violation: Sendable, Equatable {
        public var kind: String
        public var namespace: String
        public var name: String
        public var reason: String
        /// `KIND NAMESPACE NAME: REASON`, the Rego policy's message.
        public var message: String { "\(kind) \(namespace) \(name): \(reason)" }
    }

    public struct Result: Sendable, Equatable {
        public var violations: [Violation] = []
        /// Deployments and StatefulSets checked (not counting opted-out ones).
        public var workloads = 0
        /// Workloads skipped by the namespace label or their annotation.
        public var skipped = 0
        /// PodDisruptionBudgets read.
        public var budgets = 0
    }

    static let workloadKinds: Set<String> = ["Deployment", "StatefulSet"]

    /// Checks a document that has been read already; `source` names it in messages.
    public static func check(text: [UInt8], source: String) throws(PolicyCheckError) -> Result {
        if text.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw PolicyCheckError(.badInput, "\(source) is empty: pipe in `kubectl get namespaces,deployments,statefulsets,poddisruptionbudgets -A -o json` or give a file with such a List, one object, an AdmissionReview or a Gatekeeper review.")
        }
        let json: JSON
        do { json = try JSON.parse(bytes: text) } catch {
            throw PolicyCheckError(.badInput, "\(source) is not JSON (\(error)); give the output of `kubectl get … -o json`.")
        }
        return try check(json, source: source)
    }

    /// Checks parsed JSON.
    public static func check(_ json: JSON, source: String) throws(PolicyCheckError) -> Result {
        let objects = try inputObjects(json, source: source)
        // 1. Namespaces that opted out, and every budget.
        var optedOutNamespaces: Set<String> = []
        var budgets: [PDBRule.Budget] = []
        for (object, place, requestNamespace) in objects {
            switch object["kind"]?.stringValue {
            case "Namespace":
                if try label(object, optOut, place, source) == "true",
                   let name = try IstioPortsCheck.string(object.value(at: "metadata", "name"), "\(place).metadata.name", source) {
                    optedOutNamespaces.insert(name)
                }
            case "PodDisruptionBudget":
                budgets.append(try budget(object, place: place, requestNamespace: requestNamespace, source: source))
            default: break
            }
        }
        // 2. Every workload, against the budgets of its namespace.
        var result = Result()
        result.budgets = budgets.count
        for (object, place, requestNamespace) in objects {
            guard let kind = object["kind"]?.stringValue, workloadKinds.contains(kind) else { continue }
            let workload = try workload(object, kind: kind, place: place, requestNamespace: requestNamespace, source: source)
            if workload.optedOut || optedOutNamespaces.contains(workload.namespace) { result.skipped += 1; continue }
            result.workloads += 1
            for reason in PDBRule.reasons(for: workload, budgets: budgets) {
                result.violations.append(Violation(kind: kind, namespace: workload.namespace, name: workload.name, reason: reason))
            }
        }
        return result
    }

    // MARK: input shapes

    /// The objects to look at, each with its place for messages and, for a
    /// review, the request's namespace.
    static func inputObjects(_ json: JSON, source: String) throws(PolicyCheckError) -> [(JSONObject, String, String?)] {
        guard let top = json.objectValue else {
            throw IstioPortsCheck.shape(source, "the top level", "must be a Kubernetes object, a List, an AdmissionReview or a Gatekeeper review, not \(IstioPortsCheck.typeName(json))")
        }
        if top["kind"] == nil, let review = top["review"] {
            return try gatekeeperReview(review, inventory: top["inventory"], source: source)
        }
        return try IstioPortsCheck.topLevelObjects(json, source: source)
    }

    /// Gatekeeper's Rego input `{"review": …}` plus an optional `inventory`.
    static func gatekeeperReview(_ review: JSON, inventory: JSON?, source: String) throws(PolicyCheckError) -> [(JSONObject, String, String?)] {
        guard let request = review.objectValue else { throw IstioPortsCheck.shape(source, "review", "must be an object") }
        var out: [(JSONObject, String, String?)] = []
        let requestNamespace = try IstioPortsCheck.string(request["namespace"], "review.namespace", source)
        switch request["object"] {
        case nil, .null?: break  // DELETE: nothing to check
        case .object(let object)?: out.append((object, "review.object", requestNamespace))
        case let other?: throw IstioPortsCheck.shape(source, "review.object", "must be an object, not \(IstioPortsCheck.typeName(other))")
        }
        guard let inventory, !inventory.isNull else { return out }
        guard inventory.objectValue != nil else { throw IstioPortsCheck.shape(source, "inventory", "must be an object shaped as Gatekeeper's data.inventory") }
        if let namespaces = inventory[path: "namespace"] {
            guard let byNamespace = namespaces.objectValue else { throw IstioPortsCheck.shape(source, "inventory.namespace", "must be an object") }
            for (ns, groups) in byNamespace {
                guard let budgets = groups[path: "policy/v1", "PodDisruptionBudget"], !budgets.isNull else { continue }
                let place = "inventory.namespace.\(ns)[\"policy/v1\"].PodDisruptionBudget"
                guard let byName = budgets.objectValue else { throw IstioPortsCheck.shape(source, place, "must be an object of budgets by name") }
                for (name, budget) in byName {
                    guard var object = budget.objectValue else { throw IstioPortsCheck.shape(source, "\(place).\(name)", "must be an object") }
                    object["kind"] = "PodDisruptionBudget"
                    if object.value(at: "metadata", "name") == nil {  // the key is the name
                        var metadata = object["metadata"]?.objectValue ?? JSONObject()
                        metadata["name"] = .string(name)
                        object["metadata"] = .object(metadata)
                    }
                    out.append((object, "\(place).\(name)", ns))
                }
            }
        }
        if let namespaces = inventory[path: "cluster", "v1", "Namespace"]?.objectValue {
            for (name, namespace) in namespaces {
                guard var object = namespace.objectValue else { throw IstioPortsCheck.shape(source, "inventory.cluster.v1.Namespace.\(name)", "must be an object") }
                object["kind"] = "Namespace"
                out.append((object, "inventory.cluster.v1.Namespace.\(name)", nil))
            }
        }
        return out
    }

    static func workload(_ object: JSONObject, kind: String, place: String, requestNamespace: String?, source: String) throws(PolicyCheckError) -> PDBRule.Workload {
        let namespace = try IstioPortsCheck.namespaceOf(object, requestNamespace: requestNamespace, place: place, source: source)
        let name = try IstioPortsCheck.string(object.value(at: "metadata", "name"), "\(place).metadata.name", source) ?? ""
        let optedOut = try IstioPortsCheck.string(object.value(at: "metadata", "annotations", optOut), "\(place).metadata.annotations[\"\(optOut)\"]", source) == "true"
        var replicas = 1
        switch object.value(at: "spec", "replicas") {
        case nil, .null?: break
        case let value?:
            guard let n = value.intValue, n >= 0, n <= Int(Int32.max) else {
                throw IstioPortsCheck.shape(source, "\(place).spec.replicas", "must be a whole number from 0 to 2147483647, not \(value.serialized())")
            }
            replicas = n
        }
        let labels = try stringMap(object.value(at: "spec", "template", "metadata", "labels"), "\(place).spec.template.metadata.labels", source)
        return PDBRule.Workload(kind: kind, namespace: namespace, name: name, replicas: replicas, podLabels: labels, optedOut: optedOut)
    }

    static func budget(_ object: JSONObject, place: String, requestNamespace: String?, source: String) throws(PolicyCheckError) -> PDBRule.Budget {
        let namespace = try IstioPortsCheck.namespaceOf(object, requestNamespace: requestNamespace, place: place, source: source)
        let name = try IstioPortsCheck.string(object.value(at: "metadata", "name"), "\(place).metadata.name", source) ?? ""
        var selector: PDBRule.Selector?
        switch object.value(at: "spec", "selector") {
        case nil, .null?: break
        case .object(let s)?:
            var sel = PDBRule.Selector()
            sel.matchLabels = try stringMap(s["matchLabels"], "\(place).spec.selector.matchLabels", source)
            switch s["matchExpressions"] {
            case nil, .null?: break
            case .array(let expressions)?:
                for (i, e) in expressions.enumerated() {
                    sel.matchExpressions.append(try requirement(e, "\(place).spec.selector.matchExpressions[\(i)]", source))
                }
            case let other?:
                throw IstioPortsCheck.shape(source, "\(place).spec.selector.matchExpressions", "must be an array, not \(IstioPortsCheck.typeName(other))")
            }
            selector = sel
        case let other?:
            throw IstioPortsCheck.shape(source, "\(place).spec.selector", "must be an object, not \(IstioPortsCheck.typeName(other))")
        }
        return PDBRule.Budget(
            namespace: namespace, name: name, selector: selector,
            maxUnavailable: try amount(object.value(at: "spec", "maxUnavailable"), "\(place).spec.maxUnavailable", source),
            minAvailable: try amount(object.value(at: "spec", "minAvailable"), "\(place).spec.minAvailable", source))
    }

    static func requirement(_ json: JSON, _ place: String, _ source: String) throws(PolicyCheckError) -> PDBRule.Requirement {
        guard let e = json.objectValue else { throw IstioPortsCheck.shape(source, place, "must be an object, not \(IstioPortsCheck.typeName(json))") }
        guard let key = try IstioPortsCheck.string(e["key"], "\(place).key", source) else {
            throw IstioPortsCheck.shape(source, "\(place).key", "is missing")
        }
        let opText = try IstioPortsCheck.string(e["operator"], "\(place).operator", source) ?? ""
        guard let op = PDBRule.Requirement.Operator(rawValue: opText) else {
            throw IstioPortsCheck.shape(source, "\(place).operator", "must be In, NotIn, Exists or DoesNotExist, not '\(opText)'")
        }
        var values: [String] = []
        switch e["values"] {
        case nil, .null?: break
        case .array(let items)?:
            for (i, item) in items.enumerated() {
                guard let v = item.stringValue else { throw IstioPortsCheck.shape(source, "\(place).values[\(i)]", "must be a string, not \(IstioPortsCheck.typeName(item))") }
                values.append(v)
            }
        case let other?: throw IstioPortsCheck.shape(source, "\(place).values", "must be an array, not \(IstioPortsCheck.typeName(other))")
        }
        return PDBRule.Requirement(key: key, op: op, values: values)
    }

    /// An IntOrString as the API server accepts it: a whole number 0…2³¹−1 or
    /// a whole percentage "0%"…"100%".
    static func amount(_ json: JSON?, _ place: String, _ source: String) throws(PolicyCheckError) -> PDBRule.Amount? {
        switch json {
        case nil, .null?: return nil
        case .number?:
            guard let n = json?.intValue, n >= 0, n <= Int(Int32.max) else {
                throw IstioPortsCheck.shape(source, place, "must be a whole number from 0 to 2147483647 or a percentage like \"50%\", not \(json?.serialized() ?? "")")
            }
            return .pods(n)
        case .string(let s)?:
            let digits = s.utf8.dropLast()
            guard s.utf8.last == UInt8(ascii: "%"), !digits.isEmpty, digits.count <= 3,
                  digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
                  let p = Int(String(decoding: digits, as: UTF8.self)), p <= 100 else {
                throw IstioPortsCheck.shape(source, place, "must be a whole number or a percentage from \"0%\" to \"100%\", not \"\(s)\"")
            }
            return .percent(p)
        case let other?:
            throw IstioPortsCheck.shape(source, place, "must be a number or a percentage string, not \(IstioPortsCheck.typeName(other))")
        }
    }

    /// An object of string values (labels); empty when missing or null.
    static func stringMap(_ json: JSON?, _ place: String, _ source: String) throws(PolicyCheckError) -> [String: String] {
        switch json {
        case nil, .null?: return [:]
        case .object(let o)?:
            var out: [String: String] = [:]
            for (key, value) in o {
                guard let s = value.stringValue else { throw IstioPortsCheck.shape(source, "\(place)[\"\(key)\"]", "must be a string, not \(IstioPortsCheck.typeName(value))") }
                out[key] = s
            }
            return out
        case let other?:
            throw IstioPortsCheck.shape(source, place, "must be an object of strings, not \(IstioPortsCheck.typeName(other))")
        }
    }

    static func label(_ object: JSONObject, _ key: String, _ place: String, _ source: String) throws(PolicyCheckError) -> String? {
        try IstioPortsCheck.string(object.value(at: "metadata", "labels", key), "\(place).metadata.labels[\"\(key)\"]", source)
    }
}
