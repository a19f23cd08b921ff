import KLCore

/// RFC 7386 JSON merge patch (also used for strategic merge patch, which for
/// the fields our clients touch behaves the same).
func mergePatch(_ target: JSON, _ patch: JSON) -> JSON {
    guard case .object(let p) = patch else { return patch }
    var result = target.objectValue ?? JSONObject()
    for (key, value) in p {
        if value.isNull { result[key] = nil } else { result[key] = mergePatch(result[key] ?? .null, value) }
    }
    return .object(result)
}

struct PatchError: Error { var message: String }

/// RFC 6902 JSON patch: add, remove, replace, move, copy, test.
func jsonPatch(_ target: JSON, _ patch: JSON) throws(PatchError) -> JSON {
    guard let ops = patch.arrayValue else { throw PatchError(message: "json: cannot unmarshal object into Go value of type jsonpatch.Patch") }
    var doc = target
    for op in ops {
        guard let name = op["op"]?.stringValue, let path = op["path"]?.stringValue else {
            throw PatchError(message: "unexpected kind: missing op or path")
        }
        let tokens = try pointer(path)
        switch name {
        case "add": doc = try set(doc, tokens[...], try value(op), insert: true)
        case "replace":
            guard get(doc, tokens[...]) != nil else { throw PatchError(message: "replace operation does not apply: doc is missing key: \(path)") }
            doc = try set(doc, tokens[...], try value(op), insert: false)
        case "remove":
            guard get(doc, tokens[...]) != nil else { throw PatchError(message: "remove operation does not apply: doc is missing path: \(path)") }
            doc = try remove(doc, tokens[...])
        case "test":
            guard get(doc, tokens[...]) == (try value(op)) else { throw PatchError(message: "testing value \(path) failed: test failed") }
        case "move", "copy":
            guard let from = op["from"]?.stringValue, let v = get(doc, try pointer(from)[...]) else {
                throw PatchError(message: "\(name) operation does not apply: doc is missing from path")
            }
            if name == "move" { doc = try remove(doc, try pointer(from)[...]) }
            doc = try set(doc, tokens[...], v, insert: true)
        default: throw PatchError(message: "Unexpected kind: \(name)")
        }
    }
    return doc
}

private func value(_ op: JSON) throws(PatchError) -> JSON {
    guard let v = op["value"] else { throw PatchError(message: "missing value") }
    return v
}

private func pointer(_ path: String) throws(PatchError) -> [String] {
    if path.isEmpty { return [] }
    guard path.hasPrefix("/") else { throw PatchError(message: "JSON pointer must start with /: \(path)") }
    return path.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
        String($0).replacingAll("~1", "/").replacingAll("~0", "~")
    }
}

private func get(_ doc: JSON, _ tokens: ArraySlice<String>) -> JSON? {
    guard let first = tokens.first else { return doc }
    switch doc {
    case .object(let o): return o[first].flatMap { get($0, tokens.dropFirst()) }
    case .array(let a): guard let i = Int(first), a.indices.contains(i) else { return nil }; return get(a[i], tokens.dropFirst())
    default: return nil
    }
}

private func set(_ doc: JSON, _ tokens: ArraySlice<String>, _ v: JSON, insert: Bool) throws(PatchError) -> JSON {
    guard let first = tokens.first else { return v }
    switch doc {
    case .object(var o):
        if tokens.count == 1 { o[first] = v; return .object(o) }
        guard let child = o[first] else { throw PatchError(message: "add operation does not apply: doc is missing path: \(first)") }
        o[first] = try set(child, tokens.dropFirst(), v, insert: insert)
        return .object(o)
    case .array(var a):
        if tokens.count == 1 {
            if first == "-" { a.append(v); return .array(a) }
            guard let i = Int(first), i >= 0, i <= a.count else { throw PatchError(message: "index out of range: \(first)") }
            if insert { a.insert(v, at: i) } else { guard i < a.count else { throw PatchError(message: "index out of range") }; a[i] = v }
            return .array(a)
        }
        guard let i = Int(first), a.indices.contains(i) else { throw PatchError(message: "index out of range: \(first)") }
        a[i] = try set(a[i], tokens.dropFirst(), v, insert: insert)
        return .array(a)
    default:
        throw PatchError(message: "cannot add to a scalar at \(first)")
    }
}

private func remove(_ doc: JSON, _ tokens: ArraySlice<String>) throws(PatchError) -> JSON {
    guard let first = tokens.first else { return .null }
    switch doc {
    case .object(var o):
        if tokens.count == 1 { o[first] = nil } else if let child = o[first] { o[first] = try remove(child, tokens.dropFirst()) }
        return .object(o)
    case .array(var a):
        guard let i = Int(first), a.indices.contains(i) else { throw PatchError(message: "index out of range: \(first)") }
        if tokens.count == 1 { a.remove(at: i) } else { a[i] = try remove(a[i], tokens.dropFirst()) }
        return .array(a)
    default: throw PatchError(message: "cannot remove from a scalar")
    }
}

extension String {
    func replacingAll(_ target: String, _ replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var out = "", rest = Substring(self)
        while let r = rest.firstRange(of: target) {
            out += rest[..<r.lowerBound]; out += replacement; rest = rest[r.upperBound...]
        }
        return out + rest
    }
}
