import KLCore
import KLSystem
import PagerTesterKit

/// pager-tester's entry point. Wiring only: parse the command line, call the
/// command, exit.
@main
enum PagerTesterEntry {
    static func main() {
        let environment = ProcessEnvironment.current()
        let parser = OptionParser(PagerTesterOptions.specs)
        let logLevel: LogLevel
        do {
            logLevel = try PagerTesterOptions.logLevel(environment: environment)
        } catch {
            writeAll(fd: 2, "pager-tester: \(error.description)\n")
            exit(ExitCode.usage)
        }
        let io = CommandIO(stdout: { writeAll(fd: 1, $0) }, logger: Logger(level: logLevel))

        let code: Int32
        do {
            let options = try parser.parse(arguments: ProcessEnvironment.arguments(), environment: environment)
            if options.help {
                writeAll(fd: 1, PagerTesterCommand.usage + "\n\noptions:\n" + parser.helpText() + "\n")
                code = 0
            } else if options.version {
                writeAll(fd: 1, PagerTesterCommand.versionText)
                code = 0
            } else {
                code = PagerTesterMain.run(options, environment: environment, io: io)
            }
        } catch {
            writeAll(fd: 2, "pager-tester: \(error.description)\n\(PagerTesterCommand.usage)\n")
            code = ExitCode.usage
        }
        exit(code)
    }
}
