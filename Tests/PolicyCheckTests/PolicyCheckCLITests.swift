import KLCore
import Synchronization
import Testing
@testable import PolicyCheckKit

/// An in-memory world for the command line: files, directories, one canned
/// `opa` answer; records what was written and which commands ran.
final class FakeIO: PolicyCheckIO, Sendable {
    struct State {
        var files: [String: String] = [:]
        var dirs: [String: [String]] = [:]
        var opa: Result<CommandOutput, PolicyCheckError>? = nil
        var ran: [[String]] = []
        var out = ""
        var err = ""
    }
    let state: Mutex<State>
    init(_ s: State = State()) { state = Mutex(s) }

    var out: String { state.withLock { $0.out } }
    var err: String { state.withLock { $0.err } }
    var ran: [[String]] { state.withLock { $0.ran } }

    func read(_ path: String) throws(PolicyCheckError) -> [UInt8] {
        guard let text = state.withLock({ $0.files[path] }) else {
            throw PolicyCheckError(.badInput, "cannot read \(path)")
        }
        return Array(text.utf8)
    }
    func isDirectory(_ path: String) -> Bool { state.withLock { $0.dirs[path] != nil } }
    func regoFiles(under directory: String) throws(PolicyCheckError) -> [String] { state.withLock { $0.dirs[directory] ?? [] } }
    func run(_ argv: [String], timeout: Duration) throws(PolicyCheckError) -> CommandOutput {
        let canned = state.withLock { s in s.ran.append(argv); return s.opa }
        guard let canned else {
            Issue.record("unexpected command \(argv)")
            return CommandOutput(status: 0, stdout: [], stderr: "")
        }
        return try canned.get()
    }
    func writeOut(_ text: String) { state.withLock { $0.out += text } }
    func writeErr(_ text: String) { state.withLock { $0.err += text } }
}

@Suite struct PolicyCheckCLITests {
    let policies = ["policies/istio-port-names/src.rego", "policies/istio-port-names/src_test.rego"]

    func run(_ args: [String], _ io: FakeIO, env: [String: String] = [:]) -> Int32 {
        PolicyCheckCLI.run(args, environment: env, io: io)
    }

    func opa(_ status: Int32, stdout: String = "", stderr: String = "") -> FakeIO.State {
        var s = FakeIO.State()
        s.dirs["policies"] = policies
        s.opa = .success(CommandOutput(status: status, stdout: Array(stdout.utf8), stderr: stderr))
        return s
    }

    // MARK: istio-ports

