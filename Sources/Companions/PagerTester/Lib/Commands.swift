import KLCore
import KLSupport

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

    /// `cron EXPR [--from T] [--count N]`: prints the next N fire times as
    /// RFC 3339 UTC, one per line.
    public static func cron(_ options: ParsedOptions, environment: [String: String], now: WallTime,
                            io: CommandIO) throws(PagerError) -> Int32 {
        guard options.positionals.count == 2 else {
            throw PagerError(.usage, "cron takes exactly one expression (quote it): pager-tester cron '55 6 * * 2#1 America/Los_Angeles'")
        }
        let expression = try CronExpression.parse(options.positionals[1], zones: TimeZoneDatabase(environment: environment))
        let count = try countOption(options, default: 5)
        var from = now
        if let text = options["from"] {
            guard let t = RFC3339.parse(text) else {
                throw PagerError(.usage, "--from '\(text)' is not an RFC 3339 time such as 2026-01-01T00:00:00Z")
            }
            from = t
        }
        let times = expression.fireTimes(after: from, count: count)
        if times.isEmpty {
            throw PagerError(.invalidCron, "the cron expression '\(expression.text)' never fires (checked 30 years ahead); check the day and month fields")
        }
        io.stdout(times.map { RFC3339.format($0) + "\n" }.joined())
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
