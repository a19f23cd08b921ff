import KLCore
import KLSystem

/// The `policy-check` command line: subcommands `istio-ports`, `pdb` and `coverage`.
///
/// Exit codes (documented in docs/policy-check.md):
/// - `istio-ports`, `pdb`: 0 no violation, 1 violations, 2 bad usage or bad input.
/// - `coverage`: 0 gate passed, 1 gate failed (a failing test, an untested
///   policy file or not-covered lines), 2 bad usage or an unreadable report,
///   127 `opa` not found or not executable.
public enum PolicyCheckCLI {
    public static let usage = """
        usage: policy-check istio-ports [FILE|-] [--format text|json] [--protocols LIST]
               policy-check pdb [FILE|-] [--format text|json]
               policy-check coverage [--opa PATH] [--report FILE|-] [--format text|json] [DIR...]
               policy-check --help | --version

        Commands:
          istio-ports   Check that every Service port is routable by Istio (no OPA needed).
          pdb           Check that every replicated workload has one PodDisruptionBudget that lets nodes drain.
          coverage      Fail unless `opa test --coverage` passes and covers every line.

        Run `policy-check COMMAND --help` for the options of a command.

        """

    static let istioPortsOptions = OptionParser([
        OptionSpec("format", env: "POLICY_CHECK_FORMAT", value: "text|json", default: "text",
                   help: "Output: one message per line, or one JSON document for CI."),
        OptionSpec("protocols", env: "POLICY_CHECK_PROTOCOLS", value: "LIST",
                   default: IstioPortRule.defaultProtocols.joined(separator: ","),
                   help: "Comma-separated protocols to accept instead of Istio's (the Constraint's parameters.protocols)."),
    ])

    static let pdbOptions = OptionParser([
        OptionSpec("format", env: "POLICY_CHECK_FORMAT", value: "text|json", default: "text",
                   help: "Output: one message per line, or one JSON document for CI."),
    ])

    static let coverageOptions = OptionParser([
        OptionSpec("opa", env: "POLICY_CHECK_OPA", value: "PATH", default: "opa (from PATH)",
                   help: "The opa executable that runs `opa test --coverage DIR...`."),
        OptionSpec("report", env: "POLICY_CHECK_REPORT", value: "FILE|-",
                   help: "Read a coverage report `opa test --coverage` already wrote instead of running opa."),
        OptionSpec("format", env: "POLICY_CHECK_FORMAT", value: "text|json", default: "text",
                   help: "Output: findings one per line, or one JSON document for CI."),
        OptionSpec("timeout", env: "POLICY_CHECK_TIMEOUT", value: "DURATION", default: "5m",
                   help: "Stop opa and fail when it runs longer."),
    ])

    /// Runs one command line; returns the exit code.
    public static func run(_ arguments: [String], environment: [String: String], io: some PolicyCheckIO) -> Int32 {
        guard let command = arguments.first else {
            io.writeErr(usage)
            return 2
        }
        let rest = Array(arguments.dropFirst())
        switch command {
        case "-h", "--help", "help":
            io.writeOut(usage)
            return 0
        case "--version":
            // policy-check does not link OpenSSL.
            io.writeOut(BuildInfo.versionText(program: "policy-check", version: kubeLeaderVersion, openSSL: nil))
            return 0
        case "istio-ports":
            return guarded(io) { () throws(PolicyCheckError) -> Int32 in try istioPorts(rest, environment, io) }
        case "pdb":
            return guarded(io) { () throws(PolicyCheckError) -> Int32 in try pdb(rest, environment, io) }
        case "coverage":
            return guarded(io) { () throws(PolicyCheckError) -> Int32 in try coverage(rest, environment, io) }
        default:
            io.writeErr("policy-check: unknown command '\(command)'; the commands are istio-ports, pdb and coverage (see --help).\n")
            return 2
        }
    }

    static func guarded(_ io: some PolicyCheckIO, _ body: () throws(PolicyCheckError) -> Int32) -> Int32 {
        do { return try body() } catch {
            io.writeErr("policy-check: \(error.message)\n")
            return error.exitCode
        }
    }

    static func parse(_ parser: OptionParser, _ args: [String], _ env: [String: String]) throws(PolicyCheckError) -> ParsedOptions {
        do { return try parser.parse(arguments: args, environment: env) } catch {
            throw PolicyCheckError(.usage, error.message + ".")
        }
    }

    static func format(_ options: ParsedOptions) throws(PolicyCheckError) -> Bool {
        switch options["format"] ?? "text" {
        case "text": return false
        case "json": return true
        case let other: throw PolicyCheckError(.usage, "\(options.source(of: "format")) must be text or json, not '\(other)'.")
        }
    }

