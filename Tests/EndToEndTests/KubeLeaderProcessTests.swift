import KLSystem
import KLCore
import KLProcess
import Testing

/// kube-leader as the supervisor of its child: exit codes, signals, zombies,
/// spawn errors, and every bad input (exit 2, nothing started).
@Suite(.serialized, .timeLimit(.minutes(2)))
struct KubeLeaderProcessTests {
    static let timing = ["--lease-duration", "4s", "--renew-deadline", "2s", "--retry-period", "500ms"]

    /// Runs one replica leading alone with `command` as its child.
    func runLeader(_ command: [String], server: FakeServer, extra: [String] = [], env: [String: String] = [:],
                   identity: String = "solo") throws -> (TerminationStatus?, String) {
        var environment = [
            "PATH": String(cString: getenv("PATH")), "POD_NAME": identity, "POD_NAMESPACE": "default",
            "KUBE_LEADER_API_SERVER": server.url, "KUBE_LEADER_CA_FILE": server.caFile, "KUBE_LEADER_TOKEN_FILE": server.tokenFile,
            "KUBE_LEADER_LOG_LEVEL": "debug",
        ]
        for (k, v) in env { environment[k] = v }
        let r = try Replica(identity: identity, arguments: Self.timing + extra + ["proc-lock", "--"] + command,
                            environment: environment, dir: server.dir)
        return (r.wait(), r.log)
    }

    @Test(arguments: [0, 1, 42, 255])
    func childExitCode_passesThrough(code: Int) throws {
        let server = try FakeServer()
        let (status, log) = try runLeader(["sh", "-c", "exit \(code)"], server: server)
        #expect(status == .exited(Int32(code)), "\(log)")
        #expect(log.contains("\"child.exit_code\":\(code)"))
    }

    @Test func childKilledBySignal_exits128PlusN() throws {
        let server = try FakeServer()
        let (status, log) = try runLeader(["sh", "-c", "kill -KILL $$"], server: server)
        #expect(status == .exited(137), "\(log)")
    }

    @Test func eachForwardedSignal_reachesTheChild() throws {
        let cluster = try Cluster()
        let signals = cluster.dir.file("signals")
        let r = try cluster.start("a", worker: ["--signals", signals])
        #expect(eventually { cluster.log.starts.count == 1 })
        let order: [Signal] = [.hangup, .quit, .user1, .user2, .windowChange, .interrupt]
        for (i, s) in order.enumerated() {
            r.signal(s)
            #expect(eventually(.seconds(5)) { readFile(signals).split(separator: "\n").count == i + 1 }, "\(s) not delivered: \(r.log)")
        }
        // SIGINT ended the worker (it re-raises it): 128 + 2.
        #expect(r.wait()?.exitCode == 130)
        #expect(readFile(signals).split(separator: "\n") == ["SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH", "SIGINT"])
    }

    @Test func orphanedGrandchild_isReaped() throws {
        let cluster = try Cluster()
        let r = try cluster.start("a", worker: ["--zombie", "--exit-after", "1.5"])
        #expect(r.wait()?.exitCode == 0)
        #expect(r.log.contains("\"msg\":\"reaped zombie\""), "\(r.log)")
    }

    @Test func commandNotFound_exits127_andReleasesTheLock() throws {
        let server = try FakeServer()
        let (status, log) = try runLeader(["/nonexistent/command"], server: server)
        #expect(status == .exited(127), "\(log)")
        #expect(log.contains("cannot start the command"))
        #expect(server.holder(name: "proc-lock") == "")
    }

    @Test func commandNotExecutable_exits126() throws {
        let server = try FakeServer()
        let file = server.dir.file("not-executable")
        writeFile(file, "#!/bin/sh\n", mode: 0o644)
        let (status, log) = try runLeader([file], server: server)
        #expect(status == .exited(126), "\(log)")
    }

    @Test func outsideCluster_runsTheCommandDirectly() throws {
        let dir = TempDir()
        let r = try Replica(identity: "local", arguments: ["my-lock", "--", "sh", "-c", "echo ran; exit 7"],
                            environment: ["PATH": String(cString: getenv("PATH"))], dir: dir)
        #expect(r.wait() == .exited(7))
        #expect(r.log.contains("without leader election"))
        #expect(r.log.contains("ran"))
    }

    // MARK: Bad input: exit 2, a clear message, no child

    struct BadInput: CustomTestStringConvertible, Sendable {
        var name: String
        var arguments: [String]
        var env: [String: String] = [:]
        var expected: String
        var testDescription: String { name }
    }

