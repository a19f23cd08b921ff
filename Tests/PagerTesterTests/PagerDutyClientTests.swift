import KLCore
import KLTestSupport
import Testing
@testable import PagerTesterKit

@Suite(.timeLimit(.minutes(1)))
struct PagerDutyClientTests {
    @Test func createIncident_sendsV2HeadersAndBody() throws {
        let fake = try FakePagerDuty()
        let sink = MemorySink()
        let client = try fake.pagerClient(clock: VirtualWallClock(start: time("2026-01-01T00:00:00Z")), sink: sink)
        let incident = try client.createIncident(for: try person("Jane", "PJANE", "@daily"))
        #expect(incident.id == "Q0001")
        #expect(incident.url == "https://acme.pagerduty.com/incidents/Q0001")
        let posts = try fake.requests("POST", "/incidents")
        try #require(posts.count == 1)
        #expect(posts[0][path: "headers", "accept"]?.stringValue == "application/vnd.pagerduty+json;version=2")
        #expect(posts[0][path: "headers", "authorization"]?.stringValue == "Token token=\(testToken)")
        #expect(posts[0][path: "headers", "from"]?.stringValue == testFrom)
        let body = try JSON.parse(posts[0]["body"]?.stringValue ?? "")
        #expect(body[path: "incident", "assignments"]?[0]?[path: "assignee", "id"]?.stringValue == "PJANE")
        #expect(body[path: "incident", "service", "id"]?.stringValue == testService)
    }

    @Test func rateLimited_withResetHeader_waitsThatLongThenRetries() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "status": 429,
                                      "headers": ["ratelimit-limit": "60", "ratelimit-remaining": "0", "ratelimit-reset": "17"]]]])
        let clock = VirtualWallClock(start: time("2026-01-01T00:00:00Z"))
        let sink = MemorySink()
        let client = try fake.pagerClient(clock: clock, sink: sink)
        let incident = try client.createIncident(for: try person("Jane", "PJANE", "@daily"))
        #expect(incident.id == "Q0001")
        #expect(clock.sleeps == [.seconds(17)])
        #expect(try fake.requests("POST", "/incidents").count == 2)
        #expect(sink.messages("rate limited by PagerDuty, waiting").count == 1)
    }

    @Test func rateLimited_withoutHeaders_waits60Seconds() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "status": 429], ["path": "/incidents", "status": 429]]])
        let clock = VirtualWallClock(start: time("2026-01-01T00:00:00Z"))
        let client = try fake.pagerClient(clock: clock, sink: MemorySink())
        _ = try client.createIncident(for: try person("Jane", "PJANE", "@daily"))
        #expect(clock.sleeps == [.seconds(60), .seconds(60)])
        #expect(try fake.requests("POST", "/incidents").count == 3)
    }

    @Test func rateLimited_everyTime_givesUpAfterBoundedRetries() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": .array(Array(repeating: ["path": "/incidents", "status": 429,
                                                              "body": ["error": ["message": "Rate Limit Exceeded", "code": 2020]]], count: 10))])
        let clock = VirtualWallClock(start: time("2026-01-01T00:00:00Z"))
        let client = try fake.pagerClient(clock: clock, sink: MemorySink())
        #expect {
            _ = try client.createIncident(for: try person("Jane", "PJANE", "@daily"))
        } throws: { error in
            guard let e = error as? PagerError else { return false }
            return e.code == .rateLimited && e.status == 429 && e.description.contains("Rate Limit Exceeded")
        }
        #expect(try fake.requests("POST", "/incidents").count == 4)
        #expect(clock.sleeps.count == 3)
    }

    @Test func serverError_throwsWithStatusAndBody_withoutRetrying() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "status": 503, "body": ["error": ["message": "Service Unavailable"]]]]])
        let client = try fake.pagerClient(clock: VirtualWallClock(start: time("2026-01-01T00:00:00Z")), sink: MemorySink())
        #expect {
            _ = try client.createIncident(for: try person("Jane", "PJANE", "@daily"))
        } throws: { error in
            guard let e = error as? PagerError else { return false }
            return e.code == .httpStatus && e.status == 503 && (e.body ?? "").contains("Service Unavailable")
                && e.description.contains("503")
        }
        #expect(try fake.requests("POST", "/incidents").count == 1)
    }

    @Test func wrongToken_isRejectedAndTheTokenNeverAppearsInErrors() throws {
        let fake = try FakePagerDuty()
        var settings = fake.settings
        settings.token = "wrong-token-123"
        let sink = MemorySink()
        let clock = VirtualWallClock(start: time("2026-01-01T00:00:00Z"))
        let client = PagerDutyClient(settings: settings, transport: fake.client, clock: clock,
                                     logger: KLSystemLogger.make(sink, clock))
        var scheduler = PageRunner(people: [try person("Jane", "PJANE", "@daily")], client: client, options: SchedulerOptions())
        let paged = scheduler.notifyNow(0)
        #expect(!paged)
        let failed = sink.messages("test page failed")
        try #require(failed.count == 1)
        #expect(failed[0]["http.status"]?.intValue == 401)
        #expect(!sink.all.joined().contains("wrong-token-123"))
    }

    @Test func hungServer_hitsTheRequestTimeout() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "delay": 5, "status": 201]]])
        var client = try fake.pagerClient(clock: VirtualWallClock(start: time("2026-01-01T00:00:00Z")), sink: MemorySink())
        client.requestTimeout = .milliseconds(500)
        let started = MonotonicClock.now
        #expect {
            _ = try client.createIncident(for: try person("Jane", "PJANE", "@daily"))
        } throws: { error in
            guard let e = error as? PagerError else { return false }
            return e.code == .transport && e.description.contains("did not answer within 500ms")
        }
        #expect(MonotonicClock.now - started < .seconds(3))
    }

    @Test func slowServer_withinTheTimeout_succeeds() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "delay": .number("0.3")]]])
        let client = try fake.pagerClient(clock: VirtualWallClock(start: time("2026-01-01T00:00:00Z")), sink: MemorySink())
        #expect(try client.createIncident(for: try person("Jane", "PJANE", "@daily")).id == "Q0001")
    }
}

import KLSystem

enum KLSystemLogger {
    static func make(_ sink: MemorySink, _ clock: VirtualWallClock) -> Logger {
        Logger(level: .debug, sink: sink, clock: { clock.now })
    }
}
