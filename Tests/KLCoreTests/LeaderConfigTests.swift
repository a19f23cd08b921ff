import KLCore
import Testing

@Suite struct LeaderConfigTests {
    let inCluster = ["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "POD_NAME": "pod-a", "POD_NAMESPACE": "ns"]

    func load(_ args: [String], env: [String: String]? = nil, files: [String: String] = [:]) throws(UsageError) -> LeaderConfig {
        let request = try LeaderConfig.load(arguments: args, environment: env ?? inCluster, readFile: { files[$0] }, hostName: "host-1")
        guard case .run(let config) = request else { throw UsageError("not a run: \(request)") }
        return config
    }

    func message(_ args: [String], env: [String: String]? = nil) -> String {
        do { _ = try load(args, env: env); return "no error" } catch { return error.message }
    }

    @Test func defaults_inCluster() throws {
        let c = try load(["my-lock", "--", "my", "cmd", "--flag"])
        #expect(c.lockName == "my-lock")
        #expect(c.command == ["my", "cmd", "--flag"])
        #expect(c.apiServer == "https://10.0.0.1:443")
        #expect(c.identity == "pod-a")
        #expect(c.namespace == "ns")
        #expect(c.lockKind == .configMap)
        #expect(c.leaseDuration == .seconds(15) && c.renewDeadline == .seconds(10) && c.retryPeriod == .seconds(2))
        #expect(c.killGrace == .seconds(4))
        #expect(c.tokenFile == "/var/run/secrets/kubernetes.io/serviceaccount/token")
        #expect(c.caFile == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
    }

    /// The original form: ENTRYPOINT ["kube-leader","my-lock"] + CMD ["my","cmd"], without "--".
    @Test func originalFormWithoutDoubleDash_keepsChildFlags() throws {
        let c = try load(["--lock-kind", "lease", "my-lock", "my", "--verbose"])
        #expect(c.command == ["my", "--verbose"])
        #expect(c.lockKind == .lease)
    }

    @Test func flagBeatsEnvBeatsDefault() throws {
        var env = inCluster
        env["KUBE_LEADER_LEASE_DURATION"] = "30s"
        env["KUBE_LEADER_RENEW_DEADLINE"] = "20s"
        #expect(try load(["l", "c"], env: env).leaseDuration == .seconds(30))
        #expect(try load(["--lease-duration=40s", "l", "c"], env: env).leaseDuration == .seconds(40))
        #expect(try load(["--identity", "x", "l", "c"], env: env).identity == "x")
    }

    @Test func onLoss_defaultExit_flagAndEnv_badValueNamed() throws {
        #expect(try load(["l", "c"]).onLoss == .exit)
        #expect(try load(["--on-loss", "standby", "l", "c"]).onLoss == .standby)
        var env = inCluster
        env["KUBE_LEADER_ON_LOSS"] = "standby"
        #expect(try load(["l", "c"], env: env).onLoss == .standby)
        #expect(try load(["--on-loss=exit", "l", "c"], env: env).onLoss == .exit)
        #expect(message(["--on-loss", "restart", "l", "c"]).contains("unknown mode 'restart': use exit or standby"))
        env["KUBE_LEADER_ON_LOSS"] = "nope"
        #expect(message(["l", "c"], env: env).contains("KUBE_LEADER_ON_LOSS"))
    }

    @Test func namespaceFromServiceAccountFile_andIdentityFromHostName() throws {
        var env = inCluster
        env["POD_NAMESPACE"] = nil
        env["POD_NAME"] = nil
        let c = try load(["l", "c"], env: env, files: ["/var/run/secrets/kubernetes.io/serviceaccount/namespace": "team-a\n"])
        #expect(c.namespace == "team-a")
        #expect(c.identity == "host-1")
    }

    @Test func outsideCluster_hasNoAPIServer() throws {
        let c = try load(["l", "echo", "hi"], env: [:])
        #expect(c.apiServer == nil)
    }

    @Test func httpAPIServer_sendsNoTokenUnlessGiven() throws {
        let c = try load(["--api-server", "http://127.0.0.1:8001", "l", "c"])
        #expect(c.tokenFile == nil)
        #expect(c.caFile == nil)
        #expect(try load(["--api-server", "http://127.0.0.1:8001", "--token-file", "/t", "l", "c"]).tokenFile == "/t")
    }

    /// Clock rates: lease − renew deadline − kill grace ≥ max(1 s, 1 % of
    /// the lease), so replicas whose clock rates differ by up to 1 % never
    /// overlap; the default kill grace keeps exactly that margin.
    @Test(arguments: [
        // lease, renew, default kill grace
        ("4s", "2s", Duration.seconds(1)),          // margin 1 s (1 % is 40 ms)
        ("15s", "10s", .seconds(4)),
        ("100s", "60s", .seconds(39)),              // 1 % = 1 s
        ("1h", "50m", .seconds(600 - 36)),          // 1 % = 36 s
        ("24h", "20h", .seconds(4 * 3600 - 864)),   // 1 % = 14 m 24 s
    ])
    func defaultKillGrace_keepsTheMargin(lease: String, renew: String, grace: Duration) throws {
        let c = try load(["--lease-duration", lease, "--renew-deadline", renew, "--retry-period", "500ms", "l", "c"])
        #expect(c.killGrace == grace)
        #expect(c.leaseDuration - c.renewDeadline - c.killGrace == LeaderConfig.minimumMargin(lease: c.leaseDuration))
    }

    @Test(arguments: [
        (["--lease-duration", "1h", "--renew-deadline", "50m", "--kill-grace", "9m30s"], "= 36s"),  // margin 30 s
        (["--lease-duration", "24h", "--renew-deadline", "23h", "--kill-grace", "50m"], "= 14m24s"), // margin 10 m
        (["--lease-duration", "4s", "--renew-deadline", "2s", "--retry-period", "500ms", "--kill-grace", "1001ms"], "= 1s"),
    ] as [([String], String)])
    func killGraceEatingTheMargin_isRejected_namingTheRule(args: [String], fragment: String) {
        let m = message(args + ["l", "c"])
        #expect(m.contains("must be at least max(1s, 1% of lease-duration) \(fragment)"), "\(m)")
        #expect(m.contains("clock-rate difference"), "\(m)")
    }

    @Test func killGraceLeavingExactlyTheMargin_isAccepted() throws {
        let c = try load(["--lease-duration", "1h", "--renew-deadline", "50m", "--kill-grace", "9m24s", "l", "c"])
        #expect(c.killGrace == .seconds(564))
    }

    @Test func helpAndVersion() throws {
        // `Request` is not Equatable (LeaderConfig's synthesised == was 2 KB
        // of the binary that only tests used): match the cases.
        let help = try LeaderConfig.load(arguments: ["--help"], environment: [:], readFile: { _ in nil }, hostName: "h")
        let version = try LeaderConfig.load(arguments: ["--version"], environment: [:], readFile: { _ in nil }, hostName: "h")
        guard case .help = help else { Issue.record("--help gave \(help)"); return }
        guard case .version = version else { Issue.record("--version gave \(version)"); return }
    }

    @Test(arguments: [
        (["--bogus", "l", "c"], "unknown option '--bogus'"),
        ([], "missing LOCK_NAME"),
        (["l"], "missing COMMAND"),
        (["l", "--"], "missing COMMAND"),
        (["--lease-duration", "fast", "l", "c"], "--lease-duration: 'fast' is not a duration"),
        (["--renew-deadline", "15s", "l", "c"], "renew-deadline (15s) must be shorter than lease-duration (15s)"),
        (["--renew-deadline", "14.5s", "l", "c"], "kill-grace is negative"),
        (["--retry-period", "9s", "l", "c"], "must be greater than 1.2 × retry-period (9s)"),
        (["--kill-grace", "5s", "l", "c"], "kill-grace (5s)"),
        (["--lock-kind", "secret", "l", "c"], "unknown lock kind 'secret'"),
        (["--identity=", "l", "c"], "no identity"),
        (["My_Lock", "c"], "not a valid Kubernetes object name"),
        (["--log-level", "loud", "l", "c"], "unknown log level 'loud'"),
        (["--api-server", "10.0.0.1", "l", "c"], "is not an http:// or https:// URL"),
        (["--lease-duration"], "needs a value"),
        (["--namespace", "Team_A", "l", "c"], "namespace 'Team_A' is not a valid Kubernetes namespace name"),
        (["--namespace", "a.b", "l", "c"], "namespace 'a.b' is not a valid"),
        (["--namespace", String(repeating: "n", count: 64), "l", "c"], "at most 63 characters"),
        (["--retry-period", "1ns", "l", "c"], "--retry-period (1ns) must be at least 100ms"),
        (["--lease-duration", "48h", "l", "c"], "--lease-duration (48h) must be at most 24h"),
        (["--lease-duration", "4s", "--renew-deadline", "1500ms", "--retry-period", "1s", "l", "c"],
         "must be greater than retry-period (1s) + 1s with --lock-kind configmap"),
    ] as [([String], String)])
    func badInput_namesTheProblem(args: [String], fragment: String) {
        let m = message(args)
        #expect(m.contains(fragment), "\(m)")
    }

    @Test func emptyPodNameEnv_isAnError() {
        var env = inCluster
        env["POD_NAME"] = ""
        #expect(message(["l", "c"], env: env).contains("POD_NAME is set but empty"))
    }

    @Test func missingNamespace_inCluster_isAnError() {
        var env = inCluster
        env["POD_NAMESPACE"] = nil
        #expect(message(["l", "c"], env: env).contains("no namespace"))
    }

    @Test(arguments: [
        ("fd00:10:96::1", "https://[fd00:10:96::1]:443"),
        ("[fd00:10:96::1]", "https://[fd00:10:96::1]:443"),
        ("10.96.0.1", "https://10.96.0.1:443"),
    ])
    func inCluster_apiServer_bracketsAnIPv6ServiceHost(host: String, expected: String) throws {
        var env = inCluster
        env["KUBERNETES_SERVICE_HOST"] = host
        #expect(try load(["l", "c"], env: env).apiServer == expected)
    }

    @Test func logSettings_areTyped_anyCase_defaultInfoJSON() throws {
        let defaults = try load(["l", "c"])
        #expect(defaults.logLevel == .info && defaults.logFormat == .json)
        var env = inCluster
        env["KUBE_LEADER_LOG_LEVEL"] = "Debug"
        env["KUBE_LEADER_LOG_FORMAT"] = "TEXT"
        let c = try load(["l", "c"], env: env)
        #expect(c.logLevel == .debug && c.logFormat == .text)
        #expect(try load(["--log-level", "critical", "l", "c"], env: env).logLevel == .critical)
    }

    /// A bad log setting used to be able to fall back to info/json silently;
    /// it is a usage error naming the flag or variable and the choices.
    @Test(arguments: [
        (["--log-level", "verbose"], [:], "--log-level: unknown log level 'verbose': use one of trace, debug, info, notice, warning, error, critical"),
        ([], ["KUBE_LEADER_LOG_LEVEL": "verbose"], "env KUBE_LEADER_LOG_LEVEL: unknown log level 'verbose': use one of trace, debug"),
        (["--log-format", "yaml"], [:], "--log-format: unknown log format 'yaml': use json or text"),
        ([], ["KUBE_LEADER_LOG_FORMAT": "logfmt"], "env KUBE_LEADER_LOG_FORMAT: unknown log format 'logfmt': use json or text"),
    ] as [([String], [String: String], String)])
    func badLogSetting_isAUsageError_namingTheSourceAndTheChoices(args: [String], extraEnv: [String: String], expected: String) {
        let env = inCluster.merging(extraEnv) { $1 }
        let m = message(args + ["l", "c"], env: env)
        #expect(m.contains(expected), "\(m)")
    }

    @Test func envVarErrors_nameTheEnvVar() {
        var env = inCluster
        env["KUBE_LEADER_RETRY_PERIOD"] = "2 seconds"
        #expect(message(["l", "c"], env: env).contains("env KUBE_LEADER_RETRY_PERIOD"))
    }

    @Test func subSecondRetry_isFineForLeases_andConfigMapsWithRoom() throws {
        let lease = try load(["--lock-kind", "lease", "--lease-duration", "4s", "--renew-deadline", "1500ms", "--retry-period", "1s", "l", "c"])
        #expect(lease.retryPeriod == .seconds(1))
        let cm = try load(["--lease-duration", "4s", "--renew-deadline", "2s", "--retry-period", "500ms", "l", "c"])
        #expect(cm.retryPeriod == .milliseconds(500))
        #expect(try load(["--retry-period", "100ms", "--renew-deadline", "2s", "--lease-duration", "4s", "l", "c"]).retryPeriod == .milliseconds(100))
    }
}
