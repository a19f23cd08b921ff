import KLCore
import KLSupport

/// The command-line options of pager-tester (flag, env var, default).
public enum PagerTesterOptions {
    public static let specs: [OptionSpec] = [
        OptionSpec("count", value: "N", default: "5", help: "How many fire times `cron` and `next` print."),
        OptionSpec("from", value: "RFC3339", default: "now", help: "Start time for `cron` and `next`."),
    ]
}

/// Dispatches a subcommand and maps errors to exit codes.
public enum PagerTesterMain {
    public static func run(_ options: ParsedOptions, environment: [String: String], io: CommandIO) -> Int32 {
        do throws(PagerError) {
            switch options.positionals.first {
            case "cron":
                return try PagerTesterCommand.cron(options, environment: environment, now: wallNow(), io: io)
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
}
