import KLCore
import KLSystem
import KLTestSupport
import Testing
@testable import PagerTesterKit

@Suite(.timeLimit(.minutes(1)))
struct SchedulerTests {
    func scheduler(_ fake: FakePagerDuty, _ people: [Person], start: String, sink: MemorySink,
                   configure: (inout SchedulerOptions) -> Void = { _ in }) throws -> (PageRunner, VirtualWallClock) {
        let clock = VirtualWallClock(start: time(start))
        var options = SchedulerOptions()
        configure(&options)
        return (PageRunner(people: people, client: try fake.pagerClient(clock: clock, sink: sink), options: options), clock)
    }

    @Test func dueJob_postsExactlyOnce() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], start: "2026-01-01T08:00:00Z", sink: sink)
        s.run(until: time("2026-01-01T10:00:00Z"))
        #expect(try fake.requests("POST", "/incidents").count == 1)
        let created = sink.messages("created test incident")
        try #require(created.count == 1)
        #expect(created[0]["incident.url"]?.stringValue == "https://acme.pagerduty.com/incidents/Q0001")
        #expect(created[0]["fire_time"]?.stringValue == "2026-01-01T09:00:00Z")
        #expect(created[0]["ts"]?.stringValue == "2026-01-01T09:00:00.000Z")
        #expect(!sink.all.joined().contains(testToken))
    }

    /// With an incident_key a failed create is safe to retry: Jane gets her
    /// page 30 s later instead of not at all.
    @Test func serverError_isRetriedAfter30s_andTheNextPersonIsPagedMeanwhile() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "method": "POST", "status": 500, "body": ["error": ["message": "Internal Server Error", "code": 2001]]]]])
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *"), try person("Bob", "PBOB", "0 9 * * *")],
                                   start: "2026-01-01T08:00:00Z", sink: sink)
        s.run(until: time("2026-01-01T09:30:00Z"))
        let retry = sink.messages("test page failed, will retry")
        try #require(retry.count == 1)
        #expect(retry[0]["person.name"]?.stringValue == "Jane")
        #expect(retry[0]["http.status"]?.intValue == 500)
        #expect(retry[0]["http.body"]?.stringValue?.contains("Internal Server Error") == true)
        let created = sink.messages("created test incident")
        #expect(created.map { $0["person.name"]?.stringValue } == ["Bob", "Jane"])
        #expect(created.last?["ts"]?.stringValue == "2026-01-01T09:00:30.000Z")
        #expect(try fake.requests("POST", "/incidents").count == 3)
        // The retry looked the key up first (the 500 might have created it).
        #expect(try fake.requests("GET", "/incidents?incident_key=pager-tester%2FPJANE%2F2026-01-01T09%3A00%3A00Z").count == 1)
        #expect(s.pagesSent == 2 && s.pagesFailed == 0)
    }

    @Test func serverErrorEveryTime_givesUpAfterThreeAttempts_withStatusAndBody() throws {
        let fake = try FakePagerDuty()
        let failure: JSON = ["path": "/incidents", "method": "POST", "status": 503, "body": ["error": ["message": "Service Unavailable"]]]
        try fake.control(["script": [failure, failure, failure]])
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], start: "2026-01-01T08:00:00Z", sink: sink)
        s.run(until: time("2026-01-01T09:30:00Z"))
        let failed = sink.messages("test page failed")
        try #require(failed.count == 1)
        #expect(failed[0]["level"]?.stringValue == "error")
        #expect(failed[0]["http.status"]?.intValue == 503)
        #expect(failed[0]["attempt"]?.intValue == 3)
        #expect(try fake.requests("POST", "/incidents").count == 3)
        #expect(s.pagesFailed == 1)
    }

    @Test func clientError_isNotRetried() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "status": 403, "body": ["error": ["message": "Access Denied", "code": 2010]]]]])
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], start: "2026-01-01T08:00:00Z", sink: sink)
        s.run(until: time("2026-01-01T09:30:00Z"))
        #expect(sink.messages("test page failed").first?["http.status"]?.intValue == 403)
        #expect(try fake.requests("POST", "/incidents").count == 1)
        #expect(s.pagesFailed == 1)
    }

    @Test func hungServer_hitsTheTimeout_andIsRetried() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "delay": 3, "status": 201]]])
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *"), try person("Bob", "PBOB", "1 9 * * *")],
                                   start: "2026-01-01T08:59:00Z", sink: sink)
        s.client.requestTimeout = .milliseconds(300)
        s.run(until: time("2026-01-01T09:05:00Z"))
        let failed = sink.messages("test page failed, will retry")
        try #require(failed.count == 1)
        #expect(failed[0]["person.name"]?.stringValue == "Jane")
        #expect(failed[0]["error"]?.stringValue?.contains("did not answer within 300ms") == true)
        #expect(sink.messages("created test incident").map { $0["person.name"]?.stringValue } == ["Jane", "Bob"])
    }

    @Test func startUp_logsEachPersonsNextPage() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Jane", "PJANE", "55 6 * * 2#1 America/Los_Angeles")],
                                   start: "2026-01-01T00:00:00Z", sink: sink)
        s.run(until: time("2026-01-01T00:00:01Z"))
        let next = sink.messages("next page")
        try #require(next.count == 1)
        #expect(next[0]["fire_time"]?.stringValue == "2026-01-06T14:55:00Z")
        #expect(next[0]["fire_time_local"]?.stringValue == "2026-01-06T06:55:00-08:00 America/Los_Angeles")
    }

    @Test func rateLimited_inTheScheduler_requeuesFor60sOnTheInjectedClock() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "status": 429]]])
        let sink = MemorySink()
        var (s, clock) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], start: "2026-01-01T08:59:59Z", sink: sink)
        s.run(until: time("2026-01-01T09:10:00Z"))
        #expect(clock.sleeps.allSatisfy { $0 <= .seconds(30) })
        #expect(try fake.requests("POST", "/incidents").count == 2)
        let created = sink.messages("created test incident")
        #expect(created.first?["ts"]?.stringValue == "2026-01-01T09:01:00.000Z")
        #expect(sink.messages("rate limited by PagerDuty, page stays queued").first?["wait_seconds"]?.intValue == 60)
        #expect(s.metrics.rateLimitWaits == 1)
    }

    @Test func fireTimeFarInThePast_afterAClockJump_isSkippedAsMissed() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        var (s, clock) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], start: "2026-01-01T08:59:00Z", sink: sink)
        clock.advance(by: .seconds(2 * 3600))   // suspended or wall clock stepped forward
        s.step()
        #expect(try fake.requests("POST", "/incidents").isEmpty)
        let missed = sink.messages("missed page")
        try #require(missed.count == 1)
        #expect(missed[0]["level"]?.stringValue == "error")
        #expect(missed[0]["fire_times"] == ["2026-01-01T09:00:00Z"])
        #expect(s.metrics.exposition().contains("pager_tester_pages_skipped_total{person_id=\"PJANE\",name=\"Jane\",reason=\"late\"} 1"))
        s.run(until: time("2026-01-02T09:05:00Z"))
        #expect(try fake.requests("POST", "/incidents").count == 1)
    }

    /// Ten minutes suspended with an every-minute schedule: the fire times
    /// within --missed-grace collapse into one page, the older ones are
    /// skipped; every skip is counted, none is silent.
    @Test func manyMissedFireTimes_giveNoBurst() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        var (s, clock) = try scheduler(fake, [try person("Jane", "PJANE", "* * * * *")], start: "2026-01-01T09:00:30Z", sink: sink)
        clock.advance(by: .seconds(600))
        s.run(until: time("2026-01-01T09:11:10Z"))
        let posts = try fake.requests("POST", "/incidents")
        #expect(posts.count == 2)   // 09:10 (the latest in grace) and 09:11
        // Replayed 08:55-09:00 and 09:01-09:05 are too late (11), 09:06-09:09 coalesced (4).
        #expect(s.pagesMissed == 15)
        #expect(sink.messages("missed page").allSatisfy { $0["level"]?.stringValue == "error" })
    }

    @Test func lateWithinGrace_stillPages() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        var (s, clock) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], start: "2026-01-01T08:59:00Z", sink: sink)
        clock.advance(by: .seconds(180))
        s.step()
        #expect(try fake.requests("POST", "/incidents").count == 1)
    }

    @Test func wallClockJumpBackward_neverRepeatsAPage() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        var (s, clock) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], start: "2026-01-01T08:59:00Z", sink: sink)
        s.run(until: time("2026-01-01T09:01:00Z"))
        clock.advance(by: .seconds(-3600))
        s.run(until: time("2026-01-01T09:30:00Z"))
        #expect(try fake.requests("POST", "/incidents").count == 1)
        #expect(s.scheduler.nextFire[0] == time("2026-01-02T09:00:00Z"))
    }

    @Test func jobsRunOneAtATime_inFireTimeOrder() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("A", "PA", "5 9 * * *"), try person("B", "PB", "0 9 * * *"),
                                          try person("C", "PC", "0 9 * * *")], start: "2026-01-01T08:00:00Z", sink: sink)
        s.run(until: time("2026-01-01T10:00:00Z"))
        let posts = try fake.requests("POST", "/incidents")
        let assignees = try posts.map { try JSON.parse($0["body"]?.stringValue ?? "")[path: "incident", "assignments"]?[0]?[path: "assignee", "id"]?.stringValue }
        #expect(assignees == ["PB", "PC", "PA"])
        let times = posts.compactMap { $0["time"]?.doubleValue }
        #expect(times == times.sorted())
    }

    @Test func verification_logsAVerdictPerPerson() throws {
        let fake = try FakePagerDuty()
        try fake.control(["behavior": ["PPAGED": "notify", "PACK": "ack", "PNONE": "none"]])
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Paged", "PPAGED", "0 9 * * *"), try person("Acked", "PACK", "0 9 * * *"),
                                          try person("Silent", "PNONE", "0 9 * * *")],
                                   start: "2026-01-01T08:00:00Z", sink: sink) { $0.verifyAfter = .seconds(120) }
        s.run(until: time("2026-01-01T10:00:00Z"))
        let verdicts = sink.messages("page verdict")
        let byName = Dictionary(uniqueKeysWithValues: verdicts.map { ($0["person.name"]?.stringValue ?? "", $0) })
        #expect(byName["Paged"]?["verdict"]?.stringValue == "delivered")
        #expect(byName["Paged"]?["notification.channels"] == ["sms_notification"])
        #expect(byName["Paged"]?["notifications"] == [["type": "sms_notification", "status": "success", "address": "…0100"]])
        #expect(byName["Acked"]?["verdict"]?.stringValue == "acknowledged")
        #expect(byName["Silent"]?["verdict"]?.stringValue == "no-notification")
        #expect(byName["Silent"]?["level"]?.stringValue == "error")
        #expect(byName["Silent"]?["attempt"]?.intValue == 3)
        #expect(verdicts.count == 3)
        #expect(byName["Paged"]?["ts"]?.stringValue == "2026-01-01T09:02:00.000Z")
        #expect(try fake.requests("GET", "/incidents/").filter { ($0["path"]?.stringValue ?? "").contains("log_entries") }.count == 5)
    }

    /// Acknowledged is not resolved: both are resolved, and the verdict still
    /// sees the acknowledgement in the log.
    @Test func resolveAfter_resolvesIncidentsThePersonDidNotResolve() throws {
        let fake = try FakePagerDuty()
        try fake.control(["behavior": ["PPAGED": "notify", "PACK": "ack"]])
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Paged", "PPAGED", "0 9 * * *"), try person("Acked", "PACK", "0 9 * * *")],
                                   start: "2026-01-01T08:00:00Z", sink: sink) {
            $0.resolveAfter = .seconds(600)
            $0.verifyAfter = .seconds(900)
        }
        s.run(until: time("2026-01-01T10:00:00Z"))
        let puts = try fake.requests("PUT", "/incidents/")
        #expect(puts.map { $0["path"]?.stringValue } == ["/incidents/Q0001", "/incidents/Q0002"])
        #expect(sink.messages("resolved test incident").count == 2)
        let verdicts = sink.messages("page verdict").map { $0["verdict"]?.stringValue }
        #expect(verdicts == ["delivered", "acknowledged"])
    }

    @Test func dryRun_sendsNothing_andLogsTheRequest() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        var (s, _) = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], start: "2026-01-01T08:00:00Z", sink: sink) {
            $0.dryRun = true
            $0.verifyAfter = .seconds(60)
        }
        s.run(until: time("2026-01-01T10:00:00Z"))
        #expect(try fake.requests().isEmpty)
        let lines = sink.messages("dry run: would create test incident")
        try #require(lines.count == 1)
        #expect(lines[0][path: "http.body", "incident", "assignments"]?[0]?[path: "assignee", "id"]?.stringValue == "PJANE")
    }

    @Test func fromEmailOfATestedPerson_isRefusedAtStartUp() throws {
        let fake = try FakePagerDuty()
        try fake.control(["emails": ["PBOB": .string(testFrom.uppercased())]])
        let client = try fake.pagerClient(clock: VirtualWallClock(start: time("2026-01-01T00:00:00Z")), sink: MemorySink())
        #expect {
            try FromCheck.remote(people: [try person("Jane", "PJANE", "@daily"), try person("Bob", "PBOB", "@daily")], client: client)
        } throws: { error in
            (error as? PagerError)?.code == .invalidConfig && "\(error)".contains("Bob (PBOB)")
        }
        #expect(try fake.requests("POST", "/incidents").isEmpty)
    }
}

