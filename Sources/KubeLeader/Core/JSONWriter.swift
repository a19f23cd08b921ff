// JSON text out: compact (`serialized()`, also `description`) or indented
// (`prettyPrinted()`), and string literals with the escapes JSON requires.

extension JSON {
    /// Compact JSON text (no white space), as the API server and our logs want it.
    public func serialized() -> String {
        var out: [UInt8] = []
        write(to: &out, indent: nil, level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    /// Indented JSON text for people (two spaces, as `kubectl -o json`).
    public func prettyPrinted() -> String {
        var out: [UInt8] = []
        write(to: &out, indent: "  ", level: 0)
        return String(decoding: out, as: UTF8.self)
    }

    /// Writes UTF-8 into a byte buffer (cheaper than appending to a String).
    func write(to out: inout [UInt8], indent: StaticString?, level: Int) {
        switch self {
        case .null: JSON.append("null", to: &out)
        case .bool(let b): JSON.append(b ? "true" : "false", to: &out)
        case .number(let n): out.append(contentsOf: n.utf8)
        case .string(let s): JSON.writeString(s, to: &out)
        case .array(let a):
            if a.isEmpty { JSON.append("[]", to: &out); return }
            out.append(UInt8(ascii: "["))
            for (i, element) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                JSON.newline(&out, indent, level + 1)
                element.write(to: &out, indent: indent, level: level + 1)
            }
            JSON.newline(&out, indent, level)
            out.append(UInt8(ascii: "]"))
        case .object(let o):
            if o.isEmpty { JSON.append("{}", to: &out); return }
            out.append(UInt8(ascii: "{"))
            var first = true
            for (key, value) in o {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                JSON.newline(&out, indent, level + 1)
                JSON.writeString(key, to: &out)
                out.append(UInt8(ascii: ":"))
                if indent != nil { out.append(UInt8(ascii: " ")) }
                value.write(to: &out, indent: indent, level: level + 1)
            }
            JSON.newline(&out, indent, level)
            out.append(UInt8(ascii: "}"))
        }
    }

    static func append(_ text: StaticString, to out: inout [UInt8]) {
        out.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    static func newline(_ out: inout [UInt8], _ indent: StaticString?, _ level: Int) {
        guard let indent else { return }
        out.append(UInt8(ascii: "\n"))
        for _ in 0..<level { append(indent, to: &out) }
    }

    /// Writes a string literal with the escapes JSON requires.
    public static func writeString(_ s: String, to out: inout String) {
        var bytes: [UInt8] = []
        writeString(s, to: &bytes)
        out += String(decoding: bytes, as: UTF8.self)
    }

    /// Writes a string literal with the escapes JSON requires, as UTF-8:
    /// `"` and `\` escaped, the control characters, DEL, U+2028 and U+2029 as
    /// `\n`-style or `\u00xx` escapes (lower-case hex).
    static func writeString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { utf8 in
            var runStart = 0
            var i = 0
            func flush() { if runStart < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: utf8[runStart..<i])) } }
            while i < utf8.count {
                let b = utf8[i]
                let escape: StaticString?
                var hexValue: UInt32? = nil
                var width = 1
                switch b {
                case 0x22: escape = "\\\""
                case 0x5C: escape = "\\\\"
                case 0x0A: escape = "\\n"
                case 0x0D: escape = "\\r"
                case 0x09: escape = "\\t"
                case 0x08: escape = "\\b"
                case 0x0C: escape = "\\f"
                case 0x00..<0x20, 0x7F: escape = nil; hexValue = UInt32(b)
                case 0xE2 where i + 2 < utf8.count && utf8[i + 1] == 0x80 && (utf8[i + 2] == 0xA8 || utf8[i + 2] == 0xA9):
                    escape = nil; hexValue = utf8[i + 2] == 0xA8 ? 0x2028 : 0x2029; width = 3
                default: i += 1; continue
                }
                flush()
                if let escape {
                    append(escape, to: &out)
                } else if let hexValue {
                    append("\\u", to: &out)
                    for shift in stride(from: 12, through: 0, by: -4) {
                        let digit = UInt8((hexValue >> UInt32(shift)) & 0xF)
                        out.append(digit < 10 ? UInt8(ascii: "0") + digit : UInt8(ascii: "a") + digit - 10)
                    }
                }
                i += width
                runStart = i
            }
            flush()
        }
        out.append(UInt8(ascii: "\""))
    }

    /// `s` as a JSON string literal, quotes included.
    public static func quoted(_ s: String) -> String {
        var out: [UInt8] = []
        writeString(s, to: &out)
        return String(decoding: out, as: UTF8.self)
    }
}

extension JSON: CustomStringConvertible {
    public var description: String { serialized() }
}
