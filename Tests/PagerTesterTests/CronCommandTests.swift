import Testing

@Suite(.timeLimit(.minutes(1)))
struct CronCommandTests {
    @Test func cronCommand_printsNextFireTimesInUTC() throws {
        let r = try BinaryRunner.pagerTester(["cron", "55 6 * * 2#1 America/Los_Angeles",
                                              "--from", "2026-01-01T00:00:00Z", "--count", "3"])
        #expect(r.status == 0)
        #expect(r.stdout == "2026-01-06T14:55:00Z\n2026-02-03T14:55:00Z\n2026-03-03T14:55:00Z\n")
    }

    @Test func cronCommand_defaultsToFiveTimesFromNow() throws {
        let r = try BinaryRunner.pagerTester(["cron", "@hourly"])
        #expect(r.status == 0)
        #expect(r.stdout.split(separator: "\n").count == 5)
        #expect(r.stdout.split(separator: "\n").allSatisfy { $0.hasSuffix(":00:00Z") })
    }

    @Test func cronCommand_invalidField_exits2NamingTheField() throws {
        let r = try BinaryRunner.pagerTester(["cron", "55 6 * * 2#9"])
        #expect(r.status == 2)
        #expect(r.stdout.isEmpty)
        #expect(r.stderr.contains("field 5 (day of week) '2#9'"))
    }

    @Test func cronCommand_unknownZone_exits2() throws {
        let r = try BinaryRunner.pagerTester(["cron", "0 9 * * * Europe/Atlantis"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("unknown time zone 'Europe/Atlantis'"))
    }

    @Test func cronCommand_usesTZDIR() throws {
        let r = try BinaryRunner.pagerTester(["cron", "0 9 * * * America/New_York", "--from", "2026-01-01T00:00:00Z"],
                                             environment: ["TZDIR": "/nonexistent"])
        #expect(r.status == 2)
        #expect(r.stderr.contains("/nonexistent/America/New_York"))
    }

    @Test func cronCommand_badFromOrCount_exits2() throws {
        #expect(try BinaryRunner.pagerTester(["cron", "@daily", "--from", "yesterday"]).status == 2)
        #expect(try BinaryRunner.pagerTester(["cron", "@daily", "--count", "0"]).status == 2)
        #expect(try BinaryRunner.pagerTester(["nonsense"]).status == 2)
    }

    @Test func cronCommand_warnsAboutAFireTimeInADSTGap() throws {
        let r = try BinaryRunner.pagerTester(["cron", "30 2 * * 0#2 America/New_York", "--from", "2027-01-01T00:00:00Z", "--count", "3"])
        #expect(r.status == 0)
        #expect(r.stdout == "2027-01-10T07:30:00Z\n2027-02-14T07:30:00Z\n2027-04-11T06:30:00Z\n")
        #expect(r.stderr.contains("\"msg\":\"fire time falls into a daylight-saving gap\""))
        #expect(r.stderr.contains("\"local_time\":\"2027-03-14T02:30:00\""))
    }
}
