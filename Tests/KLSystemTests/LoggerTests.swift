import KLCore
import KLSystem
import KLTestSupport
import Synchronization
import Testing

@Suite struct LoggerTests {
    let fixed: @Sendable () -> WallTime = { WallTime(seconds: 1_795_859_505, nanoseconds: 42_000_000) }

    @Test func json_hasTsLevelMsgThenMetadataInOrder() throws {
        let sink = MemorySink()
        let logger = Logger(level: .info, format: .json, sink: sink, clock: fixed).with(("lock.name", "my-lock"))
        logger.info("acquired lock", ("lock.holder", "pod-a"), ("lock.transitions", 3))
        #expect(sink.all == [#"{"ts":"2026-11-28T09:51:45.042Z","level":"info","msg":"acquired lock","lock.name":"my-lock","lock.holder":"pod-a","lock.transitions":3}"#])
        // Every line is valid JSON even with quotes and newlines in values.
        logger.info("odd \"value\"", ("error", "line1\nline2"))
        let parsed = try JSON.parse(sink.all[1])
        #expect(parsed["error"] == "line1\nline2")
    }

    @Test func levelsBelowTheThreshold_areDropped() {
        let sink = MemorySink()
        let logger = Logger(level: .warning, format: .json, sink: sink, clock: fixed)
        logger.debug("no")
        logger.info("no")
        logger.warning("yes")
        logger.critical("yes")
        #expect(sink.all.count == 2)
        #expect(sink.all.allSatisfy { $0.contains("\"yes\"") })
    }

    @Test func text_isReadable_andQuotesValuesWithSpaces() {
        let sink = MemorySink()
        let logger = Logger(level: .trace, format: .text, sink: sink, clock: fixed)
        logger.notice("child exited", ("child.pid", 12), ("child.status", "exited with code 0"), ("lock.holder", ""))
        #expect(sink.all == [#"2026-11-28T09:51:45.042Z notice child exited child.pid=12 child.status="exited with code 0" lock.holder="""#])
    }

    @Test func levelNames_matchSwiftLog() {
        #expect(LogLevel.allCases.map(\.name) == ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        #expect(LogLevel(name: "WARNING") == .warning)
        #expect(LogLevel(name: "verbose") == nil)
    }
}

@Suite struct OptionParserTests {
    let parser = OptionParser([
        OptionSpec("lease-duration", env: "X_LEASE", value: "DURATION", default: "15s", help: "Lease."),
        OptionSpec("dry-run", env: "X_DRY", value: nil, help: "Do nothing."),
        OptionSpec("format", value: "text|json", default: "text", help: "Output."),
    ])

    @Test func flagForms_andPrecedence() throws {
        let env = ["X_LEASE": "20s", "X_DRY": "1"]
        var o = try parser.parse(arguments: ["--lease-duration", "30s", "file"], environment: env)
        #expect(o["lease-duration"] == "30s")
        #expect(o.source(of: "lease-duration") == "--lease-duration")
        #expect(o.isSet("dry-run"))
        #expect(o.source(of: "dry-run") == "env X_DRY")
        o = try parser.parse(arguments: ["--lease-duration=40s"], environment: env)
        #expect(o["lease-duration"] == "40s")
        o = try parser.parse(arguments: [], environment: env)
        #expect(o["lease-duration"] == "20s")
        o = try parser.parse(arguments: [], environment: ["X_LEASE": ""])
        #expect(o["lease-duration"] == nil)  // empty env counts as unset
    }

    @Test func interspersed_vs_stopAtFirstPositional() throws {
        let mixed = try parser.parse(arguments: ["a", "--format", "json", "b"], environment: [:])
        #expect(mixed.positionals == ["a", "b"])
        #expect(mixed["format"] == "json")
        let stopping = OptionParser(parser.specs, mode: .stopAtFirstPositional)
        let child = try stopping.parse(arguments: ["--format", "json", "lock", "cmd", "--format", "x", "--help"], environment: [:])
        #expect(child.positionals == ["lock", "cmd", "--format", "x", "--help"])
        #expect(!child.help)
        let dashed = try stopping.parse(arguments: ["--", "--not-an-option"], environment: [:])
        #expect(dashed.positionals == ["--not-an-option"])
    }

    @Test(arguments: [
        (["--bogus"], "unknown option '--bogus'"), (["-x"], "unknown option '-x'"),
        (["--format"], "needs a value"), (["--dry-run=maybe"], "is a switch"),
    ] as [([String], String)])
    func errors_nameTheArgument(args: [String], fragment: String) {
        #expect { try parser.parse(arguments: args, environment: [:]) } throws: { error in
            (error as? UsageError)?.message.contains(fragment) ?? false
        }
    }

    @Test func helpText_listsFlagEnvAndDefault() {
        let help = parser.helpText()
        #expect(help.contains("--lease-duration DURATION"))
        #expect(help.contains("env: X_LEASE; default: 15s"))
        #expect(help.contains("--dry-run\n"))
        #expect(help.contains("--version"))
    }
}
