/// A wall-clock instant (UTC, since the Unix epoch) for timestamps that people
/// and other clients read: lock records, logs, AWS signatures.
///
/// - Important: never use wall time to decide anything about expiry; the
///   election judges time only by a monotonic clock (see `Election`).
public struct WallTime: Sendable, Hashable, Comparable {
    public var seconds: Int64
    /// 0 ..< 1_000_000_000
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32 = 0) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static func < (a: WallTime, b: WallTime) -> Bool {
        (a.seconds, a.nanoseconds) < (b.seconds, b.nanoseconds)
    }

    public func adding(_ d: Duration) -> WallTime {
        let total = Int64(nanoseconds) + d.nanoseconds % 1_000_000_000
        var s = seconds + d.nanoseconds / 1_000_000_000 + total / 1_000_000_000
        var n = total % 1_000_000_000
        if n < 0 { n += 1_000_000_000; s -= 1 }
        return WallTime(seconds: s, nanoseconds: Int32(n))
    }

    public func duration(since other: WallTime) -> Duration {
        .seconds(seconds - other.seconds) + .nanoseconds(Int64(nanoseconds) - Int64(other.nanoseconds))
    }
}

/// A calendar date and time of day in UTC (proleptic Gregorian).
public struct CivilTime: Sendable, Hashable {
    public var year: Int, month: Int, day: Int
    public var hour: Int, minute: Int, second: Int
    public var nanosecond: Int

    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0, nanosecond: Int = 0) {
        (self.year, self.month, self.day, self.hour, self.minute, self.second, self.nanosecond) =
            (year, month, day, hour, minute, second, nanosecond)
    }

    /// Days since 1970-01-01 for a civil date (Howard Hinnant's days_from_civil).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// The civil date of a day count since 1970-01-01 (civil_from_days).
    public static func civilFromDays(_ z: Int) -> (year: Int, month: Int, day: Int) {
        let z = z + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// Day of week, 0 = Sunday.
    public static func weekday(daysSinceEpoch z: Int) -> Int { ((z % 7) + 11) % 7 }

    public static func isLeapYear(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return isLeapYear(year) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// The day (since 1970-01-01) that holds a seconds-since-epoch value
    /// (floor division, so a second before the epoch is day -1).
    public static func days(ofSeconds s: Int64) -> Int { Int(s >= 0 ? s / 86400 : (s - 86399) / 86400) }

    public init(_ t: WallTime) {
        let days = CivilTime.days(ofSeconds: t.seconds)
        let secs = Int(t.seconds - Int64(days) * 86400)
        let (y, m, d) = CivilTime.civilFromDays(days)
        self.init(year: y, month: m, day: d, hour: secs / 3600, minute: secs % 3600 / 60, second: secs % 60,
                  nanosecond: Int(t.nanoseconds))
    }

    public var wallTime: WallTime {
        let days = CivilTime.daysFromCivil(year: year, month: month, day: day)
        return WallTime(seconds: Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second),
                        nanoseconds: Int32(nanosecond))
    }
}

/// RFC 3339 text for the times Kubernetes and AWS exchange.
public enum RFC3339 {
    /// `2026-11-28T09:51:45Z`: metav1.Time (whole seconds).
    public static func format(_ t: WallTime) -> String { format(t, fractionDigits: 0) }

    /// `2026-11-28T09:51:45.123456Z`: metav1.MicroTime (exactly 6 digits, as
    /// the API server requires for Lease times; kubernetes/kubernetes#89156).
    public static func formatMicro(_ t: WallTime) -> String { format(t, fractionDigits: 6) }

    /// `2026-11-28T09:51:45.123Z`: log timestamps.
    public static func formatMillis(_ t: WallTime) -> String { format(t, fractionDigits: 3) }