    // MARK: istio-ports

    static func istioPorts(_ args: [String], _ env: [String: String], _ io: some PolicyCheckIO) throws(PolicyCheckError) -> Int32 {
        let options = try parse(istioPortsOptions, args, env)
        if options.help {
            io.writeOut(help("istio-ports [FILE|-] [OPTIONS]", """
                Checks every Service in FILE (default: standard input) against Istio's
                protocol selection: each port needs a name `<protocol>[-<suffix>]` or an
                appProtocol (which wins), matched ignoring case; UDP ports always pass.
                FILE is JSON as `kubectl get … -o json` prints it (one object or a List) or
                an AdmissionReview. Namespaces in FILE labelled
                \(IstioPortsCheck.optOutLabel)="true" are skipped.
                """, exit: "0 no violation, 1 violations, 2 bad usage or bad input.", istioPortsOptions))
            return 0
        }
        let json = try format(options)
        let (path, source) = try inputFile("istio-ports", options)
        let protocols = (options["protocols"] ?? "").split(separator: ",").map { String($0).trimmingWhitespace }.filter { !$0.isEmpty }
        let rule = try IstioPortRule(protocols: protocols)
        let result = try IstioPortsCheck.check(text: try io.read(path), source: source, rule: rule)
        return report(json: json, IstioPortsOutput.json(result, rule: rule), result.violations.map(\.message),
                      summary: "\(result.services) Service(s) checked, \(result.skipped) skipped (namespace opted out), \(result.violations.count) violation(s).", io)
    }

    // MARK: pdb

    static func pdb(_ args: [String], _ env: [String: String], _ io: some PolicyCheckIO) throws(PolicyCheckError) -> Int32 {
        let options = try parse(pdbOptions, args, env)
        if options.help {
            io.writeOut(help("pdb [FILE|-] [OPTIONS]", """
                Checks every Deployment and StatefulSet in FILE (default: standard input)
                against the PodDisruptionBudgets in FILE, as the Gatekeeper policy
                k8srequiredpdb does in the cluster:
                  1. replicas >= 2 (unset is 1) needs a budget of its namespace whose
                     selector matches the pod template's labels;
                  2. every selecting budget must allow one eviction at full scale:
                     maxUnavailable 0 or 0%, minAvailable 100% block every drain;
                     minAvailable (percentages rounded up) >= replicas blocks too;
                  3. more than one selecting budget: the eviction API refuses the pods;
                  4. skipped: namespaces in FILE labelled, and workloads annotated,
                     \(PDBCheck.optOut)="true".
                FILE is JSON as `kubectl get namespaces,deployments,statefulsets,poddisruptionbudgets -A -o json`
                prints it (a List or one object), an AdmissionReview, or a Gatekeeper
                review {"review": …, "inventory": …}. Include namespaces for the label opt-out.
                Prints one line per violation: KIND NAMESPACE NAME: REASON.
                """, exit: "0 no violation, 1 violations, 2 bad usage or bad input.", pdbOptions))
            return 0
        }
        let json = try format(options)
        let (path, source) = try inputFile("pdb", options)
        let result = try PDBCheck.check(text: try io.read(path), source: source)
        return report(json: json, PDBOutput.json(result), result.violations.map(\.message),
                      summary: "\(result.workloads) workload(s) checked against \(result.budgets) PodDisruptionBudget(s), \(result.skipped) skipped (opted out), \(result.violations.count) violation(s).", io)
    }

    // MARK: coverage

    /// A command's `--help`: its usage line, what it does, its exit codes and its options.
    static func help(_ usage: String, _ about: String, exit: String, _ options: OptionParser) -> String {
        "usage: policy-check \(usage)\n\n\(about)\nExit: \(exit)\n\nOptions:\n\(options.helpText())\n"
    }

    /// The one FILE (default `-`, standard input) a check reads, and its name in messages.
    static func inputFile(_ command: String, _ options: ParsedOptions) throws(PolicyCheckError) -> (path: String, source: String) {
        guard options.positionals.count <= 1 else {
            throw PolicyCheckError(.usage, "\(command) takes one FILE (or - for standard input), got \(options.positionals.count); merge them with `kubectl get … -o json`.")
        }
        let path = options.positionals.first ?? "-"
        return (path, path == "-" ? "standard input" : path)
    }

    /// Prints a check's result: one JSON document, or one line per violation
    /// and a summary on standard error. Exit 0 without violations, else 1.
    static func report(json: Bool, _ document: @autoclosure () -> JSON, _ violations: [String], summary: String,
                       _ io: some PolicyCheckIO) -> Int32 {
        if json {
            io.writeOut(document().prettyPrinted() + "\n")
        } else {
            for v in violations { io.writeOut(v + "\n") }
            io.writeErr("policy-check: \(summary)\n")
        }
        return violations.isEmpty ? 0 : 1
    }

