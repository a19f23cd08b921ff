import KLCore
import KLSystem
import KLTransport

/// Where a command writes: standard output for results, the logger for
/// events. Tests capture both.
public struct CommandIO: Sendable {
    public var stdout: @Sendable (String) -> Void
    public var logger: Logger
    public init(stdout: @escaping @Sendable (String) -> Void, logger: Logger) {
        self.stdout = stdout
        self.logger = logger
    }
}

/// `pager-tester` subcommands. Each returns the process exit code:
/// 0 success, 1 a page or PagerDuty request failed, 2 bad usage or
/// configuration (nothing was sent).
public enum PagerTesterCommand {
    public static let usage = """
        usage: pager-tester run CONFIG [options]
               pager-tester next CONFIG [--count N]
               pager-tester notify CONFIG NAME|ID [options]
               pager-tester cron 'EXPR' [--from RFC3339] [--count N]
        """

    /// `pager-tester --version`: version and commit, Swift, libc and the
    /// OpenSSL linked in (it talks TLS to PagerDuty through KLTransport).
    public static var versionText: String {
        BuildInfo.versionText(program: "pager-tester", version: kubeLeaderVersion, openSSL: OpenSSLInfo.versionText)
    }

    /// `cron EXPR [--from T] [--count N]`: prints the next N fire times as
    /// RFC 3339 UTC, one per line.
    public static func cron(_ options: ParsedOptions, environment: [String: String], now: WallTime,
                            io: CommandIO) throws(PagerError) -> Int32 {
        guard options.positionals.count == 2 else {
            throw PagerError(.usage, "cron takes exactly one expression (quote it): pager-tester cron '55 6 * * 2#1 America/Los_Angeles'")
        }
        let expression = try CronExpression.parse(options.positionals[1], zones: TimeZoneDatabase(environment: environment))
        let count = try countOption(options, default: 5)
        let from = try fromOption(options, default: now)
        let times = expression.fireTimes(after: from, count: count)
        warnAboutGaps(expression, from: from, io: io, person: nil)
        if times.isEmpty {
            throw PagerError(.invalidCron, "the cron expression '\(expression.text)' never fires (checked 30 years ahead); check the day and month fields")
        }
        io.stdout(times.map { RFC3339.format($0) + "\n" }.joined())
        return 0
    }

    /// `--from T` (RFC 3339), else `now`.
    static func fromOption(_ options: ParsedOptions, default now: WallTime) throws(PagerError) -> WallTime {
        guard let text = options["from"] else { return now }
        guard let t = RFC3339.parse(text) else {
            throw PagerError(.usage, "--from '\(text)' is not an RFC 3339 time such as 2026-01-01T00:00:00Z")
        }
        return t
    }

    /// Reads the people file named by the second positional argument.
    static func loadPeople(_ options: ParsedOptions, environment: [String: String], command: String) throws(PagerError) -> [Person] {
        guard options.positionals.count >= 2 else {
            throw PagerError(.usage, "\(command) needs the people file: pager-tester \(command) people.yaml")
        }
        let path = options.positionals[1]
        guard let bytes = try? readWholeFile(path, limit: TimeZoneDatabase.maxFileSize).get() else {
            throw PagerError(.invalidConfig, "cannot read the people file \(path): check the path and permissions")
        }
        return try PeopleFile.parse(String(decoding: bytes, as: UTF8.self), path: path, zones: TimeZoneDatabase(environment: environment))
    }

    /// `next CONFIG [--count N] [--from T]`: upcoming pages per person, in
    /// the person's zone and in UTC, tab-separated.
    public static func next(_ options: ParsedOptions, environment: [String: String], now: WallTime,
                            io: CommandIO) throws(PagerError) -> Int32 {
        let people = try loadPeople(options, environment: environment, command: "next")
        guard options.positionals.count == 2 else { throw PagerError(.usage, "next takes only the people file") }
        let count = try countOption(options, default: 5)
        let from = try fromOption(options, default: now)
        var out = ""
        for p in people {
            for t in p.cron.fireTimes(after: from, count: count) {
                out += "\(p.name)\t\(formatLocal(t, in: p.cron.zone)) \(p.cron.zone.name)\t\(RFC3339.format(t))\n"
            }
            warnAboutGaps(p.cron, from: from, io: io, person: p)
        }
        io.stdout(out)
        return 0
    }

    /// Logs a warning for each day of the coming year on which a fire time
    /// of `cron` falls into a daylight-saving gap and so does not fire.
    static func warnAboutGaps(_ cron: CronExpression, from: WallTime, io: CommandIO, person: Person?) {
        for gap in cron.gapFireTimes(after: from, within: .seconds(366 * 86400)) {
            var md: [(String, JSON)] = []
            if let person { md += [("person.name", .string(person.name)), ("person.id", .string(person.id))] }
            md += [("cron", .string(cron.text)), ("zone", .string(cron.zone.name)),
                   ("local_time", .string(gap.localText)),
                   ("reason", .string("this local time does not exist that day (clocks jump forward): no page then; the expression fires again the next matching day"))]
            io.logger.log(.warning, "fire time falls into a daylight-saving gap", md)
        }
    }

