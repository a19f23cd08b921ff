import KLCore

/// A POSIX TZ rule string as found in the footer of a TZif v2+ file
/// (RFC 8536 section 3.3), e.g. `PST8PDT,M3.2.0,M11.1.0` or
/// `<+1030>-10:30<+11>-11,M10.1.0,M4.1.0`. It gives the offset for instants
/// after the last transition in the file's table.
public struct PosixTZ: Sendable, Equatable {
    /// Seconds east of UTC (POSIX writes the opposite sign: `PST8` is -8 h).
    public var standardOffset: Int
    public var standardName: String
    /// nil when the zone has no daylight saving time.
    public var dst: DST?

    public struct DST: Sendable, Equatable {
        public var offset: Int
        public var name: String
        public var start: Rule
        public var end: Rule
    }

    /// When a change happens: a day of the year plus a local time of day.
    public struct Rule: Sendable, Equatable {
        public enum Day: Sendable, Equatable {
            /// `Jn`: day 1...365, February 29 never counted.
            case julianNoLeap(Int)
            /// `n`: day 0...365, February 29 counted.
            case zeroBased(Int)
            /// `Mm.w.d`: weekday d (0 = Sunday) of week w (5 = last) of month m.
            case monthWeekDay(month: Int, week: Int, weekday: Int)
        }
        public var day: Day
        /// Seconds after local midnight (may be negative or above 24 h, TZif v3).
        public var time: Int
    }

    /// Parses the TZ string; nil when it is malformed.
    public static func parse(_ text: String) -> PosixTZ? {
        var p = Scanner(Array(text.utf8))
        guard let stdName = p.name(), let stdOff = p.offset() else { return nil }
        var result = PosixTZ(standardOffset: -stdOff, standardName: stdName, dst: nil)
        if p.atEnd { return result }
        guard let dstName = p.name() else { return nil }
        var dstOffset = -stdOff + 3600
        if !p.atEnd, p.peek != UInt8(ascii: ",") {
            guard let o = p.offset() else { return nil }
            dstOffset = -o
        }
        var start = Rule(day: .monthWeekDay(month: 3, week: 2, weekday: 0), time: 7200)
        var end = Rule(day: .monthWeekDay(month: 11, week: 1, weekday: 0), time: 7200)
        if !p.atEnd {
            guard p.eat(","), let s = p.rule(), p.eat(","), let e = p.rule(), p.atEnd else { return nil }
            (start, end) = (s, e)
        }
        result.dst = DST(offset: dstOffset, name: dstName, start: start, end: end)
        return result
    }

    /// The offset (seconds east of UTC) in effect at a UTC instant.
    public func offset(atUTC t: Int64) -> (offset: Int, isDST: Bool) {
        guard let dst else { return (standardOffset, false) }
        let year = CivilTime.civilFromDays(CivilTime.days(ofSeconds: t + Int64(standardOffset))).year
        // Check the neighbouring years too so rules near New Year (southern
        // hemisphere, or start/end times beyond 24 h) are seen.
        for y in [year - 1, year, year + 1].reversed() {
            let start = Int64(dayStart(dst.start.day, year: y)) * 86400 + Int64(dst.start.time) - Int64(standardOffset)
            let end = Int64(dayStart(dst.end.day, year: y)) * 86400 + Int64(dst.end.time) - Int64(dst.offset)
            if start < end {
                if t >= start && t < end { return (dst.offset, true) }
                if t >= end { return (standardOffset, false) }
            } else {
                // Southern hemisphere: DST spans New Year.
                if t >= start { return (dst.offset, true) }
                if t >= end { return (standardOffset, false) }
            }
        }
        return (standardOffset, false)
    }

    /// Days since 1970-01-01 of the rule's day in `year`.
    func dayStart(_ day: Rule.Day, year: Int) -> Int {
        let jan1 = CivilTime.daysFromCivil(year: year, month: 1, day: 1)
        switch day {
        case .julianNoLeap(let n):
            // Day n counts as if February had 28 days.
            return jan1 + n - 1 + (CivilTime.isLeapYear(year) && n >= 60 ? 1 : 0)
        case .zeroBased(let n):
            return jan1 + n
        case .monthWeekDay(let m, let w, let d):
            let first = CivilTime.daysFromCivil(year: year, month: m, day: 1)
            let firstWeekday = CivilTime.weekday(daysSinceEpoch: first)
            var day = first + (d - firstWeekday + 7) % 7 + (w - 1) * 7
            let monthEnd = first + CivilTime.daysInMonth(year: year, month: m)
            while day >= monthEnd { day -= 7 }
            return day
        }
    }

    struct Scanner {
        var b: [UInt8]
        var i = 0
        init(_ b: [UInt8]) { self.b = b }
        var atEnd: Bool { i >= b.count }
        var peek: UInt8? { i < b.count ? b[i] : nil }
        mutating func eat(_ c: Character) -> Bool {
            guard let p = peek, p == c.asciiValue! else { return false }
            i += 1
            return true
        }
        mutating func name() -> String? {
            let start = i
            if eat("<") {
                while let c = peek, c != UInt8(ascii: ">") { i += 1 }
                guard eat(">") else { return nil }
                return String(decoding: b[(start + 1)..<(i - 1)], as: UTF8.self)
            }
            while let c = peek, (c | 0x20) >= UInt8(ascii: "a"), (c | 0x20) <= UInt8(ascii: "z") { i += 1 }
            return i - start >= 3 ? String(decoding: b[start..<i], as: UTF8.self) : nil
        }
        mutating func number() -> Int? {
            let start = i
            var v = 0
            while let c = peek, c >= 48, c <= 57 { v = v * 10 + Int(c - 48); i += 1 }
            return i > start ? v : nil
        }
        /// `[+-]hh[:mm[:ss]]` in seconds.
        mutating func offset() -> Int? {
            var sign = 1
            if eat("-") { sign = -1 } else { _ = eat("+") }
            guard let h = number(), h <= 167 else { return nil }
            var total = h * 3600
            if eat(":") {
                guard let m = number(), m < 60 else { return nil }
                total += m * 60
                if eat(":") {
                    guard let s = number(), s < 60 else { return nil }
                    total += s
                }
            }
            return sign * total
        }
        mutating func rule() -> Rule? {
            let day: Rule.Day
            if eat("J") {
                guard let n = number(), (1...365).contains(n) else { return nil }
                day = .julianNoLeap(n)
            } else if eat("M") {
                guard let m = number(), (1...12).contains(m), eat("."), let w = number(), (1...5).contains(w),
                      eat("."), let d = number(), (0...6).contains(d) else { return nil }
                day = .monthWeekDay(month: m, week: w, weekday: d)
            } else {
                guard let n = number(), (0...365).contains(n) else { return nil }
                day = .zeroBased(n)
            }
            var time = 7200
            if eat("/") {
                guard let t = offset() else { return nil }
                time = t
            }
            return Rule(day: day, time: time)
        }
    }
}
