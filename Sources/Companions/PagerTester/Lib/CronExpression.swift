import KLCore

/// A cron schedule: five fields (minute, hour, day of month, month, day of
/// week), optionally led by a seconds field (six fields, as fugit), plus an
/// optional trailing IANA time zone, with the extensions of the Ruby `fugit`
/// gem (1.5) that the original service relied on.
///
/// Field syntax: `*`, `?` (day fields), numbers, names (`jan`…`dec`,
/// `sun`…`sat`), ranges `a-b` (wrapping, e.g. `fri-mon`), steps `*/s`, `a-b/s`
/// and `a/s`, comma lists; day of month `L` (last day) and `-N` (N-th day from
/// the end, `-1` = `L`); day of week `D#N` (N-th weekday D of the month,
/// N 1–5), `D#-1`/`D#L`/`DL` (last weekday D), `D%N` and `D%N+K` (weekday D
/// of every N-th week, counted as fugit does from 2019-01-01 in the zone);
/// weekday 7 is Sunday; macros `@yearly`/`@annually`, `@monthly`, `@weekly`,
/// `@daily`/`@midnight`, `@noon`, `@hourly`. When both day fields are
/// restricted (not `*`/`?`), a day matches if either matches (Vixie cron and
/// fugit).
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
    /// Bits 0...59; only bit 0 without a seconds field.
    var seconds: UInt64 = 1
    /// `D%N+K`: weekday D when (fugit's week number + K) % N == 0.
    var moduloWeekdays: [ModuloWeekday] = []
    /// UTC instant of 2019-01-01T00:00 in the zone (fugit's week origin).
    var weekOrigin: Int64 = 0

    struct ModuloWeekday: Sendable, Equatable {
        var weekday: Int
        var modulo: Int
        var plus: Int
    }

    struct NthWeekday: Sendable, Equatable {
        var weekday: Int
        var n: Int
    }

    static let fieldNames = ["minute", "hour", "day of month", "month", "day of week", "second"]
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
            case "@noon": expanded = ["0", "12", "*", "*", "*"]
            case "@hourly": expanded = ["0", "*", "*", "*", "*"]
            default:
                throw PagerError(.invalidCron, "invalid cron expression '\(text)': unknown macro '\(tokens[0])'; use @yearly, @monthly, @weekly, @daily, @noon or @hourly")
            }
            tokens = expanded + tokens.dropFirst()
        }
        // Six words: seconds + five fields (when the sixth parses as a day
        // of week), else five fields + zone. Seven: seconds, five, zone.
        var hasSeconds = tokens.count == 7
        if tokens.count == 6 {
            var probe = CronExpression(text: text, zone: .utc)
            hasSeconds = (try? probe.parseField(4, tokens[5])) != nil
        }
        var zone = TimeZoneRules.utc
        if tokens.count == 7 || (tokens.count == 6 && !hasSeconds) {
            zone = try zones.load(tokens[tokens.count - 1])
        } else if tokens.count != 5 && tokens.count != 6 {
            throw PagerError(.invalidCron, "invalid cron expression '\(text)': expected 5 fields (minute hour day-of-month month day-of-week), optionally a leading seconds field, and an optional time zone, got \(tokens.count) words")
        }
        var e = CronExpression(text: text, zone: zone)
        let fields = hasSeconds ? Array(tokens[1...5]) : Array(tokens.prefix(5))
        if hasSeconds {
            do throws(FieldError) {
                try e.parseField(5, tokens[0])
            } catch {
                throw PagerError(.invalidCron, "invalid cron expression '\(text)': field 1 (second) '\(tokens[0])': \(error.reason)")
            }
        }
        for (index, field) in fields.enumerated() {
            do throws(FieldError) {
                try e.parseField(index, field)
            } catch {
                let position = index + (hasSeconds ? 2 : 1)
                throw PagerError(.invalidCron, "invalid cron expression '\(text)': field \(position) (\(fieldNames[index])) '\(field)': \(error.reason)")
            }
        }
        if !e.moduloWeekdays.isEmpty {
            let origin = Int64(CivilTime.daysFromCivil(year: 2019, month: 1, day: 1)) * 86400
            e.weekOrigin = zone.utcInstants(forLocal: origin).first ?? (origin - Int64(zone.offset(atUTC: origin)))
        }
        return e
    }

    struct FieldError: Error { var reason: String }

    mutating func parseField(_ index: Int, _ field: String) throws(FieldError) {
        let (lo, hi): (Int, Int) = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7), (0, 59)][index]
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
            // Day-of-week modulo (fugit): D%N, D%N+K.
            if index == 4, let percent = lower.firstIndex(of: "%") {
                let day = try value(String(lower[..<percent]), lo: 0, hi: 7, names: names, nameBase: 0) % 7
                let rest = lower[lower.index(after: percent)...].split(separator: "+", omittingEmptySubsequences: false)
                guard rest.count == 1 || rest.count == 2, let n = Int(rest[0]), (1...99).contains(n),
                      rest.count == 1 || Int(rest[1]).map({ (0...99).contains($0) }) == true,
                      rest.allSatisfy({ $0.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }) else {
                    throw FieldError(reason: "write every N-th week as D%N or D%N+K (N 1 to 99, K 0 to 99), e.g. tue%2")
                }
                moduloWeekdays.append(ModuloWeekday(weekday: day, modulo: n, plus: rest.count == 2 ? Int(rest[1])! : 0))
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
        case 4: weekdays = bits; weekdaysRestricted = !isStar
        default: seconds = bits
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

    /// fugit's week number of a UTC instant: whole weeks since 2019-01-01
    /// 00:00 in the zone, plus one.
    func week(ofInstant u: Int64) -> Int {
        let d = u - weekOrigin
        return Int(d >= 0 ? d / 604_800 : (d - 604_799) / 604_800) + 1
    }

    /// Whether the civil date (days since 1970-01-01) is a firing day. With
    /// `instant` nil, `D%N` entries match on their weekday alone (the week
    /// number needs the instant, as in fugit).
    func matchesDay(_ days: Int, instant: Int64? = nil) -> Bool {
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
        if !dowMatch {
            dowMatch = moduloWeekdays.contains { m in
                guard m.weekday == wd else { return false }
                guard let instant else { return true }
                return ((week(ofInstant: instant) + m.plus) % m.modulo + m.modulo) % m.modulo == 0
            }
        }
        if monthDaysRestricted && weekdaysRestricted { return domMatch || dowMatch }
        return domMatch && dowMatch
    }

    /// The first fire time strictly after `after`, or nil when the expression
    /// never fires in the next 30 years (e.g. `0 0 30 2 *`).
    public func next(after: WallTime) -> WallTime? {
        let afterLocal = after.seconds + Int64(zone.offset(atUTC: after.seconds))
        let startDay = CivilTime.days(ofSeconds: afterLocal) - 1
        // Local times this far before `after` cannot be after it in UTC
        // (offsets differ by less than a day).
        let slack: Int64 = 26 * 3600
        var best: Int64? = nil
        var day = startDay
        let lastDay = startDay + 366 * 30
        while day <= lastDay {
            if matchesDay(day) {
                dayLoop: for h in 0..<24 where hours & (1 << UInt64(h)) != 0 {
                    let hourStart = Int64(day) * 86400 + Int64(h * 3600)
                    if hourStart + 3600 + slack <= afterLocal { continue }
                    for m in 0..<60 where minutes & (1 << UInt64(m)) != 0 {
                        let minuteStart = hourStart + Int64(m * 60)
                        if minuteStart + 60 + slack <= afterLocal { continue }
                        for sec in 0..<60 where seconds & (1 << UInt64(sec)) != 0 {
                            // First occurrence only; none inside a gap.
                            guard let first = zone.utcInstants(forLocal: minuteStart + Int64(sec)).first, first > after.seconds else { continue }
                            if !moduloWeekdays.isEmpty && !matchesDay(day, instant: first) { continue }
                            if best == nil || first < best! { best = first }
                            // Local times map to UTC in order (first
                            // occurrences only), so this is the day's earliest.
                            break dayLoop
                        }
                    }
                }
            }
            // One more day after a hit: an offset change at midnight could
            // make the next local day's first time earlier in UTC.
            if let best, day > CivilTime.days(ofSeconds: best + Int64(zone.offset(atUTC: best))) {
                return WallTime(seconds: best)
            }
            day += 1
        }
        return best.map { WallTime(seconds: $0) }
    }

    /// A fire time that does not exist: its local time falls into a
    /// daylight-saving gap (spring-forward) on that day.
    public struct GapTime: Sendable, Equatable {
        /// Local civil time, e.g. `2027-03-14T02:30:00`.
        public var localText: String
    }

    /// Local fire times in `(after, after + within]` that fall into a
    /// daylight-saving gap (the first per day; at most 20).
    public func gapFireTimes(after: WallTime, within: Duration) -> [GapTime] {
        var out: [GapTime] = []
        let endSeconds = after.seconds + within.components.seconds
        let firstDay = CivilTime.days(ofSeconds: after.seconds) - 1
        let lastDay = CivilTime.days(ofSeconds: endSeconds) + 1
        var day = firstDay
        while day <= lastDay, out.count < 20 {
            defer { day += 1 }
            let dayStart = Int64(day) * 86400
            // Only days with an offset change can have a gap.
            guard zone.offset(atUTC: dayStart - 50400) != zone.offset(atUTC: dayStart + 86400 + 50400), matchesDay(day) else { continue }
            dayLoop: for h in 0..<24 where hours & (1 << UInt64(h)) != 0 {
                for m in 0..<60 where minutes & (1 << UInt64(m)) != 0 {
                    for sec in 0..<60 where seconds & (1 << UInt64(sec)) != 0 {
                        let local = dayStart + Int64(h * 3600 + m * 60 + sec)
                        guard zone.utcInstants(forLocal: local).isEmpty else { continue }
                        let approx = local - Int64(zone.offset(atUTC: dayStart - 50400))
                        guard approx > after.seconds, approx <= endSeconds else { continue }
                        if !moduloWeekdays.isEmpty && !matchesDay(day, instant: approx) { continue }
                        var text = RFC3339.format(WallTime(seconds: local))
                        text.removeLast()
                        out.append(GapTime(localText: text))
                        break dayLoop
                    }
                }
            }
        }
        return out
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
