import KLCore

/// A cron schedule: five fields (minute, hour, day of month, month, day of
/// week) plus an optional trailing IANA time zone, with the extensions of the
/// Ruby `fugit` gem (1.5) that the original service relied on.
///
/// Field syntax: `*`, `?` (day fields), numbers, names (`jan`…`dec`,
/// `sun`…`sat`), ranges `a-b` (wrapping, e.g. `fri-mon`), steps `*/s`, `a-b/s`
/// and `a/s`, comma lists; day of month `L` (last day) and `-N` (N-th day from
/// the end, `-1` = `L`); day of week `D#N` (N-th weekday D of the month,
/// N 1–5), `D#-1`/`D#L`/`DL` (last weekday D); weekday 7 is Sunday; macros
/// `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`,
/// `@hourly`. When both day fields are restricted (not `*`/`?`), a day
/// matches if either matches (Vixie cron and fugit).
///
/// Times are civil times in the zone (UTC without one). DST: a local time
/// skipped by spring-forward does not fire that day; a local time repeated by
/// fall-back fires once, at its first occurrence (fugit fires twice).
public struct CronExpression: Sendable, Equatable {
    public var text: String
    public var zone: TimeZoneRules
    var minutes: UInt64 = 0
    var hours: UInt64 = 0
    /// Bits 1...31.
    var monthDays: UInt64 = 0
    /// Bit n: the n-th day counted from the end of the month (1 = last).
    var monthDaysFromEnd: UInt64 = 0
    /// Bits 1...12.
    var months: UInt64 = 0
    /// Bits 0...6 (0 = Sunday).
    var weekdays: UInt64 = 0
    /// (weekday, n): n 1...5, or -1 for the last one in the month.
    var nthWeekdays: [NthWeekday] = []
    var monthDaysRestricted = false
    var weekdaysRestricted = false

    struct NthWeekday: Sendable, Equatable {
        var weekday: Int
        var n: Int
    }

    static let fieldNames = ["minute", "hour", "day of month", "month", "day of week"]
    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses `text`, loading its zone from `zones`.
    ///
    /// - Throws: `.invalidCron` naming the bad field, or `.unknownZone`.
    public static func parse(_ text: String, zones: TimeZoneDatabase) throws(PagerError) -> CronExpression {
        var tokens = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard !tokens.isEmpty else { throw PagerError(.invalidCron, "the cron expression is empty: write five fields such as '55 6 * * 2#1 America/Los_Angeles'") }
        if tokens[0].hasPrefix("@") {
            let expanded: [String]
            switch tokens[0].lowercased() {
            case "@yearly", "@annually": expanded = ["0", "0", "1", "1", "*"]
            case "@monthly": expanded = ["0", "0", "1", "*", "*"]
            case "@weekly": expanded = ["0", "0", "*", "*", "0"]
            case "@daily", "@midnight": expanded = ["0", "0", "*", "*", "*"]
            case "@hourly": expanded = ["0", "*", "*", "*", "*"]
            default:
                throw PagerError(.invalidCron, "invalid cron expression '\(text)': unknown macro '\(tokens[0])'; use @yearly, @monthly, @weekly, @daily or @hourly")
            }
            tokens = expanded + tokens.dropFirst()
        }
        var zone = TimeZoneRules.utc
        if tokens.count == 6 {
            zone = try zones.load(tokens[5])
        } else if tokens.count != 5 {
            throw PagerError(.invalidCron, "invalid cron expression '\(text)': expected 5 fields (minute hour day-of-month month day-of-week) and an optional time zone, got \(tokens.count) words")
        }
        var e = CronExpression(text: text, zone: zone)
        for (index, field) in tokens.prefix(5).enumerated() {
            do throws(FieldError) {
                try e.parseField(index, field)
            } catch {
                throw PagerError(.invalidCron, "invalid cron expression '\(text)': field \(index + 1) (\(fieldNames[index])) '\(field)': \(error.reason)")
            }
        }
        return e
    }

