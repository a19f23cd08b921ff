import KLCore

/// A parsed `labelSelector` (`a=b,c!=d,e,!f,g in (x,y),h notin (z)`).
struct LabelSelector: Sendable {
    enum Requirement: Sendable {
        case equals(String, String), notEquals(String, String), exists(String), notExists(String)
        case isIn(String, [String]), notIn(String, [String])
    }
    var requirements: [Requirement] = []

    init(_ text: String) throws(SelectorError) {
        for raw in splitTopLevel(text) {
            let part = raw.trimmingWhitespace
            if part.isEmpty { continue }
            if let r = Self.setRequirement(part) { requirements.append(r); continue }
            if let range = part.firstRange(of: "!=") {
                requirements.append(.notEquals(String(part[..<range.lowerBound]).trimmingWhitespace, String(part[range.upperBound...]).trimmingWhitespace))
            } else if let range = part.firstRange(of: "==") ?? part.firstRange(of: "=") {
                requirements.append(.equals(String(part[..<range.lowerBound]).trimmingWhitespace, String(part[range.upperBound...]).trimmingWhitespace))
            } else if part.hasPrefix("!") {
                requirements.append(.notExists(String(part.dropFirst()).trimmingWhitespace))
            } else if part.contains(" ") || part.contains("(") {
                throw SelectorError(message: "unable to parse requirement: \(part)")
            } else {
                requirements.append(.exists(part))
            }
        }
    }

    private static func setRequirement(_ part: String) -> Requirement? {
        for (op, negated) in [(" notin ", true), (" in ", false)] {
            guard let r = part.firstRange(of: op), let open = part.firstIndex(of: "("), part.hasSuffix(")") else { continue }
            let key = String(part[..<r.lowerBound]).trimmingWhitespace
            let values = part[part.index(after: open)..<part.index(before: part.endIndex)]
                .split(separator: ",").map { String($0).trimmingWhitespace }
            return negated ? .notIn(key, values) : .isIn(key, values)
        }
        return nil
    }

    func matches(_ labels: JSONObject?) -> Bool {
        let value: (String) -> String? = { labels?[$0]?.stringValue }
        for r in requirements {
            switch r {
            case .equals(let k, let v): if value(k) != v { return false }
            case .notEquals(let k, let v): if value(k) == v { return false }
            case .exists(let k): if value(k) == nil { return false }
            case .notExists(let k): if value(k) != nil { return false }
            case .isIn(let k, let vs): guard let v = value(k), vs.contains(v) else { return false }
            case .notIn(let k, let vs): if let v = value(k), vs.contains(v) { return false }
            }
        }
        return true
    }

    /// A `matchLabels` + `matchExpressions` selector (PodDisruptionBudget).
    static func matches(selector: JSON?, labels: JSONObject?) -> Bool {
        guard let selector, selector.objectValue != nil else { return false }
        for (k, v) in selector["matchLabels"]?.objectValue ?? JSONObject() where labels?[k] != v { return false }
        for expr in selector["matchExpressions"]?.arrayValue ?? [] {
            let key = expr["key"]?.stringValue ?? ""
            let values = (expr["values"]?.arrayValue ?? []).compactMap(\.stringValue)
            let have = labels?[key]?.stringValue
            switch expr["operator"]?.stringValue {
            case "In": guard let have, values.contains(have) else { return false }
            case "NotIn": if let have, values.contains(have) { return false }
            case "Exists": if have == nil { return false }
            case "DoesNotExist": if have != nil { return false }
            default: return false
            }
        }
        return true
    }
}

/// A parsed `fieldSelector` (`metadata.name=x,spec.nodeName!=y`): any dotted
/// path into the object, compared as text (a missing field is "").
struct FieldSelector: Sendable {
    var requirements: [(path: [String], value: String, negated: Bool)] = []

    init(_ text: String) throws(SelectorError) {
        for raw in text.split(separator: ",") {
            let part = String(raw).trimmingWhitespace
            if part.isEmpty { continue }
            let negated: Bool
            let range: Range<String.Index>
            if let r = part.firstRange(of: "!=") { negated = true; range = r }
            else if let r = part.firstRange(of: "==") ?? part.firstRange(of: "=") { negated = false; range = r }
            else { throw SelectorError(message: "invalid selector: '\(part)'; can't understand '\(part)'") }
            let path = String(part[..<range.lowerBound]).trimmingWhitespace.split(separator: ".").map(String.init)
            requirements.append((path, String(part[range.upperBound...]).trimmingWhitespace, negated))
        }
    }

    func matches(_ object: JSON) -> Bool {
        for r in requirements {
            var v: JSON? = object
            for key in r.path { v = v?[key] }
            let text: String
            switch v {
            case .string(let s)?: text = s
            case .number(let n)?: text = n
            case .bool(let b)?: text = b ? "true" : "false"
            default: text = ""
            }
            if (text == r.value) == r.negated { return false }
        }
        return true
    }
}

struct SelectorError: Error { var message: String }

/// Splits at commas that are not inside parentheses.
private func splitTopLevel(_ s: String) -> [String] {
    var parts: [String] = [], current = "", depth = 0
    for c in s {
        if c == "(" { depth += 1 } else if c == ")" { depth -= 1 }
        if c == "," && depth == 0 { parts.append(current); current = "" } else { current.append(c) }
    }
    parts.append(current)
    return parts
}

/// A list/watch filter: namespace, label and field selectors.
struct ObjectFilter: Sendable {
    var namespace: String?
    var labels: LabelSelector?
    var fields: FieldSelector?

    func matches(_ object: JSON) -> Bool {
        if let namespace, object[path: "metadata", "namespace"]?.stringValue != namespace { return false }
        if let labels, !labels.matches(object[path: "metadata", "labels"]?.objectValue) { return false }
        if let fields, !fields.matches(object) { return false }
        return true
    }
}
