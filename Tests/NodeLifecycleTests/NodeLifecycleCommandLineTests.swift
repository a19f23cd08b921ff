import KLCore
import KLTestSupport
import Testing
@testable import NodeLifecycleKit

/// Bad inputs to the binary: a clear message and exit code 2 (usage) or 1
/// (a credential source that cannot work), never a hang or a crash.
@Suite("node-lifecycle command line", .timeLimit(.minutes(1)))
struct CommandLineTests {
    func run(_ args: String, env: String = "") -> (stderr: String, status: Int32) {
        let dir = makeTemporaryDirectory(prefix: "nodelifecycle-test")
        let r = runCommand("env -i PATH=/usr/bin:/bin AWS_EC2_METADATA_DISABLED=true \(env) '\(TestPaths.binary("node-lifecycle"))' \(args) 2>'\(dir)/err'")
        // pclose gives a wait status: the exit code is in the high byte.
        return (readTextFile(dir + "/err") ?? "", (r.status >> 8) & 0xff)
    }

    @Test("bad usage exits 2 with the reason", arguments: [
        ("", "usage: node-lifecycle drain"),
        ("fly", "unknown command 'fly'"),
        ("drain --api-server http://127.0.0.1:9", "drain needs --queue-url"),
        ("drain --queue-url not-a-url --api-server http://127.0.0.1:9", "is not an http(s):// URL"),
        ("drain --queue-url http://127.0.0.1:9/1/q --api-server http://127.0.0.1:9", "No AWS region"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q", "No Kubernetes API server"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --concurrency 0", "--concurrency must be"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --taint a:Never", "is not KEY[=VALUE]"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --heartbeat-interval soon", "is not a duration"),
        ("drain --bogus", "unknown option '--bogus'"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --on-unknown-node delete", "must be leave or continue"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --grace-period soon", "--grace-period must be whole seconds"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --metrics-addr 9100", "is not HOST:PORT"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --metrics-addr localhost:9100", "is not a numeric IP address"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --force=maybe", "is a switch"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --managed-tag =x", "must be KEY or KEY=VALUE"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --kube-api-qps 0", "--kube-api-qps must be a number"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --kube-api-burst lots", "--kube-api-burst must be a whole number"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --heartbeat-until 30s", "--heartbeat-until must be at least"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --heartbeat-until 49h", "at most 48h"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --complete-lifecycle-action-delay 3h", "at most 2h"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --webhook-url ftp://x", "--webhook-url is not an http(s):// URL"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --webhook-url http://127.0.0.1:9/h --webhook-template '{{ .Instance }}'", "unknown field"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --webhook-url http://127.0.0.1:9/h --webhook-headers '[1]'", "JSON object of strings"),
        ("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9 --cordon-only=maybe", "is a switch"),
        ("ready --api-server http://127.0.0.1:9", "ready needs --node"),
        ("ready --node n1 --api-server http://127.0.0.1:9 --stack s", "--stack and --resource go together"),
        ("ready --node n1 --api-server http://127.0.0.1:9 --stack s --resource r", "No AWS region"),
    ])
    func badUsage(args: String, mentions: String) {
        let r = run(args)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(r.stderr.contains(mentions), "\(r.stderr)")
    }

    @Test func unreadableWebIdentityTokenFile_exitsOne_namingTheFile() {
        let r = run("drain --queue-url https://sqs.eu-west-1.amazonaws.com/1/q --api-server http://127.0.0.1:9",
                    env: "AWS_ROLE_ARN=arn:aws:iam::1:role/x AWS_WEB_IDENTITY_TOKEN_FILE=/nonexistent/token")
        #expect(r.status == 1)
        #expect(r.stderr.contains("Cannot read /nonexistent/token: No such file or directory"), "\(r.stderr)")
    }

    @Test func unreadableKubernetesTokenFile_exitsOne_namingTheFile() {
        let r = run("ready --node n1 --api-server https://127.0.0.1:9 --token-file /nonexistent/sa-token")
        #expect(r.status == 1)
        #expect(r.stderr.contains("Cannot read /nonexistent/sa-token: No such file or directory"), "\(r.stderr)")
    }

    @Test func versionAndHelp_exitZero() {
        #expect(run("--version").status == 0)
        #expect(run("drain --help").status == 0)
        #expect(run("ready --help").status == 0)
    }

    @Test func drainFlags_kubectlSemantics_andDefaults() throws {
        let base = ["--queue-url", "https://sqs.eu-west-1.amazonaws.com/1/q", "--api-server", "http://127.0.0.1:9"]
        let d = try DrainConfig.load(arguments: base, environment: [:])
        #expect(d.settings.ignoreDaemonSets && !d.settings.force && !d.settings.deleteEmptyDirData)
        #expect(d.settings.gracePeriodSeconds == nil && d.settings.podSelector == nil)
        #expect(d.onUnknownNode == .leave && d.metricsAddress == nil)
        let c = try DrainConfig.load(arguments: base + ["--ignore-daemonsets=false", "--force", "--delete-emptydir-data",
                                                        "--grace-period", "45", "--pod-selector", "app!=db",
                                                        "--on-unknown-node", "continue", "--metrics-addr", ":9100"],
                                     environment: [:])
        #expect(!c.settings.ignoreDaemonSets && c.settings.force && c.settings.deleteEmptyDirData)
        #expect(c.settings.gracePeriodSeconds == 45 && c.settings.podSelector == "app!=db")
        #expect(c.onUnknownNode == .continue && c.metricsAddress == ":9100")
        let e = try DrainConfig.load(arguments: base + ["--grace-period", "-1"],
                                     environment: ["NODE_LIFECYCLE_ON_UNKNOWN_NODE": "continue", "NODE_LIFECYCLE_FORCE": "true"])
        #expect(e.settings.gracePeriodSeconds == nil && e.onUnknownNode == .continue && e.settings.force)
    }

    @Test func inCluster_ipv6ServiceHost_isBracketed_andLogSettingsAreTyped() throws {
        let env = ["KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443",
                   "NODE_LIFECYCLE_LOG_LEVEL": "Debug", "NODE_LIFECYCLE_LOG_FORMAT": "TEXT"]
        let c = try ReadyConfig.load(arguments: ["--node", "n1"], environment: env)
        #expect(c.common.kube.server == "https://[fd00:10:96::1]:443")
        #expect(c.common.kube.tokenFile == InCluster.tokenFile && c.common.kube.caFile == InCluster.caFile)
        #expect(c.common.logLevel == .debug && c.common.logFormat == .text)
    }

    @Test(arguments: [
        (["--log-level", "loud"], [:], "--log-level must be one of trace, debug, info, notice, warning, error, critical"),
        ([], ["NODE_LIFECYCLE_LOG_LEVEL": "loud"], "env NODE_LIFECYCLE_LOG_LEVEL must be one of trace, debug"),
        (["--log-format", "yaml"], [:], "--log-format must be json or text"),
    ] as [([String], [String: String], String)])
    func badLogSetting_isAUsageError_namingTheFlagAndTheChoices(args: [String], env: [String: String], fragment: String) {
        let e = #expect(throws: NodeLifecycleError.self) {
            try ReadyConfig.load(arguments: ["--node", "n1", "--api-server", "http://127.0.0.1:9"] + args, environment: env)
        }
        #expect(e?.code == .usage)
        #expect(e?.message.contains(fragment) == true, "\(String(describing: e))")
    }
}
