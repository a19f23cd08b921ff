/// A reader for the YAML the original service used: a top-level list of flat
/// mappings of strings, with comments.
///
/// ```yaml
/// # on-call people
/// - name: Jane Doe
///   id: PABC123
///   cron: 55 6 * * 2#1 America/Los_Angeles   # first Tuesday
/// - name: "Bob"
///   id: 'PXYZ789'
///   cron: "*/30 9-17 * * mon-fri Europe/Berlin"
/// ```
///
/// Supported: `#` comments (at line start or after a space), `---`, plain,
/// 'single' and "double" quoted scalars, `- ` entries with the first key on
/// the dash line or on the next lines. Every value is a string (`id: 42` is
/// "42"). Plain values may start with `*` or `@` (real YAML would need
/// quotes). Anything else (nesting, flow collections, block scalars, anchors)
/// is an error naming the line.
enum YAMLSubset {
    struct Field: Sendable, Equatable {
        var key: String
        var value: String
        var line: Int
    }

    struct Entry: Sendable, Equatable {
        var line: Int
        var fields: [Field]
    }

    struct SyntaxError: Error {
        var line: Int
        var reason: String
    }

    static func parse(_ text: String) throws(SyntaxError) -> [Entry] {
        var entries: [Entry] = []
        var keyIndent: Int? = nil
        var lineNumber = 0
        for rawLine in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            var line = Substring(rawLine)
            if line.hasSuffix("\r") { line = line.dropLast() }
            let content = try stripComment(line, lineNumber)
            if content.allSatisfy({ $0 == " " }) { continue }
            if lineNumber == 1 || entries.isEmpty, content == "---" { continue }
            if content == "..." { break }
            guard !content.hasPrefix("\t"), !content.prefix(while: { $0 == " " || $0 == "\t" }).contains("\t") else {
                throw SyntaxError(line: lineNumber, reason: "tabs are not allowed for indentation; use spaces")
            }
            let indent = content.prefix(while: { $0 == " " }).count
            var rest = content.dropFirst(indent)
            if rest == "-" || rest.hasPrefix("- ") {
                guard indent == 0 else {
                    throw SyntaxError(line: lineNumber, reason: "a list item must start at column 1 (nested lists are not supported)")
                }
                entries.append(Entry(line: lineNumber, fields: []))
                rest = rest.dropFirst()
                let spaces = rest.prefix(while: { $0 == " " }).count
                rest = rest.dropFirst(spaces)
                keyIndent = nil
                if rest.isEmpty { continue }
                keyIndent = 1 + spaces
            } else {
                guard !entries.isEmpty else {
                    throw SyntaxError(line: lineNumber, reason: "expected a list of people, each starting with '- ' (e.g. '- name: Jane')")
                }
                guard indent > 0 else {
                    throw SyntaxError(line: lineNumber, reason: "a key of an entry must be indented under its '- '")
                }
                if let k = keyIndent, k != indent {
                    throw SyntaxError(line: lineNumber, reason: "inconsistent indentation: keys of an entry must line up (nested mappings are not supported)")
                }
                keyIndent = indent
            }
            let field = try keyValue(rest, lineNumber)
            if entries[entries.count - 1].fields.contains(where: { $0.key == field.key }) {
                throw SyntaxError(line: lineNumber, reason: "key '\(field.key)' appears twice in the same entry")
            }
            entries[entries.count - 1].fields.append(field)
        }
        return entries
    }

    /// Drops a `#` comment that starts the line or follows a space, outside quotes.
    static func stripComment(_ line: Substring, _ lineNumber: Int) throws(SyntaxError) -> Substring {
        var quote: Character? = nil
        var previous: Character = " "
        var index = line.startIndex
        while index < line.endIndex {
            let c = line[index]
            if let q = quote {
                if c == "\\" && q == "\"" {
                    index = line.index(after: index)
                    if index < line.endIndex { index = line.index(after: index) }
                    previous = "x"
                    continue
                }
                if c == q { quote = nil }
            } else if c == "#" && (previous == " " || previous == "\t") {
                return line[..<index]
            } else if (c == "\"" || c == "'") && (previous == " " || previous == "-") {
                quote = c
            }
            previous = c
            index = line.index(after: index)
        }
        return line
    }

    static func keyValue(_ text: Substring, _ lineNumber: Int) throws(SyntaxError) -> Field {
        guard let colon = text.firstIndex(where: { $0 == ":" }),
              text.index(after: colon) == text.endIndex || text[text.index(after: colon)] == " " else {
            throw SyntaxError(line: lineNumber, reason: "expected 'key: value'")
        }
        let key = String(text[..<colon])
        guard !key.isEmpty, key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }) else {
            throw SyntaxError(line: lineNumber, reason: "'\(key)' is not a simple key (letters, digits, _ and -)")
        }
        var value = text[text.index(after: colon)...]
        while value.first == " " { value = value.dropFirst() }
        while value.last == " " { value = value.dropLast() }
        return Field(key: key, value: try scalar(value, key: key, lineNumber), line: lineNumber)
    }

    static func scalar(_ v: Substring, key: String, _ lineNumber: Int) throws(SyntaxError) -> String {
        guard let first = v.first else {
            throw SyntaxError(line: lineNumber, reason: "key '\(key)' has no value (nested mappings and lists are not supported)")
        }
        switch first {
        case "'":
            guard v.count >= 2, v.last == "'" else { throw SyntaxError(line: lineNumber, reason: "unterminated 'single-quoted' value of '\(key)'") }
            let inner = v.dropFirst().dropLast()
            var out = ""
            var i = inner.startIndex
            while i < inner.endIndex {
                let c = inner[i]
                if c == "'" {
                    let n = inner.index(after: i)
                    guard n < inner.endIndex, inner[n] == "'" else {
                        throw SyntaxError(line: lineNumber, reason: "a quote inside a 'single-quoted' value must be doubled ('')")
                    }
                    i = n
                }
                out.append(c)
                i = inner.index(after: i)
            }
            return out
        case "\"":
            var out = ""
            var i = v.index(after: v.startIndex)
            while i < v.endIndex {
                let c = v[i]
                if c == "\"" {
                    guard v.index(after: i) == v.endIndex else {
                        throw SyntaxError(line: lineNumber, reason: "unexpected text after the closing quote of '\(key)'")
                    }
                    return out
                }
                if c == "\\" {
                    i = v.index(after: i)
                    guard i < v.endIndex else { break }
                    switch v[i] {
                    case "n": out.append("\n")
                    case "t": out.append("\t")
                    case "\\": out.append("\\")
                    case "\"": out.append("\"")
                    case "/": out.append("/")
                    default: throw SyntaxError(line: lineNumber, reason: "unsupported escape '\\\(v[i])' in the value of '\(key)'")
                    }
                } else {
                    out.append(c)
                }
                i = v.index(after: i)
            }
            throw SyntaxError(line: lineNumber, reason: "unterminated \"double-quoted\" value of '\(key)'")
        case "[", "{", "|", ">", "&", "!", "%", "`":
            throw SyntaxError(line: lineNumber, reason: "the value of '\(key)' starts with '\(first)', which this reader does not support; quote the value")
        default:
            return String(v)
        }
    }
}
