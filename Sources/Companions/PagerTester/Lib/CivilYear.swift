import KLCore

/// Thin calendar helpers over KLCore's `CivilTime`, in days since 1970-01-01.
enum CivilYear {
    static func daysFromCivil(_ y: Int, _ m: Int, _ d: Int) -> Int { CivilTime.daysFromCivil(year: y, month: m, day: d) }
    static func isLeap(_ y: Int) -> Bool { CivilTime.isLeapYear(y) }
    static func daysInMonth(_ y: Int, _ m: Int) -> Int { CivilTime.daysInMonth(year: y, month: m) }
    static func weekday(_ days: Int) -> Int { CivilTime.weekday(daysSinceEpoch: days) }
    /// Floor division of seconds by a day.
    static func days(ofSeconds s: Int64) -> Int { Int(s >= 0 ? s / 86400 : (s - 86399) / 86400) }
    /// The calendar year of a seconds-since-epoch value.
    static func of(_ s: Int64) -> Int { CivilTime.civilFromDays(days(ofSeconds: s)).year }
}