    /// Everything `run` and `notify` need, checked before anything is sent.
    public struct Setup: Sendable {
        public var people: [Person]
        public var client: PagerDutyClient
        public var options: SchedulerOptions
        /// `--metrics-addr`, not yet serving (nil: off).
        public var metricsServer: PagerMetricsServer?
    }

    /// Loads people, settings and options; checks `From` (locally, and with
    /// PagerDuty unless dry-run). Throws usage/config errors (exit 2).
    public static func setup(_ options: ParsedOptions, environment: [String: String], command: String,
                             clock: any BlockingClock<WallTime>, logger: Logger, notifyTarget: String? = nil,
                             transport: (PagerSettings) throws(PagerError) -> any PagerTransport) throws(PagerError) -> Setup {
        var people = try loadPeople(options, environment: environment, command: command)
        if let target = notifyTarget {
            // `notify` pages one person: pick them before anything is sent.
            var matches = people.filter { $0.name == target }
            if matches.isEmpty { matches = people.filter { $0.id == target } }
            guard let person = matches.first else {
                throw PagerError(.usage, "nobody named '\(target)' (or with that PagerDuty id) in the people file")
            }
            people = [person]
        }
        var sched = SchedulerOptions()
        sched.dryRun = options.isSet("dry-run")
        sched.verifyAfter = try durationOption(options, "verify-after")
        sched.resolveAfter = try durationOption(options, "resolve-after")
        if let g = try durationOption(options, "missed-grace") { sched.missedGrace = g }
        if let text = options["max-creates-per-minute"] {
            guard let n = Int(text), (1...1000).contains(n) else {
                throw PagerError(.usage, "\(options.source(of: "max-creates-per-minute")): '\(text)' must be a whole number from 1 to 1000")
            }
            sched.maxCreatesPerMinute = n
        }
        var urgency = Urgency.high
        if let text = options["urgency"] {
            guard let u = Urgency(rawValue: text) else {
                throw PagerError(.usage, "\(options.source(of: "urgency")): '\(text)' must be high or low")
            }
            urgency = u
        }
        let metrics = PagerMetrics()
        let server = try options["metrics-addr"].map { addr throws(PagerError) in try PagerMetricsServer(address: addr, metrics: metrics) }
        let settings = try PagerSettings.load(environment: environment, needToken: !sched.dryRun)
        try FromCheck.local(people: people, from: settings.from)
        var client = PagerDutyClient(settings: settings, transport: try transport(settings), clock: clock, logger: logger)
        if let t = try durationOption(options, "timeout") { client.requestTimeout = t }
        if let t = try durationOption(options, "job-timeout") { client.jobTimeout = t }
        client.defaultUrgency = urgency
        client.metrics = metrics
        if !sched.dryRun {
            do throws(PagerError) {
                try FromCheck.remote(people: people, client: client)
            } catch where error.code == .invalidConfig {
                throw error
            } catch {
                throw PagerError(error.code, "start-up check of PAGERDUTY_FROM failed: \(error.message)", status: error.status, body: error.body)
            }
        }
        return Setup(people: people, client: client, options: sched, metricsServer: server)
    }

    static func durationOption(_ options: ParsedOptions, _ name: String) throws(PagerError) -> Duration? {
        guard let text = options[name] else { return nil }
        let d: Duration
        do throws(DurationText.ParseError) {
            d = try DurationText.parse(text)
        } catch {
            throw PagerError(.usage, "\(options.source(of: name)): \(error.description)")
        }
        guard d > .zero else {
            throw PagerError(.usage, "\(options.source(of: name)): '\(text)' must be longer than zero")
        }
        return d
    }

    /// `run CONFIG`: pages everybody on schedule until killed (or `stop`).
    public static func run(_ setup: Setup, until stop: WallTime? = nil) -> Int32 {
        var runner = PageRunner(people: setup.people, client: setup.client, options: setup.options)
        if let server = setup.metricsServer {
            server.serve()
            setup.client.logger.info("serving metrics", ("metrics.port", .number(String(server.port))), ("metrics.path", "/metrics"))
        }
        runner.run(until: stop)
        return 0
    }

    /// `notify CONFIG NAME|ID`: one page now (`setup` made with
    /// `notifyTarget`); with `--verify-after`, waits
    /// and logs the verdict. Exit 1 when the page failed.
    public static func notify(_ setup: Setup) -> Int32 {
        var runner = PageRunner(people: setup.people, client: setup.client, options: setup.options)
        guard runner.notifyNow(0) else { return ExitCode.failure }
        while runner.hasFollowUps { runner.stepFollowUps() }
        return 0
    }

    static func countOption(_ options: ParsedOptions, default value: Int) throws(PagerError) -> Int {
        guard let text = options["count"] else { return value }
        guard let n = Int(text), n >= 1, n <= 10_000 else {
            throw PagerError(.usage, "--count '\(text)' must be a whole number from 1 to 10000")
        }
        return n
    }
}
