import Foundation
import KLCore
import KLTransport
import Testing

/// Black-box tests of the pager-tester binary.
@Suite(.timeLimit(.minutes(1)))
struct CommandLineTests {
    static let goodYAML = """
        # on-call people
        - name: Jane Doe
          id: PJANE
          cron: 55 6 * * 2#1 America/Los_Angeles
        - name: Bob
          id: PBOB
          cron: "0 9 * * mon-fri Europe/Berlin"
        """

    struct BadInput: Sendable, CustomStringConvertible {
        var name: String
        var file: String
        var suffix = ".yaml"
        var arguments: [String] = ["run"]
        var dropEnv: String? = nil
        var mentions: String
        var description: String { name }
    }

    @Test("bad input: clear error, exit 2, nothing sent", arguments: [
        BadInput(name: "invalid cron", file: "- name: a\n  id: P1\n  cron: 0 25 * * *\n", mentions: "field 'cron'"),
        BadInput(name: "unknown zone", file: "- name: a\n  id: P1\n  cron: 0 9 * * * America/Springfield\n",
                 mentions: "unknown time zone 'America/Springfield'"),
        BadInput(name: "missing env", file: goodYAML, dropEnv: "PAGERDUTY_TOKEN", mentions: "PAGERDUTY_TOKEN"),
        BadInput(name: "missing SERVICE_ID for notify", file: goodYAML, arguments: ["notify"], dropEnv: "SERVICE_ID", mentions: "SERVICE_ID"),
        BadInput(name: "malformed YAML", file: "- name: a\n  id: [P1]\n", mentions: "line 2"),
        BadInput(name: "malformed JSON", file: "[{\"name\": \"a\",}]", suffix: ".json", mentions: "invalid JSON"),
        BadInput(name: "duplicate names", file: "- name: a\n  id: P1\n  cron: '@daily'\n- name: a\n  id: P2\n  cron: '@daily'\n",
                 mentions: "names must be unique"),
        BadInput(name: "From is a tested person's email", file: "- name: a\n  id: P1\n  cron: '@daily'\n  email: pager-bot@example.com\n",
                 mentions: "who is being tested"),
        BadInput(name: "notify of an unknown person", file: goodYAML, arguments: ["notify", "FILE", "Nobody"], mentions: "nobody named 'Nobody'"),
        BadInput(name: "bad --verify-after", file: goodYAML, arguments: ["run", "FILE", "--verify-after", "soon"], mentions: "--verify-after"),
    ])
    func badInput(_ c: BadInput) throws {
        let fake = try FakePagerDuty()
        let path = try BinaryRunner.tempFile(c.file, suffix: c.suffix)
        var env = fake.environment
        if let drop = c.dropEnv { env[drop] = nil }
        var args = c.arguments
        if let i = args.firstIndex(of: "FILE") { args[i] = path } else { args.insert(path, at: 1) }
        if args[0] == "notify" && args.count == 2 { args.append("Bob") }
        let r = try BinaryRunner.pagerTester(args, environment: env)
        #expect(r.status == 2)
        #expect(r.stderr.contains(c.mentions), "stderr: \(r.stderr)")
        #expect(try fake.requests().isEmpty)
    }

    @Test func fromOfATestedPerson_knownOnlyToPagerDuty_isRefused() throws {
        let fake = try FakePagerDuty()
        try fake.control(["emails": ["PBOB": .string(testFrom)]])
        let path = try BinaryRunner.tempFile(Self.goodYAML, suffix: ".yaml")
        let r = try BinaryRunner.pagerTester(["notify", path, "Bob"], environment: fake.environment)
        #expect(r.status == 2)
        #expect(r.stderr.contains("Bob (PBOB)"))
        #expect(try fake.requests("POST", "/incidents").isEmpty)
    }