    struct FieldError: Error { var reason: String }

    mutating func parseField(_ index: Int, _ field: String) throws(FieldError) {
        let (lo, hi): (Int, Int) = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)][index]
        let names = index == 3 ? Self.monthNames : index == 4 ? Self.dayNames : []
        let nameBase = index == 3 ? 1 : 0
        var bits: UInt64 = 0
        let isStar = field == "*" || (field == "?" && (index == 2 || index == 4))
        for item in field.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            guard !item.isEmpty else { throw FieldError(reason: "empty list item") }
            let lower = item.lowercased()
            // Day-of-month extensions: L and -N.
            if index == 2, lower == "l" { monthDaysFromEnd |= 1 << 1; continue }
            if index == 2, lower.hasPrefix("-"), let n = Int(lower.dropFirst()) {
                guard (1...31).contains(n) else { throw FieldError(reason: "-\(n) is out of range -1 to -31") }
                monthDaysFromEnd |= 1 << UInt64(n)
                continue
            }
            // Day-of-week extensions: D#N, D#-1, D#L, DL.
            if index == 4, lower.contains("#") || (lower.count > 1 && lower.hasSuffix("l")) {
                let parts = lower.hasSuffix("l") && !lower.contains("#")
                    ? [String(lower.dropLast()), "-1"]
                    : lower.split(separator: "#", omittingEmptySubsequences: false).map(String.init)
                guard parts.count == 2 else { throw FieldError(reason: "write the N-th weekday as D#N, e.g. 2#1 for the first Tuesday") }
                let day = try value(parts[0], lo: 0, hi: 7, names: names, nameBase: 0) % 7
                let n = parts[1] == "l" ? -1 : Int(parts[1])
                guard let n, (1...5).contains(n) || n == -1 else {
                    throw FieldError(reason: "'#\(parts[1])' must be 1 to 5, -1 or L (the last one)")
                }
                nthWeekdays.append(NthWeekday(weekday: day, n: n))
                continue
            }
            var rangePart = lower
            var step = 1
            var explicitStep = false
            if let slash = lower.firstIndex(of: "/") {
                rangePart = String(lower[..<slash])
                guard let s = Int(lower[lower.index(after: slash)...]), s >= 1, s <= hi - lo + 1 else {
                    throw FieldError(reason: "step '\(lower[lower.index(after: slash)...])' must be a number from 1 to \(hi - lo + 1)")
                }
                step = s
                explicitStep = true
            }
            var from: Int, to: Int
            if rangePart == "*" || (rangePart == "?" && (index == 2 || index == 4)) {
                (from, to) = (lo, index == 4 ? 6 : hi)
            } else if let dash = rangePart.firstIndex(of: "-"), dash != rangePart.startIndex {
                from = try value(String(rangePart[..<dash]), lo: lo, hi: hi, names: names, nameBase: nameBase)
                to = try value(String(rangePart[rangePart.index(after: dash)...]), lo: lo, hi: hi, names: names, nameBase: nameBase)
            } else {
                from = try value(rangePart, lo: lo, hi: hi, names: names, nameBase: nameBase)
                to = explicitStep ? (index == 4 ? 6 : hi) : from
            }
            // Ranges may wrap (fri-mon, 22-2): walk forward modulo the field.
            let width = (index == 4 ? 7 : hi - lo + 1)
            if index == 4 { from %= 7; to = to == 7 && from != 0 ? 0 : to % 7 }
            if index == 4, from == 0, to == 0, rangePart.contains("-") { to = 6 }   // 0-7 / sun-sun: whole week
            let count = (to - from + width) % width + 1
            var k = 0
            while k < count {
                let v = (from - lo + k) % width + lo
                bits |= 1 << UInt64(v)
                k += step
            }
        }
        switch index {
        case 0: minutes = bits
        case 1: hours = bits
        case 2: monthDays = bits; monthDaysRestricted = !isStar
        case 3: months = bits
        default: weekdays = bits; weekdaysRestricted = !isStar
        }
    }

    func value(_ text: String, lo: Int, hi: Int, names: [String], nameBase: Int) throws(FieldError) -> Int {
        if let i = names.firstIndex(of: text) { return i + nameBase }
        guard let v = Int(text), text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            let hint = names.isEmpty ? "a number from \(lo) to \(hi)" : "a number from \(lo) to \(hi) or a name (\(names.prefix(3).joined(separator: ", "))…)"
            throw FieldError(reason: "'\(text)' is not \(hint)")
        }
        guard v >= lo, v <= hi else { throw FieldError(reason: "\(v) is out of range \(lo)-\(hi)") }
        return v
    }

    /// Whether the civil date (days since 1970-01-01) is a firing day.
    func matchesDay(_ days: Int) -> Bool {
        let (y, m, d) = CivilTime.civilFromDays(days)
        guard months & (1 << UInt64(m)) != 0 else { return false }
        let monthLength = CivilTime.daysInMonth(year: y, month: m)
        let domMatch = monthDays & (1 << UInt64(d)) != 0 || monthDaysFromEnd & (1 << UInt64(monthLength - d + 1)) != 0
        let wd = CivilTime.weekday(daysSinceEpoch: days)
        var dowMatch = weekdays & (1 << UInt64(wd)) != 0
        if !dowMatch {
            dowMatch = nthWeekdays.contains { nth in
                nth.weekday == wd && (nth.n > 0 ? (d - 1) / 7 + 1 == nth.n : d + 7 > monthLength)
            }
        }
        if monthDaysRestricted && weekdaysRestricted { return domMatch || dowMatch }
        return domMatch && dowMatch
    }

    /// The first fire time strictly after `after`, or nil when the expression
    /// never fires in the next 30 years (e.g. `0 0 30 2 *`).
    public func next(after: WallTime) -> WallTime? {
        let startDay = CivilYear.days(ofSeconds: after.seconds + Int64(zone.offset(atUTC: after.seconds))) - 1
        var best: Int64? = nil
        var day = startDay
        let lastDay = startDay + 366 * 30
        while day <= lastDay {
            if matchesDay(day) {
                for h in 0..<24 where hours & (1 << UInt64(h)) != 0 {
                    for m in 0..<60 where minutes & (1 << UInt64(m)) != 0 {
                        let local = Int64(day) * 86400 + Int64(h * 3600 + m * 60)
                        // First occurrence only; none inside a gap.
                        guard let first = zone.utcInstants(forLocal: local).first, first > after.seconds else { continue }
                        if best == nil || first < best! { best = first }
                    }
                }
            }
            // One more day after a hit: an offset change at midnight could
            // make the next local day's first time earlier in UTC.
            if let best, day > CivilYear.days(ofSeconds: best + Int64(zone.offset(atUTC: best))) {
                return WallTime(seconds: best)
            }
            day += 1
        }
        return best.map { WallTime(seconds: $0) }
    }

    /// The next `count` fire times after `after`.
    public func fireTimes(after: WallTime, count: Int) -> [WallTime] {
        var out: [WallTime] = []
        var t = after
        while out.count < count, let n = next(after: t) {
            out.append(n)
            t = n
        }
        return out
    }
}

/// Local civil time text with the zone's offset: `2026-12-01T06:55:00-08:00`.
public func formatLocal(_ t: WallTime, in zone: TimeZoneRules) -> String {
    let offset = zone.offset(atUTC: t.seconds)
    var text = RFC3339.format(WallTime(seconds: t.seconds + Int64(offset)))
    text.removeLast()
    if offset == 0 { return text + "Z" }
    let a = abs(offset)
    let hh = a / 3600, mm = a % 3600 / 60
    return text + (offset < 0 ? "-" : "+") + (hh < 10 ? "0" : "") + "\(hh):" + (mm < 10 ? "0" : "") + "\(mm)"
}