    @Test func istioPorts_clean_exits0() {
        let io = FakeIO(.init(files: ["-": #"{"kind":"Service","metadata":{"name":"a","namespace":"b"},"spec":{"ports":[{"name":"http"}]}}"#]))
        #expect(run(["istio-ports"], io) == 0)
        #expect(io.out == "")
        #expect(io.err.contains("1 Service(s) checked"))
    }

    @Test func istioPorts_violations_exit1_oneLinePerPort() {
        let io = FakeIO(.init(files: ["svc.json": #"{"kind":"Service","metadata":{"name":"a","namespace":"b"},"spec":{"ports":[{},{"name":"x"}]}}"#]))
        #expect(run(["istio-ports", "svc.json"], io) == 1)
        #expect(io.out.split(separator: "\n").count == 2)
        #expect(io.out.hasPrefix("Service b a: port ports[0] name must match"))
    }

    @Test func istioPorts_jsonFormat_isOneDocument() throws {
        let io = FakeIO(.init(files: ["-": #"{"kind":"Service","metadata":{"name":"a","namespace":"b"},"spec":{"ports":[{"port":81}]}}"#]))
        #expect(run(["istio-ports", "-", "--format", "json", "--protocols", "http, tcp"], io) == 1)
        let doc = try JSON.parse(io.out)
        #expect(doc["violations"]?[0]?["port"] == "81")
        #expect(doc["violations"]?[0]?["field"] == "name")
        #expect(doc["violations"]?[0]?["message"] == "Service b a: port 81 name must match ^(http|tcp)($|-) to be routable by Istio")
        #expect(doc["services"] == 1)
        #expect(doc["skipped"] == 0)
    }

    @Test func istioPorts_formatFromEnvironment() throws {
        let io = FakeIO(.init(files: ["-": #"{"kind":"List","items":[]}"#]))
        #expect(run(["istio-ports"], io, env: ["POLICY_CHECK_FORMAT": "json"]) == 0)
        #expect(try JSON.parse(io.out)["violations"] == [])
    }

    @Test func istioPorts_badInput_exits2_withTheReason() {
        let io = FakeIO(.init(files: ["-": "[1]"]))
        #expect(run(["istio-ports"], io) == 2)
        #expect(io.err.hasPrefix("policy-check: standard input: the top level must be a Kubernetes object"))
    }

    @Test(arguments: [
        ["istio-ports", "--format", "yaml"],
        ["istio-ports", "a.json", "b.json"],
        ["istio-ports", "--protocols", "http|tcp"],
        ["istio-ports", "--nope"],
        ["coverage", "--format", "xml"],
        ["coverage", "--timeout", "soon"],
        ["frobnicate"],
        [],
    ])
    func badUsage_exits2(_ args: [String]) {
        let io = FakeIO(.init(files: ["-": "{}"]))
        #expect(run(args, io) == 2)
        #expect(!io.err.isEmpty)
    }

    @Test(arguments: [["--help"], ["istio-ports", "--help"], ["coverage", "-h"], ["--version"]])
    func help_exits0_onStdout(_ args: [String]) {
        let io = FakeIO()
        #expect(run(args, io) == 0)
        #expect(io.out.contains("policy-check"))
        #expect(io.err.isEmpty)
    }

    // MARK: coverage through opa

    @Test func coverage_runsOpaTestWithCoverage_onTheDefaultDirectory() {
        let io = FakeIO(opa(0, stdout: Reports.full))
        #expect(run(["coverage", "--opa", "/usr/local/bin/opa"], io) == 0)
        #expect(io.ran == [["/usr/local/bin/opa", "test", "--coverage", "--format=json", "policies"]])
        #expect(io.out == "coverage: 100.0% (9 of 9 lines in 2 file(s))\n")
    }

    @Test func coverage_failingTest_exits1_andShowsOpaOutput() {
        let io = FakeIO(opa(1, stderr: "data.x_test.test_a: FAIL (1ms)\n"))
        #expect(run(["coverage"], io) == 1)
        #expect(io.err.contains("data.x_test.test_a: FAIL"))
        #expect(io.err.contains("coverage gate FAILED"))
    }

    @Test func coverage_failingTest_inJSON() throws {
        let io = FakeIO(opa(1, stderr: "FAIL"))
        #expect(run(["coverage", "--format", "json"], io) == 1)
        let doc = try JSON.parse(io.out)
        #expect(doc["passed"] == false)
        #expect(doc["failed_tests"] == true)
    }

    @Test func coverage_opaCrash_exits2() {
        let io = FakeIO(opa(2, stderr: "unknown flag"))
        #expect(run(["coverage"], io) == 2)
    }

    @Test func coverage_opaMissing_exits127_withHowToGetIt() {
        var s = opa(0)
        s.opa = .failure(PolicyCheckError(.opaMissing, "opa was not found; install it"))
        let io = FakeIO(s)
        #expect(run(["coverage"], io) == 127)
        #expect(io.err.contains("install"))
    }

    @Test func coverage_opaPrintsNoJSON_exits2() {
        let io = FakeIO(opa(0, stdout: "PASS: 3/3"))
        #expect(run(["coverage"], io) == 2)
        #expect(io.err.contains("is not JSON"))
    }

    @Test func coverage_missingDefaultDirectory_exits2() {
        let io = FakeIO()
        #expect(run(["coverage"], io) == 2)
        #expect(io.err.contains("policy directory 'policies' does not exist"))
    }

    // MARK: coverage from a report

    @Test func coverage_report_uncoveredAndUntested_exit1_withFindings() {
        var s = FakeIO.State()
        s.files["r.json"] = Reports.opa120
        s.dirs["p"] = ["p/ports.rego", "p/ports_test.rego", "p/unused.rego", "p/new.rego"]
        let io = FakeIO(s)
        #expect(run(["coverage", "--report", "r.json", "p"], io) == 1)
        #expect(io.out == "p/ports.rego:9-11\np/new.rego: untested\np/unused.rego: untested\n")
        #expect(io.err.contains("coverage gate FAILED: 2 untested file(s), 1 file(s) with lines not covered; coverage: 60.0%"))
        #expect(io.ran.isEmpty)
    }

    @Test func coverage_report_json() throws {
        let io = FakeIO(.init(files: ["-": Reports.opa120]))
        #expect(run(["coverage", "--report", "-", "--format", "json"], io) == 1)
        let doc = try JSON.parse(io.out)
        #expect(doc["passed"] == false)
        #expect(doc["coverage"] == .number("60.0"))
        #expect(doc["uncovered"] == [["file": "p/ports.rego", "start": 9, "end": 11]])
        #expect(doc["untested"] == ["p/unused.rego"])
    }

    @Test func coverage_report_withoutDefaultDirectory_stillJudgesTheReport() {
        let io = FakeIO(.init(files: ["-": Reports.full]))
        #expect(run(["coverage", "--report", "-"], io) == 0)
        #expect(io.out.hasPrefix("coverage: 100.0%"))
    }

    @Test func coverage_unreadableReport_exits2() {
        let io = FakeIO(.init(files: ["r.json": "{\"files\": 3}"]))
        #expect(run(["coverage", "--report", "r.json"], io) == 2)
        #expect(io.err.contains("is not an OPA coverage report"))
    }

    @Test func coverage_explicitMissingDirectory_exits2() {
        let io = FakeIO(.init(files: ["-": Reports.full]))
        #expect(run(["coverage", "--report", "-", "nope"], io) == 2)
    }
}
