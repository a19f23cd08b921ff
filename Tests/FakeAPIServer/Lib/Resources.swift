import KLCore

/// A kind the fake serves, with the names the real API server uses.
struct ResourceType: Sendable, Hashable {
    var group: String          // "" for core
    var version: String
    var plural: String
    var singular: String
    var kind: String
    var namespaced: Bool
    var shortNames: [String] = []
    var subresources: [String] = []
    /// Discovery categories (`kubectl get all` lists the "all" category).
    var categories: [String] = []

    var apiVersion: String { group.isEmpty ? version : "\(group)/\(version)" }
    /// Storage key, e.g. "configmaps" or "leases.coordination.k8s.io".
    var qualified: String { group.isEmpty ? plural : "\(plural).\(group)" }
    /// The URL prefix, "/api/v1" or "/apis/GROUP/VERSION".
    var prefix: String { group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)" }

    static let configMaps = ResourceType(group: "", version: "v1", plural: "configmaps", singular: "configmap",
                                         kind: "ConfigMap", namespaced: true, shortNames: ["cm"])
    static let pods = ResourceType(group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod",
                                   namespaced: true, shortNames: ["po"], subresources: ["status", "eviction"],
                                   categories: ["all"])
    static let nodes = ResourceType(group: "", version: "v1", plural: "nodes", singular: "node", kind: "Node",
                                    namespaced: false, shortNames: ["no"], subresources: ["status"])
    static let namespaces = ResourceType(group: "", version: "v1", plural: "namespaces", singular: "namespace",
                                         kind: "Namespace", namespaced: false, shortNames: ["ns"], subresources: ["status"])
    static let events = ResourceType(group: "", version: "v1", plural: "events", singular: "event", kind: "Event",
                                     namespaced: true, shortNames: ["ev"])
    static let secrets = ResourceType(group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret",
                                      namespaced: true)
    static let serviceAccounts = ResourceType(group: "", version: "v1", plural: "serviceaccounts", singular: "serviceaccount",
                                              kind: "ServiceAccount", namespaced: true, shortNames: ["sa"])
    static let leases = ResourceType(group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease",
                                     kind: "Lease", namespaced: true)
    static let pdbs = ResourceType(group: "policy", version: "v1", plural: "poddisruptionbudgets",
                                   singular: "poddisruptionbudget", kind: "PodDisruptionBudget", namespaced: true,
                                   shortNames: ["pdb"], subresources: ["status"])

    /// coordination.k8s.io/v1beta1 (KEP-4355, coordinated leader election).
    static let leaseCandidates = ResourceType(group: "coordination.k8s.io", version: "v1beta1", plural: "leasecandidates",
                                              singular: "leasecandidate", kind: "LeaseCandidate", namespaced: true)

    static let all: [ResourceType] = [configMaps, pods, nodes, namespaces, events, secrets, serviceAccounts, leases, pdbs,
                                      leaseCandidates]

    static func find(prefix: String, plural: String) -> ResourceType? {
        all.first { $0.prefix == prefix && $0.plural == plural }
    }

    /// Group versions other than core, in discovery order (a group may
    /// serve several: coordination.k8s.io has v1 and v1beta1).
    static var groups: [(group: String, version: String)] {
        var seen: [(String, String)] = []
        for r in all where !r.group.isEmpty && !seen.contains(where: { $0.0 == r.group && $0.1 == r.version }) { seen.append((r.group, r.version)) }
        return seen
    }
}

/// The object with `kind` and `apiVersion` first (filled in when missing), as the real server writes it.
func typeFirst(_ o: JSON, _ r: ResourceType) -> JSON {
    var out = JSONObject([("kind", o["kind"] ?? .string(r.kind)), ("apiVersion", o["apiVersion"] ?? .string(r.apiVersion))])
    for (k, v) in o.objectValue ?? JSONObject() where k != "kind" && k != "apiVersion" { out[k] = v }
    return .object(out)
}

/// Builders for the real API server's `Status` error bodies.
enum Status {
    static func failure(code: Int, reason: String, message: String, details: JSON? = nil) -> JSON {
        var s: JSON = ["kind": "Status", "apiVersion": "v1", "metadata": .object(JSONObject()),
                       "status": "Failure", "message": .string(message), "reason": .string(reason)]
        if let details { s["details"] = details }
        s["code"] = JSON(code)
        return s
    }

    static func details(_ resource: ResourceType, name: String) -> JSON {
        var d: JSON = ["name": .string(name)]
        if !resource.group.isEmpty { d["group"] = .string(resource.group) }
        d["kind"] = .string(resource.plural)
        return d
    }

    static func notFound(_ r: ResourceType, _ name: String) -> JSON {
        failure(code: 404, reason: "NotFound", message: "\(r.qualified) \"\(name)\" not found", details: details(r, name: name))
    }

    static func alreadyExists(_ r: ResourceType, _ name: String) -> JSON {
        failure(code: 409, reason: "AlreadyExists", message: "\(r.qualified) \"\(name)\" already exists", details: details(r, name: name))
    }

    static func conflict(_ r: ResourceType, _ name: String, _ why: String = "the object has been modified; please apply your changes to the latest version and try again") -> JSON {
        failure(code: 409, reason: "Conflict", message: "Operation cannot be fulfilled on \(r.qualified) \"\(name)\": \(why)",
                details: details(r, name: name))
    }

    static func badRequest(_ message: String) -> JSON {
        failure(code: 400, reason: "BadRequest", message: message)
    }

    /// 422 Invalid: `details.kind` is the Kind; one cause per field.
    static func invalid(_ r: ResourceType, name: String, causes: [(field: String, message: String, reason: String)]) -> JSON {
        let text = causes.map { "\($0.field): \($0.message)" }
        let joined = text.count == 1 ? text[0] : "[" + text.joined(separator: ", ") + "]"
        var d: JSON = ["name": .string(name)]
        if !r.group.isEmpty { d["group"] = .string(r.group) }
        d["kind"] = .string(r.kind)
        d["causes"] = .array(causes.map { ["reason": .string($0.reason), "message": .string($0.message), "field": .string($0.field)] })
        return failure(code: 422, reason: "Invalid", message: "\(r.kind) \"\(name)\" is invalid: \(joined)", details: d)
    }

    static func methodNotAllowed() -> JSON {
        failure(code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")
    }

    static func pathNotFound() -> JSON {
        failure(code: 404, reason: "NotFound", message: "the server could not find the requested resource",
                details: ["causes": [["reason": "UnexpectedServerResponse", "message": "404 page not found"]]])
    }

    static let unauthorized = failure(code: 401, reason: "Unauthorized", message: "Unauthorized")

    static func success(code: Int = 200, details: JSON? = nil) -> JSON {
        var s: JSON = ["kind": "Status", "apiVersion": "v1", "metadata": .object(JSONObject()), "status": "Success"]
        if let details { s["details"] = details }
        if code != 200 { s["code"] = JSON(code) }
        return s
    }
}
