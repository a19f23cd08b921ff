/// A JSON value that keeps everything it was read with.
///
/// Kubernetes objects are handled as `JSON` rather than as typed structs so an
/// update never drops a field this code does not know about (a newer API
/// server's field, another controller's annotation). Objects keep their key
/// order and numbers keep their exact text, so `parse` then `serialized()`
/// round-trips byte for byte apart from white space.
///
/// Objects are `JSONObject` (JSONObject.swift); text in is `JSON.parse`
/// (JSONParser.swift), text out `serialized()` and `prettyPrinted()`
/// (JSONWriter.swift).
public enum JSON: Sendable, Hashable {
    case null
    case bool(Bool)
    /// The number's literal text, e.g. `15`, `-1.5e3`: never rounded.
    case number(String)
    case string(String)
    case array([JSON])
    case object(JSONObject)

    public init(_ int: Int) { self = .number(String(int)) }
    public init(_ string: String) { self = .string(string) }

    // MARK: Accessors (nil when the value has another type)

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// The number as an `Int` when it is an integer literal in range.
    public var intValue: Int? {
        if case .number(let text) = self { return Int(text) ?? Double(text).flatMap { $0 == $0.rounded() && abs($0) < 9.0e15 ? Int($0) : nil } }
        return nil
    }
    public var doubleValue: Double? { if case .number(let text) = self { return Double(text) }; return nil }

    /// Member of an object (nil for a missing key or a non-object). Setting
    /// on a non-object turns it into an object; setting nil removes the key.
    public subscript(key: String) -> JSON? {
        get { objectValue?[key] }
        set {
            var object = objectValue ?? JSONObject()
            object[key] = newValue
            self = .object(object)
        }
    }

    /// Element of an array (nil when out of range or not an array).
    public subscript(index: Int) -> JSON? {
        guard case .array(let a) = self, a.indices.contains(index) else { return nil }
        return a[index]
    }

    /// Nested member by path, e.g. `json[path: "metadata", "resourceVersion"]`.
    /// Setting creates the intermediate objects.
    public subscript(path keys: String...) -> JSON? {
        get { value(at: keys[...]) }
        set { setValue(newValue, at: keys[...]) }
    }

    /// `json[path: a, b]` without the variadic array (the common case).
    public subscript(path a: String, _ b: String) -> JSON? {
        get { self[a]?[b] }
        set { setValue(newValue, at: a) { $0[b] = newValue } }
    }

    /// `json[path: a, b, c]` without the variadic array.
    public subscript(path a: String, _ b: String, _ c: String) -> JSON? {
        get { self[a]?[b]?[c] }
        set { setValue(newValue, at: a) { $0[path: b, c] = newValue } }
    }

    /// Sets inside member `key` (created as an object when missing), as
    /// `setValue(_:at:)` does. The member is set to null while `change` runs,
    /// so the child is uniquely referenced and not copied.
    private mutating func setValue(_ newValue: JSON?, at key: String, _ change: (inout JSON) -> Void) {
        var child = self[key] ?? .object(JSONObject())
        if self[key] != nil { self[key] = .null }
        change(&child)
        self[key] = child
    }

    private func value(at keys: ArraySlice<String>) -> JSON? {
        guard let first = keys.first else { return self }
        return self[first]?.value(at: keys.dropFirst())
    }

    private mutating func setValue(_ newValue: JSON?, at keys: ArraySlice<String>) {
        guard let first = keys.first else { if let newValue { self = newValue }; return }
        if keys.count == 1 { self[first] = newValue; return }
        setValue(newValue, at: first) { $0.setValue(newValue, at: keys.dropFirst()) }
    }
}

extension JSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(String(value)) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JSON...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSON)...) { self = .object(JSONObject(elements)) }
    public init(nilLiteral: ()) { self = .null }
}
