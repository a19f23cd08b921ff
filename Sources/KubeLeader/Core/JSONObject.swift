/// A JSON object: keys in the order they were read or first set.
///
/// Members are kept in two parallel arrays (keys, values). Small objects (all
/// of a lock object's) are searched in order, which is cheaper than hashing;
/// an object with more than `indexThreshold` members also keeps a key→position
/// index, so lookups and parsing stay linear in the object's size.
public struct JSONObject: Sendable, Hashable, Sequence, ExpressibleByDictionaryLiteral {
    public private(set) var keys: [String] = []
    private var values: [JSON] = []
    /// Key → position in `keys`/`values`, only when there are more than
    /// `indexThreshold` members.
    private var index: [String: Int]?
    static let indexThreshold = 16

    public init() {}
    public init(dictionaryLiteral elements: (String, JSON)...) {
        for (k, v) in elements { self[k] = v }
    }
    public init(_ pairs: [(String, JSON)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }

    /// Room for `n` members without regrowing (the parser's objects).
    mutating func reserveCapacity(_ n: Int) {
        keys.reserveCapacity(n)
        values.reserveCapacity(n)
    }

    private func position(of key: String) -> Int? {
        if let index { return index[key] }
        return keys.firstIndex(of: key)
    }

    private mutating func rebuildIndex() {
        guard keys.count > JSONObject.indexThreshold else { index = nil; return }
        var map = [String: Int](minimumCapacity: keys.count)
        for (i, k) in keys.enumerated() { map[k] = i }
        index = map
    }

    public subscript(key: String) -> JSON? {
        get { position(of: key).map { values[$0] } }
        set {
            if let newValue {
                if let p = position(of: key) {
                    values[p] = newValue
                } else {
                    keys.append(key)
                    values.append(newValue)
                    if index != nil {
                        index![key] = keys.count - 1
                    } else if keys.count > JSONObject.indexThreshold {
                        rebuildIndex()
                    }
                }
            } else if let p = position(of: key) {
                keys.remove(at: p)
                values.remove(at: p)
                if index != nil { rebuildIndex() }
            }
        }
    }

    public struct Iterator: IteratorProtocol {
        let keys: [String]
        let values: [JSON]
        var position = 0
        public mutating func next() -> (key: String, value: JSON)? {
            guard position < keys.count else { return nil }
            defer { position += 1 }
            return (keys[position], values[position])
        }
    }

    public func makeIterator() -> Iterator { Iterator(keys: keys, values: values) }

    /// Equality ignores key order, as JSON does.
    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        guard a.keys.count == b.keys.count else { return false }
        for i in a.keys.indices {
            guard let v = b[a.keys[i]], v == a.values[i] else { return false }
        }
        return true
    }

    /// Independent of key order (each member hashed alone, combined with xor).
    public func hash(into hasher: inout Hasher) {
        var combined = 0
        for i in keys.indices {
            var h = Hasher()
            h.combine(keys[i])
            h.combine(values[i])
            combined ^= h.finalize()
        }
        hasher.combine(keys.count)
        hasher.combine(combined)
    }
}