    static func coverage(_ args: [String], _ env: [String: String], _ io: some PolicyCheckIO) throws(PolicyCheckError) -> Int32 {
        let options = try parse(coverageOptions, args, env)
        if options.help {
            io.writeOut(help("coverage [OPTIONS] [DIR...]", """
                Runs `opa test --coverage DIR...` (default DIR: policies) and fails when a
                test fails, when a policy file (not _test.rego) is untested, or when a
                line is not covered. Prints each finding as FILE:START-END, FILE:LINE or
                FILE: untested, and the overall coverage when the gate passes.
                With --report, reads a report opa already wrote (DIRs are then only
                searched for untested files).
                """, exit: """
                0 passed, 1 gate failed, 2 bad usage or unreadable report,
                127 opa not found (install it from https://www.openpolicyagent.org/docs/#running-opa).
                """, coverageOptions))
            return 0
        }
        let json = try format(options)
        let timeout: Duration
        do { timeout = try DurationText.parse(options["timeout"] ?? "5m") } catch {
            throw PolicyCheckError(.usage, "\(options.source(of: "timeout")) is not a duration (\(error)); use e.g. 90s or 5m.")
        }
        let explicitDirs = !options.positionals.isEmpty
        let dirs = explicitDirs ? options.positionals : ["policies"]
        for dir in dirs where !io.isDirectory(dir) && (explicitDirs || options["report"] == nil) {
            throw PolicyCheckError(.usage, "policy directory '\(dir)' does not exist; give the directory that holds the .rego files.")
        }

        // 1. The report: read it, or run opa for it.
        let reportText: [UInt8], source: String
        if let report = options["report"] {
            reportText = try io.read(report)
            source = report == "-" ? "standard input" : report
        } else {
            let opa = options["opa"] ?? "opa"
            let output = try io.run([opa, "test", "--coverage", "--format=json"] + dirs, timeout: timeout)
            if output.status != 0 {
                return failedTests(output, opa: opa, json: json, io)
            }
            reportText = output.stdout
            source = "the output of \(opa) test --coverage"
        }
        let parsed: JSON
        do { parsed = try JSON.parse(bytes: reportText) } catch {
            throw PolicyCheckError(.badReport, "\(source) is not JSON (\(error)). Produce it with `opa test --coverage DIR`.")
        }
        let files = try CoverageReport.parse(parsed, source: source)

        // 2. The policy files on disk, to find untested ones.
        var policyFiles: [String] = []
        for dir in dirs where io.isDirectory(dir) { policyFiles += try io.regoFiles(under: dir) }

        // 3. The verdict.
        let gate = CoverageGate(files: files, policyFiles: policyFiles)
        if json {
            io.writeOut(CoverageOutput.json(gate).prettyPrinted() + "\n")
        } else {
            for line in gate.findingLines { io.writeOut(line + "\n") }
            let summary = "coverage: \(CoverageOutput.percentText(gate.percent))% (\(gate.coveredLines) of \(gate.coveredLines + gate.notCoveredLines) lines in \(files.count) file(s))"
            if gate.passed {
                io.writeOut(summary + "\n")
            } else {
                io.writeErr("policy-check: coverage gate FAILED: \(gate.untested.count) untested file(s), \(gate.uncovered.count) file(s) with lines not covered; \(summary).\n")
            }
        }
        return gate.passed ? 0 : 1
    }

    /// opa exits 1 and prints no report when a test fails (or a module does
    /// not compile); that fails the gate. Any other status means opa itself failed.
    static func failedTests(_ output: CommandOutput, opa: String, json: Bool, _ io: some PolicyCheckIO) -> Int32 {
        let detail = output.stderr.isEmpty ? String(decoding: output.stdout, as: UTF8.self) : output.stderr
        let failed = output.status == 1
        if json {
            let doc: JSON = [
                "passed": false,
                "failed_tests": .bool(failed),
                "opa_exit_code": JSON(Int(output.status)),
                "opa_output": .string(detail),
            ]
            io.writeOut(doc.prettyPrinted() + "\n")
        } else {
            io.writeErr(detail.hasSuffix("\n") || detail.isEmpty ? detail : detail + "\n")
        }
        if failed {
            if !json { io.writeErr("policy-check: coverage gate FAILED: `\(opa) test` reports failing tests or modules that do not compile (see above).\n") }
            return 1
        }
        io.writeErr("policy-check: `\(opa) test --coverage` failed with exit code \(output.status) without a report; run it by hand to see why.\n")
        return 2
    }
}