    static let badInputs: [BadInput] = [
        BadInput(name: "unknown flag", arguments: ["--lease", "3s", "proc-lock", "--", "CMD"], expected: "unknown option '--lease'"),
        BadInput(name: "missing lock name", arguments: [], expected: "missing LOCK_NAME"),
        BadInput(name: "missing command", arguments: ["proc-lock"], expected: "missing COMMAND"),
        BadInput(name: "bad duration", arguments: ["--retry-period", "often", "proc-lock", "--", "CMD"], expected: "'often' is not a duration"),
        BadInput(name: "renew deadline not below lease", arguments: ["--lease-duration", "5s", "--renew-deadline", "5s", "proc-lock", "--", "CMD"],
                 expected: "renew-deadline (5s) must be shorter than lease-duration (5s)"),
        BadInput(name: "namespace not a DNS label", arguments: ["--namespace", "Team_A", "proc-lock", "--", "CMD"],
                 expected: "namespace 'Team_A' is not a valid Kubernetes namespace name"),
        BadInput(name: "retry period too short", arguments: ["--retry-period", "1ns", "proc-lock", "--", "CMD"],
                 expected: "--retry-period (1ns) must be at least 100ms"),
        BadInput(name: "lease beyond a day", arguments: ["--lease-duration", "48h", "proc-lock", "--", "CMD"],
                 expected: "must be at most 24h"),
        BadInput(name: "in-cluster without identity", arguments: ["proc-lock", "--", "CMD"], env: ["POD_NAME": ""],
                 expected: "POD_NAME is set but empty"),
        BadInput(name: "unknown log level", arguments: ["proc-lock", "--", "CMD"], env: ["KUBE_LEADER_LOG_LEVEL": "verbose"],
                 expected: "env KUBE_LEADER_LOG_LEVEL: unknown log level 'verbose': use one of trace, debug, info, notice, warning, error, critical"),
        BadInput(name: "unknown log format", arguments: ["--log-format", "yaml", "proc-lock", "--", "CMD"],
                 expected: "--log-format: unknown log format 'yaml': use json or text"),
        BadInput(name: "unreadable token file", arguments: ["--token-file", "/nonexistent/token", "proc-lock", "--", "CMD"],
                 expected: "cannot read the token file /nonexistent/token"),
        BadInput(name: "unreadable CA file", arguments: ["--ca-file", "/nonexistent/ca.crt", "proc-lock", "--", "CMD"],
                 expected: "cannot read the CA file /nonexistent/ca.crt"),
    ]

    @Test(arguments: badInputs)
    func badInput_exits2_withMessage_andStartsNothing(input: BadInput) throws {
        let server = try FakeServer()
        let marker = server.dir.file("child-ran")
        let args = input.arguments.flatMap { $0 == "CMD" ? ["touch", marker] : [$0] }
        var environment = [
            "PATH": String(cString: getenv("PATH")), "POD_NAME": "solo", "POD_NAMESPACE": "default",
            "KUBE_LEADER_API_SERVER": server.url, "KUBE_LEADER_CA_FILE": server.caFile, "KUBE_LEADER_TOKEN_FILE": server.tokenFile,
        ]
        for (k, v) in input.env { environment[k] = v }
        let r = try Replica(identity: "bad", arguments: args, environment: environment, dir: server.dir)
        #expect(r.wait() == .exited(2), "\(r.log)")
        #expect(r.log.contains(input.expected), "\(r.log)")
        #expect(!fileExists(marker))
    }

    @Test func wrongCA_exits2_namingTheCertificateProblem() throws {
        let server = try FakeServer()
        let other = try FakeServer()
        let marker = server.dir.file("child-ran")
        let (status, log) = try runLeader(["touch", marker], server: server, env: ["KUBE_LEADER_CA_FILE": other.caFile])
        #expect(status == .exited(2), "\(log)")
        #expect(log.lowercased().contains("certificate"), "\(log)")
        #expect(!fileExists(marker))
    }

    @Test func unauthorized_exits2() throws {
        let server = try FakeServer()
        let tokenFile = server.dir.file("wrong-token")
        writeFile(tokenFile, "not-a-valid-token")
        let marker = server.dir.file("child-ran")
        let (status, log) = try runLeader(["touch", marker], server: server, env: ["KUBE_LEADER_TOKEN_FILE": tokenFile])
        #expect(status == .exited(2), "\(log)")
        #expect(log.contains("401") || log.lowercased().contains("unauthorized"), "\(log)")
        #expect(!fileExists(marker))
    }

    @Test func forbidden_exits2_namingTheMissingVerbAndResource() throws {
        let server = try FakeServer()
        try server.registerToken("limited", allow: ["get configmaps", "watch configmaps"])
        let tokenFile = server.dir.file("limited-token")
        writeFile(tokenFile, "limited")
        let marker = server.dir.file("child-ran")
        let (status, log) = try runLeader(["touch", marker], server: server, env: ["KUBE_LEADER_TOKEN_FILE": tokenFile])
        #expect(status == .exited(2), "\(log)")
        #expect(log.contains("create"), "\(log)")
        #expect(log.contains("configmaps"), "\(log)")
        #expect(!fileExists(marker))
    }
}