@Suite struct VerdictTests {
    func notify(_ user: String, _ type: String, _ status: String?) -> JSON {
        var n: [(String, JSON)] = [("type", .string(type)), ("address", "+15555550100")]
        if let status { n.append(("status", .string(status))) }
        return ["type": "notify_log_entry", "user": ["id": .string(user), "type": "user_reference"],
                "channel": ["type": "auto", "notification": .object(JSONObject(n))]]
    }

    @Test func resolvedByPagerTester_isNotAnAcknowledgement() {
        let entries = [notify("P1", "phone_notification", "success")]
        let j = PageVerdict.judge(status: "resolved", logEntries: entries, personID: "P1", resolvedByUs: true)
        #expect(j.verdict == .delivered && j.channels == ["phone_notification"])
        #expect(PageVerdict.judge(status: "resolved", logEntries: entries, personID: "P1", resolvedByUs: false).verdict == .acknowledged)
    }

    @Test func notificationToSomebodyElse_doesNotCount() {
        let entries = [notify("POTHER", "sms_notification", "success")]
        #expect(PageVerdict.judge(status: "triggered", logEntries: entries, personID: "P1", resolvedByUs: false).verdict == .noNotification)
    }

    @Test("only failed notifications are notification-failed, whatever the failure wording",
          arguments: ["failed", "no_answer", "busy", "Could not send", "pending", ""])
    func failedStatuses(_ status: String) {
        let entries = [notify("P1", "sms_notification", status), notify("POTHER", "phone_notification", "success")]
        let j = PageVerdict.judge(status: "triggered", logEntries: entries, personID: "P1", resolvedByUs: false)
        #expect(j.verdict == .notificationFailed)
        #expect(j.failed == [NotificationOutcome(type: "sms_notification", status: status, address: "+15555550100")])
    }

    @Test func aNotificationWithoutStatus_isNotDelivered() {
        let j = PageVerdict.judge(status: "triggered", logEntries: [notify("P1", "sms_notification", nil)], personID: "P1", resolvedByUs: false)
        #expect(j.verdict == .notificationFailed)
    }

    @Test func oneSuccess_amongFailures_isDelivered() {
        let entries = [notify("P1", "phone_notification", "success"), notify("P1", "sms_notification", "failed")]
        let j = PageVerdict.judge(status: "triggered", logEntries: entries, personID: "P1", resolvedByUs: false)
        #expect(j.verdict == .delivered)
        #expect(j.channels == ["phone_notification", "sms_notification"])
    }

    @Test func olderEntriesWithNotificationBesideChannel_areRead() {
        let entry: JSON = ["type": "notify_log_entry", "user": ["id": "P1"], "channel": ["type": "auto"],
                           "notification": ["type": "phone", "address": "+1 555", "status": "success"]]
        #expect(PageVerdict.judge(status: "triggered", logEntries: [entry], personID: "P1", resolvedByUs: false).verdict == .delivered)
    }
}