    @Test func notify_pagesOnePersonNow_andVerifies() throws {
        let fake = try FakePagerDuty()
        let path = try BinaryRunner.tempFile(Self.goodYAML, suffix: ".yaml")
        let r = try BinaryRunner.pagerTester(["notify", path, "PBOB", "--verify-after", "100ms"], environment: fake.environment)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let posts = try fake.requests("POST", "/incidents")
        try #require(posts.count == 1)
        #expect(posts[0]["body"]?.stringValue?.contains("\"PBOB\"") == true)
        let lines = r.stderr.split(separator: "\n").compactMap { try? JSON.parse(String($0)) }
        #expect(lines.contains { $0["msg"]?.stringValue == "created test incident"
            && $0["incident.url"]?.stringValue == "https://acme.pagerduty.com/incidents/Q0001" })
        #expect(lines.contains { $0["msg"]?.stringValue == "page verdict" && $0["verdict"]?.stringValue == "delivered" })
        #expect(!r.stderr.contains(testToken))
    }

    @Test func notify_whenPagerDutyFails_exits1WithStatusAndBody() throws {
        let fake = try FakePagerDuty()
        try fake.control(["script": [["path": "/incidents", "status": 502, "body": ["error": ["message": "Bad Gateway"]]]]])
        let path = try BinaryRunner.tempFile(Self.goodYAML, suffix: ".yaml")
        let r = try BinaryRunner.pagerTester(["notify", path, "Jane Doe"], environment: fake.environment)
        #expect(r.status == 1)
        #expect(r.stderr.contains("\"http.status\":502"))
        #expect(r.stderr.contains("Bad Gateway"))
    }

    @Test func notify_dryRun_needsNoToken_andSendsNothing() throws {
        let fake = try FakePagerDuty()
        var env = fake.environment
        env["PAGERDUTY_TOKEN"] = nil
        let path = try BinaryRunner.tempFile(Self.goodYAML, suffix: ".yaml")
        let r = try BinaryRunner.pagerTester(["notify", path, "Bob", "--dry-run"], environment: env)
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("dry run: would create test incident"))
        #expect(try fake.requests().isEmpty)
    }

    @Test func next_listsUpcomingPagesPerPersonInTheirZoneAndUTC() throws {
        let path = try BinaryRunner.tempFile(Self.goodYAML, suffix: ".yaml")
        let r = try BinaryRunner.pagerTester(["next", path, "--count", "2", "--from", "2026-03-01T00:00:00Z"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stdout == """
            Jane Doe\t2026-03-03T06:55:00-08:00 America/Los_Angeles\t2026-03-03T14:55:00Z
            Jane Doe\t2026-04-07T06:55:00-07:00 America/Los_Angeles\t2026-04-07T13:55:00Z
            Bob\t2026-03-02T09:00:00+01:00 Europe/Berlin\t2026-03-02T08:00:00Z
            Bob\t2026-03-03T09:00:00+01:00 Europe/Berlin\t2026-03-03T08:00:00Z

            """)
    }

    /// `run --metrics-addr`: the binary serves /metrics (valid for
    /// prometheus_client) while it pages on schedule; nothing else is served.
    @Test func run_servesPrometheusMetrics() throws {
        let fake = try FakePagerDuty()
        let path = try BinaryRunner.tempFile(Self.goodYAML, suffix: ".yaml")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: BinaryRunner.binDir + "/pager-tester")
        p.arguments = ["run", path, "--metrics-addr", "127.0.0.1:0"]
        p.environment = fake.environment.merging(["PATH": "/usr/bin:/bin"]) { a, _ in a }
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        // SIGKILL: the test runner may spawn children with SIGTERM blocked.
        defer { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
        // The port is in the "serving metrics" log line.
        var port: Int? = nil
        var seen = Data()
        while port == nil {
            let chunk = err.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += chunk
            for line in String(decoding: seen, as: UTF8.self).split(separator: "\n") {
                if let j = try? JSON.parse(String(line)), j["msg"]?.stringValue == "serving metrics" { port = j["metrics.port"]?.intValue }
            }
        }
        let metricsPort = try #require(port, "no 'serving metrics' line: \(String(decoding: seen, as: UTF8.self))")
        let client = try HTTPClient(baseURL: "http://127.0.0.1:\(metricsPort)")
        let r = try client.send(HTTPRequest(method: "GET", path: "/metrics"), timeout: .seconds(10))
        #expect(r.status == 200)
        #expect(r.header("content-type")?.hasPrefix("text/plain; version=0.0.4") == true)
        let parsed = try PrometheusParser.parse(r.bodyText)
        #expect(parsed["pager_tester_last_verdict|name=Jane Doe,person_id=PJANE,verdict=delivered"] == 0)
        #expect(parsed["pager_tester_pages_skipped_total|name=Bob,person_id=PBOB,reason=late"] == 0)
        #expect(parsed["pager_tester_pages_sent_total|"] != nil)
        let other = try HTTPClient(baseURL: "http://127.0.0.1:\(metricsPort)").send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(10))
        #expect(other.status == 404)
    }

    @Test func run_badMetricsAddr_exits2() throws {
        let fake = try FakePagerDuty()
        let path = try BinaryRunner.tempFile(Self.goodYAML, suffix: ".yaml")
        let r = try BinaryRunner.pagerTester(["run", path, "--metrics-addr", "localhost"], environment: fake.environment)
        #expect(r.status == 2)
        #expect(r.stderr.contains("--metrics-addr 'localhost' must be HOST:PORT"))
        #expect(try fake.requests().isEmpty)
    }
}
