import Foundation
import KLCore
import KLTransport
import KLSystem
import KLTestSupport
import Testing
@testable import PagerTesterKit

/// pager-tester's paging promises against the fake PagerDuty (which enforces 6
/// creations a minute per service on the test's virtual clock, refuses a
/// duplicate open incident_key like PagerDuty, and logs realistic
/// notify_log_entry outcomes): nobody skipped, nobody paged twice, and the
/// verdict tells whether the notification reached the person.
@Suite(.timeLimit(.minutes(2)))
struct PagingGuaranteesTests {
    func people(_ n: Int, cron: String = "0 9 * * *") throws -> [Person] {
        try (1...n).map { try person("Person \($0)", "P\(String(format: "%03d", $0))", cron) }
    }

    func scheduler(_ fake: FakePagerDuty, _ people: [Person], clock: VirtualWallClock, sink: MemorySink,
                   configure: (inout SchedulerOptions) -> Void = { _ in }) throws -> PageRunner {
        var options = SchedulerOptions()
        configure(&options)
        return PageRunner(people: people, client: try fake.pagerClient(clock: clock, sink: sink), options: options)
    }

    /// Creation times (virtual seconds) of the incidents the fake holds, in order.
    func createTimes(_ fake: FakePagerDuty) throws -> [Double] {
        try fake.incidents().compactMap { RFC3339.parse($0["created_at"]?.stringValue ?? "").map { Double($0.seconds) } }.sorted()
    }

    @Test func fortyPeopleOnOneMinute_areAllPaged_withinTheRateLimit() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        var s = try scheduler(fake, try people(40), clock: clock, sink: sink)
        s.run(until: time("2026-01-05T09:15:00Z"))

