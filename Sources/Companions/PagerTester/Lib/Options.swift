import KLCore
import KLTransport
import KLSystem

/// The command-line options of pager-tester (flag, env var, default).
public enum PagerTesterOptions {
    public static let specs: [OptionSpec] = [
        OptionSpec("count", value: "N", default: "5", help: "How many fire times `cron` and `next` print."),
        OptionSpec("from", value: "RFC3339", default: "now", help: "Start time for `cron` and `next`."),
        OptionSpec("dry-run", env: "PAGER_TESTER_DRY_RUN", value: nil,
                   help: "Log the incidents that would be created; send nothing (no token needed)."),
        OptionSpec("verify-after", env: "PAGER_TESTER_VERIFY_AFTER", value: "DURATION", default: "off",
                   help: "Check each test incident this long after creating it and log a verdict from the notification outcome: acknowledged, delivered, notification-failed or no-notification; checked again twice with doubling waits before a failing verdict."),
        OptionSpec("resolve-after", env: "PAGER_TESTER_RESOLVE_AFTER", value: "DURATION", default: "off",
                   help: "Resolve each test incident this long after creating it unless it is already resolved."),
        OptionSpec("timeout", env: "PAGER_TESTER_TIMEOUT", value: "DURATION", default: "10s",
                   help: "Bound on each PagerDuty request."),
        OptionSpec("job-timeout", env: "PAGER_TESTER_JOB_TIMEOUT", value: "DURATION", default: "5m",
                   help: "Bound on one page including its 429 waits (ratelimit-reset seconds, 60s without the header; at most 3 retries)."),
        OptionSpec("missed-grace", env: "PAGER_TESTER_MISSED_GRACE", value: "DURATION", default: "5m",
                   help: "A fire time picked up later than this while not busy paging (process suspended, clock jump) is skipped: an error log line and pager_tester_pages_skipped_total. At start-up, fire times this long ago (plus the minutes pacing needs for everybody) are replayed; their incident_key is looked up first, so nobody is paged twice."),
        OptionSpec("urgency", env: "PAGER_TESTER_URGENCY", value: "high|low", default: "high",
                   help: "Urgency of the test incidents for people without their own 'urgency' field. high rings the phone through do-not-disturb; without urgency the service's support hours would decide."),
        OptionSpec("max-creates-per-minute", env: "PAGER_TESTER_MAX_CREATES_PER_MINUTE", value: "N", default: "6",
                   help: "Most test incidents created in any 60 s (PagerDuty allows about 6 a minute per service). Pages due together wait their turn; none is dropped for waiting."),
        OptionSpec("metrics-addr", env: "PAGER_TESTER_METRICS_ADDR", value: "HOST:PORT", default: "off",
                   help: "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. :9102): pager_tester_last_verdict{person_id,name,verdict}, pages sent/failed/skipped, 429 waits."),
    ]

    /// The log level from `PAGER_TESTER_LOG_LEVEL` (unset or empty: info);
    /// an unknown name is a usage error, not a silent default.
    public static func logLevel(environment: [String: String]) throws(PagerError) -> LogLevel {
        guard let text = environment["PAGER_TESTER_LOG_LEVEL"], !text.isEmpty else { return .info }
        guard let level = LogLevel(name: text) else {
            throw PagerError(.usage, "env PAGER_TESTER_LOG_LEVEL: unknown log level '\(text)': use one of \(LogLevel.names.joined(separator: ", "))")
        }
        return level
    }
}

/// Dispatches a subcommand and maps errors to exit codes.
public enum PagerTesterMain {
    public static func run(_ options: ParsedOptions, environment: [String: String], io: CommandIO) -> Int32 {
        do throws(PagerError) {
            let command = options.positionals.first
            switch command {
            case "cron":
                return try PagerTesterCommand.cron(options, environment: environment, now: wallNow(), io: io)
            case "next":
                return try PagerTesterCommand.next(options, environment: environment, now: wallNow(), io: io)
            case "run", "notify":
                if command == "run", options.positionals.count != 2 {
                    throw PagerError(.usage, "run takes only the people file: pager-tester run people.yaml")
                }
                if command == "notify", options.positionals.count != 3 {
                    throw PagerError(.usage, "notify needs the people file and one NAME or ID: pager-tester notify people.yaml 'Jane Doe'")
                }
                let setup = try PagerTesterCommand.setup(options, environment: environment, command: command!,
                                                         clock: WallClock(), logger: io.logger,
                                                         notifyTarget: command == "notify" ? options.positionals[2] : nil,
                                                         transport: httpTransport)
                return command == "run" ? PagerTesterCommand.run(setup) : PagerTesterCommand.notify(setup)
            case nil:
                throw PagerError(.usage, "missing command: use run, next, notify or cron")
            case let other?:
                throw PagerError(.usage, "unknown command '\(other)': use run, next, notify or cron")
            }
        } catch {
            writeAll(fd: 2, "pager-tester: \(error.description)\n")
            return error.isUsage ? ExitCode.usage : ExitCode.failure
        }
    }

    /// The production transport: `KLTransport.HTTPClient` for `PAGERDUTY_API_URL`
    /// (system CA bundle).
    public static func httpTransport(_ settings: PagerSettings) throws(PagerError) -> any PagerTransport {
        do throws(TransportError) {
            return try HTTPClient(baseURL: settings.apiURL)
        } catch {
            throw PagerError(.invalidConfig, "PAGERDUTY_API_URL '\(settings.apiURL)': \(error.message)")
        }
    }
}
