/// Just enough XML to read AWS Query-protocol answers: every element's text,
/// addressed by its path of element names. No DTDs, no namespaces (prefixes
/// are kept as written), attributes are ignored.
public struct XMLLeaves: Sendable, Equatable {
    /// (path of element names from the root, text) for every element that
    /// holds text, in document order.
    public private(set) var leaves: [(path: [String], text: String)]

    public static func == (a: XMLLeaves, b: XMLLeaves) -> Bool {
        a.leaves.count == b.leaves.count && zip(a.leaves, b.leaves).allSatisfy { $0.path == $1.path && $0.text == $1.text }
    }

    /// Parses `text`; returns nil when it is not well-formed enough to read
    /// (an end tag that does not match, or an unclosed tag).
    public init?(_ text: String) {
        leaves = []
        let b = Array(text.utf8)
        var i = 0
        var stack: [String] = []
        var textStart = 0
        var hadChild: [Bool] = []
        while i < b.count {
            guard b[i] == 0x3c else { i += 1; continue }  // '<'
            let pendingText = Array(b[textStart..<i])
            if b[i...].starts(with: Array("<!--".utf8)) {
                guard let end = Self.find(b, Array("-->".utf8), from: i) else { return nil }
                i = end + 3; textStart = i; continue
            }
            if b[i...].starts(with: Array("<![CDATA[".utf8)) {
                guard let end = Self.find(b, Array("]]>".utf8), from: i) else { return nil }
                // Keep CDATA as text of the current element.
                let data = String(decoding: b[(i + 9)..<end], as: UTF8.self)
                if !stack.isEmpty { leaves.append((stack, data)); hadChild[hadChild.count - 1] = true }
                i = end + 3; textStart = i; continue
            }
            guard let close = b[i...].firstIndex(of: 0x3e) else { return nil }  // '>'
            let inner = b[(i + 1)..<close]
            i = close + 1
            if inner.first == 0x3f || inner.first == 0x21 { textStart = i; continue }  // <? ?> <!DOCTYPE>
            if inner.first == 0x2f {  // </name>
                let name = String(decoding: inner.dropFirst(), as: UTF8.self).trimmingWhitespace
                guard stack.last == name else { return nil }
                if hadChild.last == false {
                    leaves.append((stack, Self.unescape(String(decoding: pendingText, as: UTF8.self))))
                }
                stack.removeLast(); hadChild.removeLast()
                textStart = i
                continue
            }
            let selfClosing = inner.last == 0x2f
            let nameBytes = inner.prefix { $0 != 0x20 && $0 != 0x09 && $0 != 0x0a && $0 != 0x0d && $0 != 0x2f }
            let name = String(decoding: nameBytes, as: UTF8.self)
            if !hadChild.isEmpty { hadChild[hadChild.count - 1] = true }
            if selfClosing {
                leaves.append((stack + [name], ""))
            } else {
                stack.append(name); hadChild.append(false)
            }
            textStart = i
        }
        if !stack.isEmpty { return nil }
    }

    /// Text of the first element whose path ends with `suffix`
    /// (`["Error", "Code"]` finds `ErrorResponse/Error/Code`).
    public func first(_ suffix: String...) -> String? {
        leaves.first { $0.path.count >= suffix.count && Array($0.path.suffix(suffix.count)) == suffix }?.text
    }

    /// Texts of every element whose path ends with `suffix`.
    public func all(_ suffix: String...) -> [String] {
        leaves.filter { $0.path.count >= suffix.count && Array($0.path.suffix(suffix.count)) == suffix }.map(\.text)
    }

    static func find(_ b: [UInt8], _ needle: [UInt8], from: Int) -> Int? {
        var j = from
        while j + needle.count <= b.count {
            if b[j..<(j + needle.count)].elementsEqual(needle) { return j }
            j += 1
        }
        return nil
    }

    /// `&amp; &lt; &gt; &quot; &apos; &#N; &#xN;`.
    public static func unescape(_ s: String) -> String {
        guard s.contains("&") else { return s }
        var out = ""
        var rest = Substring(s)
        while let amp = rest.firstIndex(of: "&") {
            out += rest[..<amp]
            guard let semi = rest[amp...].firstIndex(of: ";") else { break }
            let entity = rest[rest.index(after: amp)..<semi]
            var replacement: String?
            switch entity {
            case "amp": replacement = "&"
            case "lt": replacement = "<"
            case "gt": replacement = ">"
            case "quot": replacement = "\""
            case "apos": replacement = "'"
            default:
                if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16), let u = Unicode.Scalar(v) {
                    replacement = String(Character(u))
                } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let u = Unicode.Scalar(v) {
                    replacement = String(Character(u))
                }
            }
            if let replacement {
                out += replacement
                rest = rest[rest.index(after: semi)...]
            } else {
                out += "&"
                rest = rest[rest.index(after: amp)...]
            }
        }
        return out + rest
    }
}
