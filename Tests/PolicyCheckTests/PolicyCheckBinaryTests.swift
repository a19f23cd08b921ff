import KLSystem
import KLCore
import KLProcess
import KLTestSupport
import Testing

/// Black-box: the built `policy-check` binary, its exit codes, and the
/// process path of `coverage` through stand-in `opa` executables.
@Suite(.timeLimit(.minutes(1))) struct BinaryTests {
    static let packageRoot = TestPaths.packageRoot
    static let binary = TestPaths.binary("policy-check")

    func policyCheck(_ args: [String], stdin: String = "", cwd: String? = nil) throws -> CapturedOutput {
        var argv = [Self.binary] + args
        if let cwd { argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", cwd] + argv }
        return try runCapturing(argv, stdin: Array(stdin.utf8), timeout: .seconds(50))
    }

    // MARK: istio-ports

    @Test func istioPorts_exitCodes_0_1_2() throws {
        let good = #"{"kind":"Service","metadata":{"name":"a","namespace":"b"},"spec":{"ports":[{"name":"http-web","port":80}]}}"#
        let bad = #"{"kind":"Service","metadata":{"name":"a","namespace":"b"},"spec":{"ports":[{"name":"web","port":80}]}}"#
        #expect(try policyCheck(["istio-ports"], stdin: good).status == .exited(0))
        let violation = try policyCheck(["istio-ports", "-"], stdin: bad)
        #expect(violation.status == .exited(1))
        #expect(violation.stdoutText.hasPrefix("Service b a: port web name must match ^(grpc|"))
        let broken = try policyCheck(["istio-ports"], stdin: "{")
        #expect(broken.status == .exited(2))
        #expect(broken.stderrText.contains("standard input is not JSON"))
        let empty = try policyCheck(["istio-ports"], stdin: "")
        #expect(empty.status == .exited(2))
        #expect(empty.stderrText.contains("standard input is empty"))
    }

    @Test func istioPorts_sharedCorpus_fromAFile_inJSON() throws {
        let out = try policyCheck(["istio-ports", "--format", "json", Self.packageRoot + "/policies/testdata/services.json"])
        #expect(out.status == .exited(1))
        let doc = try JSON.parse(out.stdoutText)
        #expect((doc["violations"]?.arrayValue?.count ?? 0) > 0)
        #expect((doc["skipped"]?.intValue ?? 0) > 0)
    }

    @Test func istioPorts_missingFile_exits2() throws {
        let out = try policyCheck(["istio-ports", "/nonexistent/services.json"])
        #expect(out.status == .exited(2))
        #expect(out.stderrText.contains("cannot open '/nonexistent/services.json'"))
    }

    // MARK: pdb

    @Test func pdb_sampleFile_printsOneLinePerViolation_exits1() throws {
        let out = try policyCheck(["pdb", Self.packageRoot + "/policies/testdata/workloads.json"])
        #expect(out.status == .exited(1))
        #expect(out.stdoutText.split(separator: "\n").map(String.init) == [
            "Deployment shop api: 4 replicas and no PodDisruptionBudget selects its pods",
            "Deployment shop cart: PodDisruptionBudget cart allows no disruption at full scale (replicas 2, minAvailable 2)",
            "Deployment shop search: selected by 2 PodDisruptionBudgets (backend-search, search); the eviction API refuses to evict its pods",
            "StatefulSet shop postgres: PodDisruptionBudget postgres blocks every drain (maxUnavailable 0)",
            "Deployment payments worker: PodDisruptionBudget worker allows no disruption at full scale (replicas 1, minAvailable 1)",
            "StatefulSet monitoring prometheus: PodDisruptionBudget prometheus allows no disruption at full scale (replicas 2, minAvailable 90%)",
        ])
        #expect(out.stderrText.contains("12 workload(s) checked against 11 PodDisruptionBudget(s), 2 skipped (opted out), 6 violation(s)"))
    }

    @Test func pdb_exitCodes_0_2_andJSON() throws {
        let good = #"{"kind":"Deployment","metadata":{"name":"a","namespace":"b"},"spec":{"replicas":1}}"#
        #expect(try policyCheck(["pdb"], stdin: good).status == .exited(0))
        let bad = try policyCheck(["pdb", "-"], stdin: #"{"kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":"two"}}"#)
        #expect(bad.status == .exited(2))
        #expect(bad.stderrText.contains("standard input: the object.spec.replicas must be a whole number"))
        let json = try policyCheck(["pdb", "--format", "json"], stdin: #"{"kind":"StatefulSet","metadata":{"name":"db","namespace":"x"},"spec":{"replicas":3}}"#)
        #expect(json.status == .exited(1))
        let doc = try JSON.parse(json.stdoutText)
        #expect(doc["violations"]?[0]?["reason"]?.stringValue == "3 replicas and no PodDisruptionBudget selects its pods")
        #expect(doc["workloads"]?.intValue == 1)
        #expect(try policyCheck(["pdb", "a", "b"]).status == .exited(2))
    }

    @Test func help_forEachCommand_exits0() throws {
        for args in [["--help"], ["istio-ports", "--help"], ["pdb", "--help"], ["coverage", "--help"]] {
            let out = try policyCheck(args)
            #expect(out.status == .exited(0))
            #expect(out.stdoutText.contains("usage: policy-check"))
        }
    }

    // MARK: coverage through a stand-in opa

    /// A temporary directory with `policies/a.rego` and an executable `opa`
    /// shell script that records its arguments and then runs `body`.
    func standIn(_ body: String) throws -> String {
        let dir = makeTemporaryDirectory(prefix: "policy-check-test")
        mkdir(dir + "/policies", 0o755)
        try write(dir + "/policies/a.rego", "package a\n\nallow if input.x\n")
        try write(dir + "/policies/a_test.rego", "package a_test\n\ntest_allow if data.a.allow with input as {\"x\": true}\n")
        try write(dir + "/opa", "#!/bin/sh\necho \"$@\" > \"$(dirname \"$0\")/args\"\n" + body + "\n")
        chmod(dir + "/opa", 0o755)
        return dir
    }

    func write(_ path: String, _ text: String) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        try #require(fd >= 0)
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.write(fd, $0.baseAddress, $0.count - 1) }
        close(fd)
    }

    func remove(_ dir: String) {
        _ = try? runCapturing(["/bin/rm", "-rf", dir])
    }

    func read(_ path: String) -> String {
        (try? runCapturing(["/bin/cat", path]).stdoutText) ?? ""
    }

    static let fullReport = #"{"files":{"policies/a.rego":{"covered":[{"start":{"row":3,"col":1},"end":{"row":3,"col":17}}],"covered_lines":1,"coverage":100},"policies/a_test.rego":{"covered":[{"start":{"row":3}}],"covered_lines":1,"coverage":100}},"covered_lines":2,"coverage":100}"#

    @Test func coverage_standInPasses_exit0_andGetsTheOpaArguments() throws {
        let dir = try standIn("printf '%s' '\(Self.fullReport)'")
        defer { remove(dir) }
        let out = try policyCheck(["coverage", "--opa", dir + "/opa"], cwd: dir)
        #expect(out.status == .exited(0), "\(out.stderrText)")
        #expect(out.stdoutText == "coverage: 100.0% (2 of 2 lines in 2 file(s))\n")
        #expect(read(dir + "/args") == "test --coverage --format=json policies\n")
    }

    @Test func coverage_standInFailsATest_exit1() throws {
        let dir = try standIn("echo 'data.a_test.test_allow: FAIL (0s)' >&2; exit 1")
        defer { remove(dir) }
        let out = try policyCheck(["coverage", "--opa", dir + "/opa", "policies"], cwd: dir)
        #expect(out.status == .exited(1))
        #expect(out.stderrText.contains("data.a_test.test_allow: FAIL"))
    }

    @Test func coverage_standInReportsUncoveredLines_exit1_withSpans() throws {
        let report = #"{"files":{"policies/a.rego":{"covered":[{"start":{"row":1}}],"not_covered":[{"start":{"row":3,"col":1},"end":{"row":3,"col":9}},{"start":{"row":3,"col":10},"end":{"row":4,"col":2}}]}}}"#
        let dir = try standIn("printf '%s' '\(report)'")
        defer { remove(dir) }
        let out = try policyCheck(["coverage", "--opa", dir + "/opa"], cwd: dir)
        #expect(out.status == .exited(1))
        #expect(out.stdoutText == "policies/a.rego:3-4\n")
    }

    @Test func coverage_standInFindsNoTestForAFile_untested() throws {
        let dir = try standIn("printf '%s' '{\"files\":{\"policies/a_test.rego\":{\"covered\":[{\"start\":{\"row\":3}}]}}}'")
        defer { remove(dir) }
        let out = try policyCheck(["coverage", "--opa", dir + "/opa", "--format", "json"], cwd: dir)
        #expect(out.status == .exited(1))
        #expect(try JSON.parse(out.stdoutText)["untested"] == ["policies/a.rego"])
    }

    @Test func coverage_opaNotInstalled_exit127_saysHowToGetIt() throws {
        let out = try policyCheck(["coverage", "--opa", "/nonexistent/bin/opa"], cwd: Self.packageRoot)
        #expect(out.status == .exited(127))
        #expect(out.stderrText.contains("Install OPA"))
    }

    @Test func coverage_opaNotExecutable_exit127() throws {
        let dir = try standIn("exit 0")
        defer { remove(dir) }
        chmod(dir + "/opa", 0o644)
        let out = try policyCheck(["coverage", "--opa", dir + "/opa"], cwd: dir)
        #expect(out.status == .exited(127))
    }

    @Test func coverage_hangingOpa_isStoppedByTheTimeout() throws {
        let dir = try standIn("sleep 30")
        defer { remove(dir) }
        let out = try policyCheck(["coverage", "--opa", dir + "/opa", "--timeout", "300ms"], cwd: dir)
        #expect(out.status == .exited(2))
        #expect(out.stderrText.contains("ran longer than"))
    }

    /// The real OPA engine (policies/tools/opa_driver.py, installed by
    /// scripts/test.d/40-policy.deps) as `--opa`: the repository's own gate.
    @Test func coverage_realOPA_onThePolicies_passesAt100() throws {
        let out = try policyCheck(["coverage", "--opa", Self.packageRoot + "/policies/tools/opa_driver.py"], cwd: Self.packageRoot)
        #expect(out.status == .exited(0), "\(out.stderrText)")
        #expect(out.stdoutText.hasPrefix("coverage: 100.0%"))
    }
}
