/// Durations as people write them in flags and env vars: `500ms`, `15s`,
/// `2m`, `1h`, and Go-style sums such as `1m30s`.
public enum DurationText {
    public struct ParseError: Error, Sendable, Equatable, CustomStringConvertible {
        public var text: String
        public var description: String {
            "'\(text)' is not a duration: write a number with a unit, e.g. 500ms, 15s, 2m or 1h"
        }
    }

    /// Parses `text`; negative values and a missing unit are errors.
    public static func parse(_ text: String) throws(ParseError) -> Duration {
        let s = Array(text.utf8)
        guard !s.isEmpty else { throw ParseError(text: text) }
        var i = 0
        var totalNanos: Double = 0
        while i < s.count {
            let numberStart = i
            while i < s.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(s[i]) || s[i] == UInt8(ascii: ".") { i += 1 }
            guard i > numberStart, let value = Double(String(decoding: s[numberStart..<i], as: UTF8.self)) else {
                throw ParseError(text: text)
            }
            let unitStart = i
            while i < s.count, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(s[i]), s[i] != UInt8(ascii: ".") { i += 1 }
            let unit = String(decoding: s[unitStart..<i], as: UTF8.self)
            let scale: Double
            switch unit {
            case "ns": scale = 1
            case "us", "µs": scale = 1e3
            case "ms": scale = 1e6
            case "s": scale = 1e9
            case "m": scale = 60e9
            case "h": scale = 3600e9
            default: throw ParseError(text: text)
            }
            totalNanos += value * scale
        }
        guard totalNanos.isFinite, totalNanos < 1e18 else { throw ParseError(text: text) }
        return .nanoseconds(Int64(totalNanos.rounded()))
    }

    /// The shortest exact text for a duration: `15s`, `500ms`, `1m30s`, `1.5s`.
    public static func format(_ d: Duration) -> String {
        let nanos = d.nanoseconds
        if nanos == 0 { return "0s" }
        if nanos < 0 { return "-" + format(.nanoseconds(-nanos)) }
        if nanos % 1_000_000_000 != 0 {
            if nanos < 1_000_000_000 {
                if nanos % 1_000_000 == 0 { return "\(nanos / 1_000_000)ms" }
                if nanos % 1_000 == 0 { return "\(nanos / 1_000)us" }
                return "\(nanos)ns"
            }
            let ms = nanos / 1_000_000
            var frac = String(ms % 1000)
            while frac.count < 3 { frac = "0" + frac }
            while frac.hasSuffix("0") { frac.removeLast() }
            return "\(ms / 1000).\(frac)s"
        }
        var seconds = nanos / 1_000_000_000
        var out = ""
        if seconds >= 3600 { out += "\(seconds / 3600)h"; seconds %= 3600 }
        if seconds >= 60 { out += "\(seconds / 60)m"; seconds %= 60 }
        if seconds > 0 { out += "\(seconds)s" }
        return out
    }
}

extension Duration {
    /// Whole nanoseconds (saturating at Int64).
    public var nanoseconds: Int64 {
        let (s, atto) = components
        let (n, overflow) = s.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return s < 0 ? .min : .max }
        return n &+ atto / 1_000_000_000
    }

    /// Seconds as a Double, for arithmetic like `1.2 × retryPeriod`.
    public var seconds: Double { Double(nanoseconds) / 1e9 }

    /// Milliseconds as a Double, for logs.
    public var milliseconds: Double { Double(nanoseconds) / 1e6 }
}