    public static func format(_ t: WallTime, fractionDigits: Int) -> String {
        let c = CivilTime(t)
        if (0...9999).contains(c.year), (0..<1_000_000_000).contains(c.nanosecond) {
            // Fast path: fixed-width digits into one buffer.
            let digits = min(9, max(0, fractionDigits))
            var b = [UInt8](repeating: 0, count: 20 + (digits > 0 ? digits + 1 : 0))
            func put(_ v: Int, _ width: Int, at start: Int) {
                var v = v
                for k in stride(from: start + width - 1, through: start, by: -1) { b[k] = UInt8(48 + v % 10); v /= 10 }
            }
            put(c.year, 4, at: 0); b[4] = UInt8(ascii: "-"); put(c.month, 2, at: 5); b[7] = UInt8(ascii: "-")
            put(c.day, 2, at: 8); b[10] = UInt8(ascii: "T"); put(c.hour, 2, at: 11); b[13] = UInt8(ascii: ":")
            put(c.minute, 2, at: 14); b[16] = UInt8(ascii: ":"); put(c.second, 2, at: 17)
            var end = 19
            if digits > 0 {
                b[19] = UInt8(ascii: ".")
                var frac = c.nanosecond
                for _ in digits..<9 { frac /= 10 }
                put(frac, digits, at: 20)
                end = 20 + digits
            }
            b[end] = UInt8(ascii: "Z")
            return String(decoding: b, as: UTF8.self)
        }
        var s = pad(c.year, 4) + "-" + pad(c.month, 2) + "-" + pad(c.day, 2) + "T"
        s += pad(c.hour, 2) + ":" + pad(c.minute, 2) + ":" + pad(c.second, 2)
        if fractionDigits > 0 {
            var frac = pad(c.nanosecond, 9)
            frac.removeLast(9 - min(9, fractionDigits))
            s += "." + frac
        }
        return s + "Z"
    }

    static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    /// Reads RFC 3339 leniently: `T` or a space between date and time, any
    /// number of fraction digits, `Z`, `±hh:mm`, `±hhmm`, or no zone (taken as
    /// UTC, as the Python client writes `2026-11-28 05:27:02.706271`).
    public static func parse(_ text: String) -> WallTime? {
        var text = text
        return text.withUTF8 { parse(utf8: $0) }
    }

    static func parse(utf8 b: UnsafeBufferPointer<UInt8>) -> WallTime? {
        var i = 0
        func number(_ width: Int) -> Int? {
            guard i + width <= b.count else { return nil }
            var v = 0
            for k in 0..<width {
                let c = b[i + k]
                guard (48...57).contains(c) else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += width
            return v
        }
        func expect(_ c: Character) -> Bool {
            guard i < b.count, b[i] == c.asciiValue! else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2) else { return nil }
        guard (1...12).contains(month), (1...CivilTime.daysInMonth(year: year, month: month)).contains(day) else { return nil }
        var hour = 0, minute = 0, second = 0, nanos = 0
        if i < b.count {
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
            i += 1
            guard let h = number(2), expect(":"), let m = number(2), expect(":"), let s = number(2) else { return nil }
            guard h < 24, m < 60, s < 61 else { return nil }
            (hour, minute, second) = (h, m, min(s, 59))
            if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
                i += 1
                var digits = 0
                while i < b.count, (48...57).contains(b[i]) {
                    if digits < 9 { nanos = nanos * 10 + Int(b[i] - 48) }
                    digits += 1
                    i += 1
                }
                guard digits > 0 else { return nil }
                for _ in digits..<max(9, digits) { nanos *= 10 }
            }
        }
        var offset = 0
        if i < b.count {
            switch b[i] {
            case UInt8(ascii: "Z"), UInt8(ascii: "z"): i += 1
            case UInt8(ascii: "+"), UInt8(ascii: "-"):
                let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
                i += 1
                guard let oh = number(2) else { return nil }
                _ = expect(":")
                guard let om = number(2) else { return nil }
                offset = sign * (oh * 3600 + om * 60)
            default: return nil
            }
        }
        guard i == b.count else { return nil }
        var t = CivilTime(year: year, month: month, day: day, hour: hour, minute: minute, second: second, nanosecond: nanos).wallTime
        t.seconds -= Int64(offset)
        return t
    }
}
