import KLCore
import Testing
@testable import PagerTesterKit

@Suite struct ConfigTests {
    static let yaml = """
        # on-call people
        ---
        - name: Jane Doe
          id: PABC123
          cron: 55 6 * * 2#1 America/Los_Angeles   # first Tuesday
        - name: "Bob \\"B\\""
          id: 'P2'
          cron: "*/30 9-17 * * mon-fri Europe/Berlin"
          email: bob@example.com

        -
          name: it's # with comment
          id: 42
          cron: '@daily'
        """

    @Test func yaml_readsTheOriginalShape() throws {
        let people = try PeopleFile.parse(Self.yaml, path: "people.yaml", zones: zones)
        #expect(people.map(\.name) == ["Jane Doe", "Bob \"B\"", "it's"])
        #expect(people.map(\.id) == ["PABC123", "P2", "42"])
        #expect(people[0].cron.text == "55 6 * * 2#1 America/Los_Angeles")
        #expect(people[0].cron.zone.name == "America/Los_Angeles")
        #expect(people[1].cron.text == "*/30 9-17 * * mon-fri Europe/Berlin")
        #expect(people[1].email == "bob@example.com")
        #expect(people[2].cron.text == "@daily")
    }

    @Test func urgency_isOptionalPerPerson_highOrLow() throws {
        let people = try PeopleFile.parse("- name: a\n  id: P1\n  cron: '@daily'\n  urgency: low\n- name: b\n  id: P2\n  cron: '@daily'\n",
                                          path: "people.yaml", zones: zones)
        #expect(people.map(\.urgency) == [.low, nil])
        #expect {
            _ = try PeopleFile.parse("- name: a\n  id: P1\n  cron: '@daily'\n  urgency: urgent\n", path: "people.yaml", zones: zones)
        } throws: { error in
            "\(error)".contains("entry 1 (line 1, name 'a') field 'urgency': 'urgent' must be high or low")
        }
    }

    @Test func json_readsTheSameShape() throws {
        let json = #"[{"name":"Jane","id":"PABC123","cron":"55 6 * * 2#1 America/Los_Angeles"},{"name":"Bob","id":"P2","cron":"@hourly"}]"#
        let people = try PeopleFile.parse(json, path: "people.json", zones: zones)
        #expect(people.map(\.name) == ["Jane", "Bob"])
    }

    struct Bad: Sendable, CustomStringConvertible {
        var name: String
        var text: String
        var path = "people.yaml"
        var mentions: [String]
        var description: String { name }
    }

    @Test("bad configuration names the entry and field", arguments: [
        Bad(name: "invalid cron", text: "- name: a\n  id: P1\n  cron: 61 * * * *\n",
            mentions: ["entry 1 (line 1, name 'a') field 'cron'", "field 1 (minute)"]),
        Bad(name: "unknown zone", text: "- name: a\n  id: P1\n  cron: 0 9 * * * Mars/Base\n- name: b\n  id: P2\n  cron: 0 9 * * *\n",
            mentions: ["entry 1", "field 'cron'", "unknown time zone 'Mars/Base'"]),
        Bad(name: "missing id", text: "- name: a\n  cron: '@daily'\n", mentions: ["entry 1", "field 'id': missing"]),
        Bad(name: "unknown field", text: "- name: a\n  id: P1\n  cron: '@daily'\n  crno: x\n",
            mentions: ["entry 1", "field 'crno': unknown field"]),
        Bad(name: "duplicate names", text: "- name: a\n  id: P1\n  cron: '@daily'\n- name: a\n  id: P2\n  cron: '@daily'\n",
            mentions: ["entry 2 field 'name'", "already the name of entry 1"]),
        Bad(name: "never firing cron", text: "- name: a\n  id: P1\n  cron: 0 0 30 2 *\n", mentions: ["field 'cron'", "never fires"]),
        Bad(name: "nested mapping", text: "- name: a\n  id:\n    x: 1\n", mentions: ["line 2", "no value"]),
        Bad(name: "not a list", text: "name: a\n", mentions: ["line 1", "expected a list"]),
        Bad(name: "unterminated quote", text: "- name: \"a\n", mentions: ["line 1", "unterminated"]),
        Bad(name: "flow mapping", text: "- name: a\n  id: {x: 1}\n", mentions: ["line 2", "quote the value"]),
        Bad(name: "duplicate key", text: "- name: a\n  name: b\n", mentions: ["line 2", "appears twice"]),
        Bad(name: "misaligned key", text: "- name: a\n    id: P1\n", mentions: ["line 2", "indentation"]),
        Bad(name: "empty file", text: "# nobody\n", mentions: ["lists nobody"]),
        Bad(name: "malformed JSON", text: "[{\"name\": }]", path: "p.json", mentions: ["p.json", "invalid JSON at line 1"]),
        Bad(name: "JSON non-string", text: "[{\"name\": \"a\", \"id\": true, \"cron\": \"@daily\"}]", path: "p.json",
            mentions: ["entry 1 field 'id': must be a string"]),
        Bad(name: "JSON object instead of array", text: "{\"name\": \"a\"}", path: "p.json", mentions: ["expected a JSON array"]),
        Bad(name: "JSON duplicate names", text: "[{\"name\":\"a\",\"id\":\"P1\",\"cron\":\"@daily\"},{\"name\":\"a\",\"id\":\"P2\",\"cron\":\"@daily\"}]",
            path: "p.json", mentions: ["entry 2 field 'name'"]),
    ])
    func badConfig(_ c: Bad) {
        #expect {
            _ = try PeopleFile.parse(c.text, path: c.path, zones: zones)
        } throws: { error in
            guard let e = error as? PagerError, e.code == .invalidConfig || e.code == .invalidCron || e.code == .unknownZone else { return false }
            return c.mentions.allSatisfy { e.description.contains($0) }
        }
    }

    @Test func settings_missingEnv_namesEveryVariable() {
        #expect {
            _ = try PagerSettings.load(environment: ["SUBDOMAIN": "acme"], needToken: true)
        } throws: { error in
            let text = (error as? PagerError)?.description ?? ""
            return text.contains("PAGERDUTY_TOKEN, SERVICE_ID, PAGERDUTY_FROM") && !text.contains("SUBDOMAIN,")
        }
    }

    @Test func settings_defaultsAPIURL_andDryRunNeedsNoToken() throws {
        let s = try PagerSettings.load(environment: ["SERVICE_ID": "S1", "SUBDOMAIN": "acme", "PAGERDUTY_FROM": "bot@example.com"],
                                       needToken: false)
        #expect(s.apiURL == "https://api.pagerduty.com")
        #expect(s.incidentURL("Q1") == "https://acme.pagerduty.com/incidents/Q1")
    }

    @Test func settings_rejectsFromThatIsNotAnEmail() {
        #expect(throws: PagerError.self) {
            _ = try PagerSettings.load(environment: ["PAGERDUTY_TOKEN": "t", "SERVICE_ID": "S1", "SUBDOMAIN": "acme",
                                                     "PAGERDUTY_FROM": "bot"], needToken: true)
        }
    }

    @Test func logLevel_fromTheEnvironment_defaultInfo_unknownIsAUsageError() throws {
        #expect(try PagerTesterOptions.logLevel(environment: [:]) == .info)
        #expect(try PagerTesterOptions.logLevel(environment: ["PAGER_TESTER_LOG_LEVEL": ""]) == .info)
        #expect(try PagerTesterOptions.logLevel(environment: ["PAGER_TESTER_LOG_LEVEL": "Debug"]) == .debug)
        let e = #expect(throws: PagerError.self) {
            try PagerTesterOptions.logLevel(environment: ["PAGER_TESTER_LOG_LEVEL": "verbose"])
        }
        #expect(e?.isUsage == true)
        #expect(e?.message == "env PAGER_TESTER_LOG_LEVEL: unknown log level 'verbose': use one of trace, debug, info, notice, warning, error, critical")
    }
}
