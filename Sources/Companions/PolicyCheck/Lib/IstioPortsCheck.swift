import KLCore

/// `policy-check istio-ports`: the Istio port-name rule over JSON as
/// `kubectl get … -o json` prints it, without OPA.
///
/// Input is one object, a `List` (or any `…List` with `items`), or an
/// `AdmissionReview`. Namespace objects in the input supply the opt-out
/// label, as the Constraint's `namespaceSelector` does in the cluster.
/// Objects of other kinds are ignored. Shapes Kubernetes never prints
/// (a `spec.ports` that is not an array, a port name that is a number) are
/// bad input, reported with their place, never guessed at.
public enum IstioPortsCheck {
    /// The namespace label that opts a namespace out, with value `"true"`.
    public static let optOutLabel = "kube-leader.io/skip-istio-port-names"

    /// One offending port.
    public struct Violation: Sendable, Equatable {
        public var kind: String
        public var namespace: String
        public var name: String
        public var port: String
        public var field: IstioPortRule.Field
        public var message: String
    }

    public struct Result: Sendable, Equatable {
        public var violations: [Violation] = []
        /// Services checked (not counting opted-out ones).
        public var services = 0
        /// Services skipped because their namespace opted out.
        public var skipped = 0
    }

    /// Checks a document that has been read already; `source` names it in messages.
    public static func check(text: [UInt8], source: String, rule: IstioPortRule) throws(PolicyCheckError) -> Result {
        if text.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
            throw PolicyCheckError(.badInput, "\(source) is empty: pipe in `kubectl get services -o json` or give a file with a Service, a List or an AdmissionReview.")
        }
        let json: JSON
        do { json = try JSON.parse(bytes: text) } catch {
            throw PolicyCheckError(.badInput, "\(source) is not JSON (\(error)); give the output of `kubectl get … -o json`.")
        }
        return try check(json, source: source, rule: rule)
    }

    /// Checks parsed JSON.
    public static func check(_ json: JSON, source: String, rule: IstioPortRule) throws(PolicyCheckError) -> Result {
        let objects = try topLevelObjects(json, source: source)
        // 1. Namespaces that opted out, from Namespace objects in the input.
        var optedOut: Set<String> = []
        for (object, _, _) in objects where object["kind"]?.stringValue == "Namespace" {
            if object.value(at: "metadata", "labels", optOutLabel)?.stringValue == "true",
               let name = object.value(at: "metadata", "name")?.stringValue {
                optedOut.insert(name)
            }
        }
        // 2. Every Service outside those namespaces, port by port.
        var result = Result()
        for (object, place, requestNamespace) in objects where object["kind"]?.stringValue == "Service" {
            let namespace = try namespaceOf(object, requestNamespace: requestNamespace, place: place, source: source)
            if optedOut.contains(namespace) { result.skipped += 1; continue }
            result.services += 1
            let name = try string(object.value(at: "metadata", "name"), "\(place).metadata.name", source) ?? ""
            guard let portsJSON = object.value(at: "spec", "ports"), !portsJSON.isNull else { continue }
            guard let ports = portsJSON.arrayValue else {
                throw shape(source, "\(place).spec.ports", "must be an array of ports")
            }
            for (index, portJSON) in ports.enumerated() {
                let port = try servicePort(portJSON, place: "\(place).spec.ports[\(index)]", source: source)
                guard let field = rule.offendingField(of: port) else { continue }
                let id = port.id(index: index)
                result.violations.append(Violation(
                    kind: "Service", namespace: namespace, name: name, port: id, field: field,
                    message: rule.message(kind: "Service", namespace: namespace, name: name, portID: id, field: field)))
            }
        }
        return result
    }

    /// The objects to look at, each with its place for messages (`items[3]`)
    /// and, for an AdmissionReview, the request's namespace.
    static func topLevelObjects(_ json: JSON, source: String) throws(PolicyCheckError) -> [(JSONObject, String, String?)] {
        guard let top = json.objectValue else {
            throw shape(source, "the top level", "must be a Kubernetes object, a List or an AdmissionReview, not \(typeName(json))")
        }
        guard let kind = top["kind"]?.stringValue, !kind.isEmpty else {
            throw shape(source, "the top level", "has no \"kind\"; give objects as `kubectl get … -o json` prints them")
        }
        if kind == "AdmissionReview" {
            guard let request = top["request"]?.objectValue else {
                throw shape(source, "request", "is missing: an AdmissionReview to check must carry the request")
            }
            guard let objectJSON = request["object"], !objectJSON.isNull else { return [] }  // DELETE: nothing to check
            guard let object = objectJSON.objectValue else { throw shape(source, "request.object", "must be an object") }
            return [(object, "request.object", request["namespace"]?.stringValue)]
        }
        // `kubectl get` prints kind List; the API itself ServiceList, PodList, ….
        if kind == "List" || (kind.hasSuffix("List") && top["items"] != nil) {
            guard let items = top["items"]?.arrayValue else { throw shape(source, "items", "must be an array") }
            var out: [(JSONObject, String, String?)] = []
            for (i, item) in items.enumerated() {
                guard let object = item.objectValue else { throw shape(source, "items[\(i)]", "must be an object, not \(typeName(item))") }
                guard let k = object["kind"]?.stringValue, !k.isEmpty else {
                    throw shape(source, "items[\(i)]", "has no \"kind\"; give objects as `kubectl get … -o json` prints them")
                }
                out.append((object, "items[\(i)]", nil))
            }
            return out
        }
        return [(top, "the object", nil)]
    }

    static func namespaceOf(_ object: JSONObject, requestNamespace: String?, place: String, source: String) throws(PolicyCheckError) -> String {
        if let ns = try string(object.value(at: "metadata", "namespace"), "\(place).metadata.namespace", source) { return ns }
        return requestNamespace ?? "default"
    }

    static func servicePort(_ json: JSON, place: String, source: String) throws(PolicyCheckError) -> ServicePort {
        guard let object = json.objectValue else { throw shape(source, place, "must be an object, not \(typeName(json))") }
        var port = ServicePort()
        port.name = try string(object["name"], "\(place).name", source)
        port.protocolName = try string(object["protocol"], "\(place).protocol", source)
        port.appProtocol = try string(object["appProtocol"], "\(place).appProtocol", source)
        switch object["port"] {
        case nil, .null?: break
        case .number(let text)?: port.number = JSON.number(text).intValue.map(String.init) ?? text
        case let other?: throw shape(source, "\(place).port", "must be a number, not \(typeName(other))")
        }
        return port
    }

    /// A string field: nil when absent or null, an error for another type.
    static func string(_ value: JSON?, _ place: String, _ source: String) throws(PolicyCheckError) -> String? {
        switch value {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let other?: throw shape(source, place, "must be a string, not \(typeName(other))")
        }
    }

    static func shape(_ source: String, _ place: String, _ problem: String) -> PolicyCheckError {
        PolicyCheckError(.badInput, "\(source): \(place) \(problem).")
    }

    static func typeName(_ json: JSON) -> String {
        switch json {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

extension JSONObject {
    /// Nested member by path (JSON has this; JSONObject does not).
    func value(at keys: String...) -> JSON? {
        guard let first = keys.first, var value = self[first] else { return nil }
        for key in keys.dropFirst() {
            guard let next = value[key] else { return nil }
            value = next
        }
        return value
    }
}
