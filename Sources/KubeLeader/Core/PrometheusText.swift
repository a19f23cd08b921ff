/// The Prometheus text exposition format 0.0.4, written in one place for
/// kube-leader's `/metrics` and the companions' `--metrics-addr`: families
/// with `# HELP` and `# TYPE`, samples with escaped label values, histograms
/// with cumulative buckets, `_sum` and `_count`.
public struct PrometheusText: Sendable {
    /// The content type of the format, for the `Content-Type` header.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public enum Kind: String, Sendable {
        case counter, gauge, histogram
    }

    /// A label name and its (unescaped) value.
    public typealias Label = (name: String, value: String)

    /// The exposition text so far.
    public private(set) var text = ""

    public init() {}

    /// Starts a family: its `# HELP` (backslash and line break escaped) and `# TYPE` lines.
    public mutating func family(_ name: String, _ kind: Kind, help: String) {
        text += "# HELP \(name) \(Self.escapeHelp(help))\n# TYPE \(name) \(kind.rawValue)\n"
    }

    /// One sample line: `name{labels} value`.
    /// A sample without labels.
    public mutating func sample(_ name: String, _ value: Int) { sample(name, [], String(value)) }

    public mutating func sample(_ name: String, _ labels: [Label], _ value: String) {
        text += name + Self.labelSet(labels) + " " + value + "\n"
    }

    public mutating func sample(_ name: String, _ labels: [Label], _ value: Int) {
        sample(name, labels, String(value))
    }

    public mutating func sample(_ name: String, _ labels: [Label], _ value: Double) {
        sample(name, labels, String(value))
    }

    /// The samples of a histogram: one `_bucket` per upper bound (`le`, as
    /// written) with its cumulative count, the `+Inf` bucket (`count`), `_sum`
    /// and `_count`.
    public mutating func histogram(_ name: String, _ labels: [Label] = [], buckets: [(le: String, cumulative: Int)],
                                   sum: Double, count: Int) {
        for bucket in buckets { sample(name + "_bucket", labels + [("le", bucket.le)], bucket.cumulative) }
        sample(name + "_bucket", labels + [("le", "+Inf")], count)
        sample(name + "_sum", labels, sum)
        sample(name + "_count", labels, count)
    }

    /// `{a="x",b="y"}`, or "" for no labels.
    static func labelSet(_ labels: [Label]) -> String {
        labels.isEmpty ? "" : "{" + labels.map { "\($0.name)=\(labelValue($0.value))" }.joined(separator: ",") + "}"
    }

    /// A quoted label value with the escapes the format requires: backslash,
    /// double quote, line break.
    public static func labelValue(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
    }

    /// HELP text escapes backslash and line break (not quotes).
    static func escapeHelp(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}