        let incidents = try fake.incidents()
        #expect(incidents.count == 40)
        let assignees = Set(incidents.compactMap { $0["assignments"]?[0]?[path: "assignee", "id"]?.stringValue })
        #expect(assignees.count == 40)
        // Paced: no 429 at all, at most 6 creations in any 60 s.
        #expect(try fake.requests("POST", "/incidents").count == 40)
        #expect(s.metrics.rateLimitWaits == 0)
        let times = try createTimes(fake)
        for (i, t) in times.enumerated() {
            #expect(times[i...].prefix { $0 < t + 60 }.count <= 6, "more than 6 creations in the minute from \(t)")
        }
        // Everybody within seven minutes of the fire time, nobody skipped.
        #expect(times.last! <= Double(time("2026-01-05T09:06:00Z").seconds))
        #expect(sink.messages("missed page").isEmpty)
        #expect(s.pagesMissed == 0 && s.pagesSent == 40)
        // Each with its own incident_key and high urgency.
        #expect(incidents.allSatisfy { $0["urgency"]?.stringValue == "high" })
        #expect(Set(incidents.compactMap { $0["incident_key"]?.stringValue }).count == 40)
        #expect(incidents.contains { $0["incident_key"]?.stringValue == "pager-tester/P017/2026-01-05T09:00:00Z" })
        #expect(clock.sleeps.allSatisfy { $0 <= .seconds(30) })
    }

    /// A PagerDuty stricter than --max-creates-per-minute answers 429: the
    /// pages wait (beyond --missed-grace) and everybody is still paged.
    @Test func stricterRateLimit_answers429_andNobodyIsDroppedForWaiting() throws {
        let fake = try FakePagerDuty()
        try fake.control(["rate_limit": 2])
        let sink = MemorySink()
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        var s = try scheduler(fake, try people(12), clock: clock, sink: sink) { $0.missedGrace = .seconds(120) }
        s.run(until: time("2026-01-05T09:30:00Z"))
        #expect(try fake.incidents().count == 12)
        #expect(s.metrics.rateLimitWaits > 0)
        #expect(!sink.messages("rate limited by PagerDuty, page stays queued").isEmpty)
        #expect(sink.messages("missed page").isEmpty)
        #expect(s.pagesFailed == 0)
        // The last page went out well after --missed-grace: waiting never drops it.
        #expect(try createTimes(fake).last! > Double(time("2026-01-05T09:02:00Z").seconds))
    }

    /// The process dies in the middle of paging 40 people (one create even
    /// reached PagerDuty but its answer was lost); the next process (a
    /// restart, or the spare replica after fail-over) pages the rest and
    /// nobody twice.
    @Test func restartInTheMiddleOfAFireTime_pagesNobodyTwice_andEverybodyOnce() throws {
        let fake = try FakePagerDuty()
        let everyone = try people(40)
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        let firstSink = MemorySink()
        var first = try scheduler(fake, everyone, clock: clock, sink: firstSink)
        first.run(until: time("2026-01-05T09:02:30Z"))
        #expect(try fake.incidents().count == 18)
        // The next create reaches PagerDuty, the answer never comes back.
        try fake.control(["script": [["path": "/incidents", "method": "POST", "drop": true]]])
        for _ in 0..<100 where !firstSink.all.joined().contains("test page failed, will retry") { first.step() }
        #expect(try fake.incidents().count == 19)
        // Crash. A new process starts half a minute later.
        clock.advance(by: .seconds(30))
        let sink = MemorySink()
        var second = try scheduler(fake, everyone, clock: clock, sink: sink)
        second.run(until: time("2026-01-05T09:20:00Z"))

        let incidents = try fake.incidents()
        let perPerson = Dictionary(grouping: incidents, by: { $0["assignments"]?[0]?[path: "assignee", "id"]?.stringValue ?? "" })
        #expect(perPerson.count == 40)
        #expect(perPerson.values.allSatisfy { $0.count == 1 }, "someone was paged twice")
        #expect(second.metrics.deduplicated == 19)
        #expect(second.pagesSent == 21)
        #expect(sink.messages("already paged").count == 19)
        #expect(sink.messages("missed page").isEmpty)
    }

    /// A person who resolved the page quickly is not paged again by a restart
    /// (PagerDuty's de-duplication covers only open incidents; the look-up
    /// covers resolved ones).
    @Test func restartAfterThePersonResolved_doesNotPageAgain() throws {
        let fake = try FakePagerDuty()
        let jane = try person("Jane", "PJANE", "0 9 * * *")
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        var first = try scheduler(fake, [jane], clock: clock, sink: MemorySink())
        first.run(until: time("2026-01-05T09:00:10Z"))
        try first.client.resolve("Q0001")
        var second = try scheduler(fake, [jane], clock: clock, sink: MemorySink())
        second.run(until: time("2026-01-05T09:10:00Z"))
        #expect(try fake.incidents().count == 1)
        #expect(try fake.requests("POST", "/incidents").count == 1)
        #expect(second.metrics.deduplicated == 1)
    }

    /// PagerDuty refuses a duplicate open incident_key with 400 / code 2002;
    /// that is "already paged", not a failure, and the incident is verified.
    @Test func duplicateRefusal_isAlreadyPaged_andTheExistingIncidentIsVerified() throws {
        let fake = try FakePagerDuty()
        let jane = try person("Jane", "PJANE", "0 9 * * *")
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        let sink = MemorySink()
        var s = try scheduler(fake, [jane], clock: clock, sink: sink) { $0.verifyAfter = .seconds(120) }
        // Somebody (another replica) created it first.
        _ = try s.client.createIncident(for: jane, incidentKey: PagerDutyClient.incidentKey(personID: "PJANE", fireTime: time("2026-01-05T09:00:00Z")))
        s.run(until: time("2026-01-05T09:10:00Z"))
        #expect(try fake.incidents().count == 1)
        let already = sink.messages("already paged")
        try #require(already.count == 1)
        #expect(already[0]["how"]?.stringValue == "PagerDuty refused the duplicate incident_key")
        #expect(already[0]["incident.id"]?.stringValue == "Q0001")
        #expect(s.pagesFailed == 0 && s.metrics.deduplicated == 1)
        #expect(sink.messages("page verdict").first?["verdict"]?.stringValue == "delivered")
    }

    @Test func duplicateRefusal_matchesPagerDutysAnswer() throws {
        let fake = try FakePagerDuty()
        let client = try fake.pagerClient(clock: VirtualWallClock(start: time("2026-01-05T08:59:00Z")), sink: MemorySink())
        let jane = try person("Jane", "PJANE", "@daily")
        _ = try client.createIncident(for: jane, incidentKey: "pager-tester/PJANE/2026-01-05T09:00:00Z")
        #expect {
            _ = try client.createIncident(for: jane, incidentKey: "pager-tester/PJANE/2026-01-05T09:00:00Z")
        } throws: { error in
            guard let e = error as? PagerError else { return false }
            return e.code == .duplicate && e.status == 400 && (e.body ?? "").contains("\"code\": 2002")
        }
        #expect(try client.findIncident(incidentKey: "pager-tester/PJANE/2026-01-05T09:00:00Z")?.id == "Q0001")
        #expect(try client.findIncident(incidentKey: "pager-tester/PJANE/2026-01-06T09:00:00Z") == nil)
    }

    struct OutcomeCase: Sendable, CustomStringConvertible {
        var behavior: String
        var verdict: String
        var failed: JSON?
        var description: String { behavior }
    }

    @Test("the verdict follows the notification outcome", arguments: [
        OutcomeCase(behavior: "sms-failed", verdict: "notification-failed",
                    failed: [["type": "sms_notification", "status": "failed", "address": "…0100"]]),
        OutcomeCase(behavior: "phone-no-answer", verdict: "notification-failed",
                    failed: [["type": "phone_notification", "status": "no_answer", "address": "…0100"],
                             ["type": "sms_notification", "status": "failed", "address": "…0100"]]),
        OutcomeCase(behavior: "mixed", verdict: "delivered", failed: nil),
        OutcomeCase(behavior: "notify", verdict: "delivered", failed: nil),
        OutcomeCase(behavior: "ack", verdict: "acknowledged", failed: nil),
        OutcomeCase(behavior: "none", verdict: "no-notification", failed: nil),
    ])
    func verdictFromOutcome(_ c: OutcomeCase) throws {
        let fake = try FakePagerDuty()
        try fake.control(["behavior": ["PJANE": .string(c.behavior)]])
        let sink = MemorySink()
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        var s = try scheduler(fake, [try person("Jane", "PJANE", "0 9 * * *")], clock: clock, sink: sink) { $0.verifyAfter = .seconds(120) }
        s.run(until: time("2026-01-05T10:00:00Z"))
        let verdicts = sink.messages("page verdict")
        try #require(verdicts.count == 1)
        #expect(verdicts[0]["verdict"]?.stringValue == c.verdict)
        let reachable = c.verdict == "delivered" || c.verdict == "acknowledged"
        #expect(verdicts[0]["level"]?.stringValue == (reachable ? "info" : "error"))
        #expect(verdicts[0]["notification.failed"] == c.failed)
        // Failing verdicts are checked three times (a later rule may still succeed).
        #expect(verdicts[0]["attempt"]?.intValue == (reachable ? 1 : 3))
        let metrics = s.metrics.exposition()
        #expect(metrics.contains("pager_tester_last_verdict{person_id=\"PJANE\",name=\"Jane\",verdict=\"\(c.verdict)\"} 1"))
        let verdictTime = try #require(RFC3339.parse(verdicts[0]["ts"]?.stringValue ?? ""))
        #expect(metrics.contains("pager_tester_last_verdict_timestamp_seconds{person_id=\"PJANE\",name=\"Jane\"} \(verdictTime.seconds)\n"))
    }

    @Test func urgency_isHighByDefault_perPersonOrGlobal() throws {
        let fake = try FakePagerDuty()
        var low = try person("Low", "PLOW", "0 9 * * *")
        low.urgency = .low
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        var s = try scheduler(fake, [try person("Default", "PDEF", "0 9 * * *"), low], clock: clock, sink: MemorySink())
        s.run(until: time("2026-01-05T09:05:00Z"))
        var globalLow = try scheduler(fake, [try person("Global", "PGLOB", "0 9 * * *")], clock: VirtualWallClock(start: time("2026-01-06T08:59:00Z")),
                                      sink: MemorySink())
        globalLow.client.defaultUrgency = .low
        globalLow.run(until: time("2026-01-06T09:05:00Z"))
        let byUser = Dictionary(uniqueKeysWithValues: try fake.requests("POST", "/incidents").map { r in
            let body = try JSON.parse(r["body"]?.stringValue ?? "")
            return (body[path: "incident", "assignments"]?[0]?[path: "assignee", "id"]?.stringValue ?? "",
                    body[path: "incident", "urgency"]?.stringValue)
        })
        #expect(byUser == ["PDEF": "high", "PLOW": "low", "PGLOB": "low"])
    }

    @Test func metricsExposition_parsesWithPrometheusClient() throws {
        let fake = try FakePagerDuty()
        try fake.control(["behavior": ["PB": "sms-failed"]])
        let sink = MemorySink()
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        var s = try scheduler(fake, [try person("Ann \"A\" \\ O'Neil", "PA", "0 9 * * *"), try person("Bob", "PB", "0 9 * * *")],
                              clock: clock, sink: sink) { $0.verifyAfter = .seconds(60) }
        s.run(until: time("2026-01-05T10:00:00Z"))
        let parsed = try PrometheusParser.parse(s.metrics.exposition())
        #expect(parsed["pager_tester_last_verdict|name=Ann \"A\" \\ O'Neil,person_id=PA,verdict=delivered"] == 1)
        #expect(parsed["pager_tester_last_verdict|name=Bob,person_id=PB,verdict=notification-failed"] == 1)
        #expect(parsed["pager_tester_last_verdict|name=Bob,person_id=PB,verdict=delivered"] == 0)
        #expect(parsed["pager_tester_pages_sent_total|"] == 2)
        #expect(parsed["pager_tester_pages_skipped_total|name=Bob,person_id=PB,reason=late"] == 0)
        #expect(parsed["pager_tester_rate_limit_waits_total|"] == 0)
        #expect(parsed["pager_tester_last_verdict_timestamp_seconds|name=Bob,person_id=PB"] ?? 0 > 1_767_000_000)
    }
}

/// Parses an exposition with PyPI's `prometheus_client.parser` (installed by
/// scripts/test.d/50-pager.deps) and returns `name|label=value,…` → value.
enum PrometheusParser {
    static let script = """
        import json, sys
        from prometheus_client.parser import text_string_to_metric_families
        out = {}
        for family in text_string_to_metric_families(sys.stdin.read()):
            for s in family.samples:
                out[s.name + "|" + ",".join("%s=%s" % kv for kv in sorted(s.labels.items()))] = s.value
        print(json.dumps(out))
        """

    static func parse(_ text: String) throws -> [String: Double] {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", script]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        p.standardInput = input
        p.standardOutput = output
        p.standardError = errors
        try p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        let err = errors.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw ParseError(message: "prometheus_client.parser rejected the exposition: \(String(decoding: err, as: UTF8.self))\n\(text)")
        }
        var result: [String: Double] = [:]
        for (k, v) in try JSON.parse(bytes: Array(out)).objectValue ?? JSONObject() { result[k] = v.doubleValue }
        return result
    }

    struct ParseError: Error, CustomStringConvertible { var message: String; var description: String { message } }
}
