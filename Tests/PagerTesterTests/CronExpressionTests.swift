import KLCore
import Testing
@testable import PagerTesterKit

/// The system zone database (tzdata, installed by scripts/test.d/50-pager.deps).
let zones = TimeZoneDatabase(directory: "/usr/share/zoneinfo")

struct CronCase: Sendable, CustomStringConvertible {
    var name: String
    var expression: String
    var from: String
    var expected: [String]
    var description: String { name }
}

let cronCases: [CronCase] = [
    CronCase(name: "first Tuesday in Los Angeles across spring-forward",
             expression: "55 6 * * 2#1 America/Los_Angeles", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-06T14:55:00Z", "2026-02-03T14:55:00Z", "2026-03-03T14:55:00Z",
                        "2026-04-07T13:55:00Z", "2026-05-05T13:55:00Z"]),
    CronCase(name: "first Tuesday in Los Angeles across fall-back",
             expression: "55 6 * * tue#1 America/Los_Angeles", from: "2026-10-01T00:00:00Z",
             expected: ["2026-10-06T13:55:00Z", "2026-11-03T14:55:00Z", "2026-12-01T14:55:00Z"]),
    CronCase(name: "02:30 New York is skipped on the spring-forward day",
             expression: "30 2 * * * America/New_York", from: "2026-03-07T00:00:00Z",
             expected: ["2026-03-07T07:30:00Z", "2026-03-09T06:30:00Z", "2026-03-10T06:30:00Z"]),
    CronCase(name: "01:30 New York fires once, at the first occurrence, on the fall-back day",
             expression: "30 1 * * * America/New_York", from: "2026-10-31T00:00:00Z",
             expected: ["2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]),
    CronCase(name: "01:30 New York does not fire at the second occurrence",
             expression: "30 1 * * * America/New_York", from: "2026-11-01T05:45:00Z",
             expected: ["2026-11-02T06:30:00Z"]),
    CronCase(name: "every 20 minutes in the repeated New York hour fires only in the first pass",
             expression: "*/20 1 * * * America/New_York", from: "2026-11-01T05:30:00Z",
             expected: ["2026-11-01T05:40:00Z", "2026-11-02T06:00:00Z"]),
    CronCase(name: "Berlin weekdays across the EU spring-forward",
             expression: "0 9 * * mon-fri Europe/Berlin", from: "2026-03-27T00:00:00Z",
             expected: ["2026-03-27T08:00:00Z", "2026-03-30T07:00:00Z", "2026-03-31T07:00:00Z"]),
    CronCase(name: "Lord Howe noon across the 30-minute spring-forward",
             expression: "0 12 * * * Australia/Lord_Howe", from: "2026-10-03T00:00:00Z",
             expected: ["2026-10-03T01:30:00Z", "2026-10-04T01:00:00Z", "2026-10-05T01:00:00Z"]),
    CronCase(name: "Lord Howe 02:15 is skipped in the 30-minute gap",
             expression: "15 2 * * * Australia/Lord_Howe", from: "2026-10-02T12:00:00Z",
             expected: ["2026-10-02T15:45:00Z", "2026-10-04T15:15:00Z"]),
    CronCase(name: "Lord Howe 01:45 fires once in the 30-minute overlap",
             expression: "45 1 * * * Australia/Lord_Howe", from: "2026-04-03T12:00:00Z",
             expected: ["2026-04-03T14:45:00Z", "2026-04-04T14:45:00Z", "2026-04-05T15:15:00Z"]),
    CronCase(name: "Los Angeles beyond the TZif table uses the POSIX footer",
             expression: "0 12 1 7 * America/Los_Angeles", from: "2040-01-01T00:00:00Z",
             expected: ["2040-07-01T19:00:00Z"]),
    CronCase(name: "steps, hour range, month and weekday names (UTC)",
             expression: "*/20 9-10 * jan,jul mon", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-05T09:00:00Z", "2026-01-05T09:20:00Z", "2026-01-05T09:40:00Z",
                        "2026-01-05T10:00:00Z", "2026-01-05T10:20:00Z", "2026-01-05T10:40:00Z",
                        "2026-01-12T09:00:00Z"]),
    CronCase(name: "range with step and a start with step",
             expression: "10-30/10,45/5 0 1 1 *", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-01T00:10:00Z", "2026-01-01T00:20:00Z", "2026-01-01T00:30:00Z",
                        "2026-01-01T00:45:00Z", "2026-01-01T00:50:00Z", "2026-01-01T00:55:00Z",
                        "2027-01-01T00:10:00Z"]),
    CronCase(name: "wrapping weekday range fri-mon",
             expression: "0 0 * * fri-mon", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z",
                        "2026-01-05T00:00:00Z", "2026-01-09T00:00:00Z"]),
    CronCase(name: "last day of the month",
             expression: "0 12 L * *", from: "2026-02-01T00:00:00Z",
             expected: ["2026-02-28T12:00:00Z", "2026-03-31T12:00:00Z", "2026-04-30T12:00:00Z"]),
    CronCase(name: "second to last day of the month",
             expression: "0 0 -2 * *", from: "2028-02-01T00:00:00Z",
             expected: ["2028-02-28T00:00:00Z", "2028-03-30T00:00:00Z"]),
    CronCase(name: "last Friday as 5#-1, fri#L and 5L",
             expression: "0 9 * * 5#-1,fri#L,5L", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-30T09:00:00Z", "2026-02-27T09:00:00Z"]),
    CronCase(name: "day of month or day of week when both are restricted",
             expression: "0 8 1 * fri", from: "2026-05-25T00:00:00Z",
             expected: ["2026-05-29T08:00:00Z", "2026-06-01T08:00:00Z", "2026-06-05T08:00:00Z"]),
    CronCase(name: "Sunday as 7",
             expression: "0 0 * * 7", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-04T00:00:00Z"]),
    CronCase(name: "February 29 only in leap years",
             expression: "0 0 29 2 *", from: "2026-01-01T00:00:00Z",
             expected: ["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"]),
    CronCase(name: "@weekly is Sunday midnight",
             expression: "@weekly", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"]),
    CronCase(name: "@daily with a zone",
             expression: "@daily Europe/Berlin", from: "2026-07-01T00:00:00Z",
             expected: ["2026-07-01T22:00:00Z"]),
    CronCase(name: "@hourly, @monthly and @yearly",
             expression: "@hourly", from: "2026-07-01T00:00:00Z",
             expected: ["2026-07-01T01:00:00Z", "2026-07-01T02:00:00Z"]),
    CronCase(name: "@monthly", expression: "@monthly", from: "2026-07-01T00:00:00Z",
             expected: ["2026-08-01T00:00:00Z"]),
    CronCase(name: "@yearly", expression: "@annually", from: "2026-07-01T00:00:00Z",
             expected: ["2027-01-01T00:00:00Z"]),
    CronCase(name: "@noon (fugit)", expression: "@noon", from: "2026-07-01T12:00:00Z",
             expected: ["2026-07-02T12:00:00Z"]),
    CronCase(name: "leading seconds field (fugit, six fields)", expression: "15,45 0 9 * * *", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-01T09:00:15Z", "2026-01-01T09:00:45Z", "2026-01-02T09:00:15Z"]),
    CronCase(name: "seconds, five fields and a zone (seven words)", expression: "30 55 6 * * 2#1 America/Los_Angeles",
             from: "2026-01-01T00:00:00Z", expected: ["2026-01-06T14:55:30Z"]),
    CronCase(name: "six words with a weekday name last are seconds + five fields", expression: "0 0 9 * * mon",
             from: "2026-01-01T00:00:00Z", expected: ["2026-01-05T09:00:00Z"]),
    CronCase(name: "every other Tuesday (fugit tue%2, weeks counted from 2019-01-01)", expression: "0 9 * * tue%2",
             from: "2026-01-01T00:00:00Z", expected: ["2026-01-13T09:00:00Z", "2026-01-27T09:00:00Z", "2026-02-10T09:00:00Z"]),
    CronCase(name: "every other Tuesday, the other weeks (tue%2+1) in Berlin", expression: "0 9 * * tue%2+1 Europe/Berlin",
             from: "2026-01-01T00:00:00Z", expected: ["2026-01-06T08:00:00Z", "2026-01-20T08:00:00Z"]),
    CronCase(name: "every third Monday, or any Friday", expression: "0 9 * * mon%3,fri", from: "2026-01-01T00:00:00Z",
             expected: ["2026-01-02T09:00:00Z", "2026-01-05T09:00:00Z", "2026-01-09T09:00:00Z", "2026-01-16T09:00:00Z"]),
]

@Test("cron fire times", arguments: cronCases)
func cronFireTimes(_ c: CronCase) throws {
    let expression = try CronExpression.parse(c.expression, zones: zones)
    let from = try #require(RFC3339.parse(c.from))
    let times = expression.fireTimes(after: from, count: c.expected.count).map(RFC3339.format)
    #expect(times == c.expected)
}

struct BadCron: Sendable, CustomStringConvertible {
    var expression: String
    var mentions: String
    var code: PagerError.Code = .invalidCron
    var description: String { expression }
}

@Test("invalid cron expressions name the bad field", arguments: [
    BadCron(expression: "61 * * * *", mentions: "field 1 (minute) '61'"),
    BadCron(expression: "* 24 * * *", mentions: "field 2 (hour)"),
    BadCron(expression: "* * 32 * *", mentions: "field 3 (day of month)"),
    BadCron(expression: "* * * foo *", mentions: "field 4 (month) 'foo'"),
    BadCron(expression: "* * * * 2#6", mentions: "field 5 (day of week) '2#6'"),
    BadCron(expression: "*/0 * * * *", mentions: "field 1 (minute) '*/0'"),
    BadCron(expression: "1,,2 * * * *", mentions: "empty list item"),
    BadCron(expression: "* * *", mentions: "expected 5 fields"),
    BadCron(expression: "@often", mentions: "unknown macro"),
    BadCron(expression: "60 0 9 * * *", mentions: "field 1 (second) '60'"),
    BadCron(expression: "0 61 9 * * *", mentions: "field 2 (minute) '61'"),
    BadCron(expression: "0 9 * * tue%0", mentions: "D%N"),
    BadCron(expression: "0 9 * * tue%x", mentions: "D%N"),
    BadCron(expression: "0 9 * * tue%2+", mentions: "D%N"),
    BadCron(expression: "0 0 9 * * * * *", mentions: "got 8 words"),
    BadCron(expression: "", mentions: "empty"),
    BadCron(expression: "0 9 * * * Mars/Olympus_Mons", mentions: "unknown time zone 'Mars/Olympus_Mons'", code: .unknownZone),
    BadCron(expression: "0 9 * * * ../etc/passwd", mentions: "not a time zone name", code: .unknownZone),
])
func cronInvalid(_ c: BadCron) {
    #expect {
        _ = try CronExpression.parse(c.expression, zones: zones)
    } throws: { error in
        guard let e = error as? PagerError else { return false }
        return e.code == c.code && e.description.contains(c.mentions)
    }
}

@Test func cronNeverFiring_returnsNil() throws {
    let e = try CronExpression.parse("0 0 30 2 *", zones: zones)
    #expect(e.next(after: WallTime(seconds: 0)) == nil)
}

@Test func formatLocal_showsZoneOffset() throws {
    let la = try zones.load("America/Los_Angeles")
    let t = try #require(RFC3339.parse("2026-01-06T14:55:00Z"))
    #expect(formatLocal(t, in: la) == "2026-01-06T06:55:00-08:00")
    let lh = try zones.load("Australia/Lord_Howe")
    #expect(formatLocal(t, in: lh) == "2026-01-07T01:55:00+11:00")
}

@Test func posixFooter_parsesLordHoweAndNegativeTimes() throws {
    let lh = try #require(PosixTZ.parse("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0"))
    #expect(lh.standardOffset == 37800)
    #expect(lh.dst?.offset == 39600)
    let nuuk = try #require(PosixTZ.parse("<-02>2<-01>,M3.5.0/-1,M10.5.0/0"))
    #expect(nuuk.dst?.start.time == -3600)
    // 2026-07-01 is in Nuuk's summer time (-01:00).
    #expect(nuuk.offset(atUTC: 1_782_864_000).offset == -3600)
    #expect(PosixTZ.parse("EST5EDT,M3.2.0/2:00:00,M11.1.0/2:00:00")?.dst?.end.time == 7200)
    #expect(PosixTZ.parse("X5") == nil)
}

@Test func gapFireTimes_findTheSkippedSecondSundayOfMarch() throws {
    let e = try CronExpression.parse("30 2 * * 0#2 America/New_York", zones: zones)
    let gaps = e.gapFireTimes(after: try #require(RFC3339.parse("2027-01-01T00:00:00Z")), within: .seconds(366 * 86400))
    #expect(gaps == [CronExpression.GapTime(localText: "2027-03-14T02:30:00")])
    // Its next fire times indeed skip March.
    #expect(e.fireTimes(after: try #require(RFC3339.parse("2027-02-15T00:00:00Z")), count: 1).map(RFC3339.format) == ["2027-04-11T06:30:00Z"])
}

@Test func gapFireTimes_noneForTimesOutsideTheGap_orZonesWithoutDST() throws {
    let from = try #require(RFC3339.parse("2027-01-01T00:00:00Z"))
    #expect(try CronExpression.parse("30 3 * * * America/New_York", zones: zones).gapFireTimes(after: from, within: .seconds(366 * 86400)).isEmpty)
    #expect(try CronExpression.parse("30 2 * * * Asia/Tokyo", zones: zones).gapFireTimes(after: from, within: .seconds(366 * 86400)).isEmpty)
    // Every day at 02:30 in New York: one gap a year (March 14, 2027).
    let daily = try CronExpression.parse("30 2 * * * America/New_York", zones: zones).gapFireTimes(after: from, within: .seconds(366 * 86400))
    #expect(daily.map(\.localText) == ["2027-03-14T02:30:00"])
}
