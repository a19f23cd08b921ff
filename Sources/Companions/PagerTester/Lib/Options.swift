import KLCore
import KLKube
import KLSupport

/// The command-line options of pager-tester (flag, env var, default).
public enum PagerTesterOptions {
    public static let specs: [OptionSpec] = [
        OptionSpec("count", value: "N", default: "5", help: "How many fire times `cron` and `next` print."),
        OptionSpec("from", value: "RFC3339", default: "now", help: "Start time for `cron` and `next`."),
        OptionSpec("dry-run", env: "PAGER_TESTER_DRY_RUN", value: nil,
                   help: "Log the incidents that would be created; send nothing (no token needed)."),
        OptionSpec("verify-after", env: "PAGER_TESTER_VERIFY_AFTER", value: "DURATION", default: "off",
                   help: "Check each test incident this long after creating it and log a verdict (paged, acknowledged, no-notification); retried twice with doubling waits before no-notification."),
        OptionSpec("resolve-after", env: "PAGER_TESTER_RESOLVE_AFTER", value: "DURATION", default: "off",
                   help: "Resolve each test incident this long after creating it unless it is already resolved."),
        OptionSpec("timeout", env: "PAGER_TESTER_TIMEOUT", value: "DURATION", default: "10s",
                   help: "Bound on each PagerDuty request."),
        OptionSpec("job-timeout", env: "PAGER_TESTER_JOB_TIMEOUT", value: "DURATION", default: "5m",
                   help: "Bound on one page including its 429 waits (ratelimit-reset seconds, 60s without the header; at most 3 retries)."),
        OptionSpec("missed-grace", env: "PAGER_TESTER_MISSED_GRACE", value: "DURATION", default: "5m",
                   help: "A fire time picked up later than this (process suspended, clock jump, long jobs) is skipped and logged as missed."),
    ]
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
                                                         clock: SystemClock(), logger: io.logger,
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

    /// The production transport: `KLKube.HTTPClient` for `PAGERDUTY_API_URL`
    /// (system CA bundle).
    public static func httpTransport(_ settings: PagerSettings) throws(PagerError) -> any PagerTransport {
        do throws(HTTPError) {
            return try HTTPClient(baseURL: settings.apiURL)
        } catch {
            throw PagerError(.invalidConfig, "PAGERDUTY_API_URL '\(settings.apiURL)': \(error.message)")
        }
    }
}
