import KLCore
import KLSystem

/// Options shared by both subcommands: Kubernetes access, AWS region, logs.
public enum CommonOptions {
    public static let specs: [OptionSpec] = [
        OptionSpec("region", env: "AWS_REGION", value: "REGION",
                   default: "the queue URL's region, else AWS_DEFAULT_REGION", help: "AWS region for SQS, Auto Scaling, CloudFormation and STS."),
        OptionSpec("api-server", env: "NODE_LIFECYCLE_API_SERVER", value: "URL",
                   default: "https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT", help: "Kubernetes API server."),
        OptionSpec("token-file", env: "NODE_LIFECYCLE_TOKEN_FILE", value: "PATH",
                   default: InCluster.tokenFile, help: "Bearer token file (re-read when it rotates)."),
        OptionSpec("ca-file", env: "NODE_LIFECYCLE_CA_FILE", value: "PATH",
                   default: InCluster.caFile, help: "CA bundle of the API server."),
        OptionSpec("log-level", env: "NODE_LIFECYCLE_LOG_LEVEL", value: "LEVEL", default: "info",
                   help: "trace, debug, info, notice, warning, error or critical."),
        OptionSpec("log-format", env: "NODE_LIFECYCLE_LOG_FORMAT", value: "FORMAT", default: "json", help: "json or text."),
    ]
}

/// Settings read from flags and env, validated once. No side effects.
public struct CommonConfig: Sendable {
    public var region: String?
    public var kube: (server: String, tokenFile: String?, caFile: String?)
    public var logLevel: LogLevel
    public var logFormat: LogFormat

    static func load(_ o: ParsedOptions, environment env: [String: String]) throws(NodeLifecycleError) -> CommonConfig {
        guard let server = o["api-server"] ?? InCluster.apiServer(environment: env) else {
            throw NodeLifecycleError(.usage, "No Kubernetes API server: not running in a cluster (KUBERNETES_SERVICE_HOST is unset) and --api-server / NODE_LIFECYCLE_API_SERVER is not given.")
        }
        let isHTTP = server.hasPrefix("http://")
        let tokenFile = o["token-file"] ?? (isHTTP ? nil : InCluster.tokenFile)
        let caFile = o["ca-file"] ?? (isHTTP ? nil : InCluster.caFile)
        guard let level = LogLevel(name: o["log-level"] ?? "info") else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "log-level")) must be one of \(LogLevel.names.joined(separator: ", ")) (got \"\(o["log-level"]!)\").")
        }
        guard let format = LogFormat(name: o["log-format"] ?? "json") else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "log-format")) must be json or text (got \"\(o["log-format"]!)\").")
        }
        let region = o["region"] ?? env["AWS_DEFAULT_REGION"].flatMap { $0.isEmpty ? nil : $0 }
        return CommonConfig(region: region, kube: (server, tokenFile, caFile), logLevel: level, logFormat: format)
    }
}

func duration(_ o: ParsedOptions, _ name: String, default d: Duration, minimum: Duration = .milliseconds(1)) throws(NodeLifecycleError) -> Duration {
    guard let text = o[name] else { return d }
    let value: Duration
    do { value = try DurationText.parse(text) } catch {
        throw NodeLifecycleError(.usage, "\(o.source(of: name)) is not a duration (\(error.description)); use e.g. 500ms, 30s, 10m.")
    }
    guard value >= minimum else {
        throw NodeLifecycleError(.usage, "\(o.source(of: name)) must be at least \(DurationText.format(minimum)) (got \(text)).")
    }
    return value
}

/// `node-lifecycle drain`.
public struct DrainConfig: Sendable {
    public static let specs: [OptionSpec] = [
        OptionSpec("queue-url", env: "NODE_LIFECYCLE_QUEUE_URL", value: "URL", help: "SQS queue the lifecycle hook (or EventBridge rule) sends to. Required."),
        OptionSpec("drain-timeout", env: "NODE_LIFECYCLE_DRAIN_TIMEOUT", value: "DURATION", default: "10m",
                   help: "Give up evicting after this long and complete with CONTINUE (pods left are logged)."),
        OptionSpec("heartbeat-interval", env: "NODE_LIFECYCLE_HEARTBEAT_INTERVAL", value: "DURATION", default: "60s",
                   help: "RecordLifecycleActionHeartbeat this often; keep it well under the hook's HeartbeatTimeout."),
        OptionSpec("poll-interval", env: "NODE_LIFECYCLE_POLL_INTERVAL", value: "DURATION", default: "2s",
                   help: "How often to list a draining node's pods while waiting for them to go."),
        OptionSpec("eviction-retry", env: "NODE_LIFECYCLE_EVICTION_RETRY", value: "DURATION", default: "5s",
                   help: "Wait before retrying an eviction a PodDisruptionBudget refused (kubectl's fixed 5 s; a longer Retry-After wins)."),
        OptionSpec("concurrency", env: "NODE_LIFECYCLE_CONCURRENCY", value: "N", default: "4",
                   help: "Instances drained at once. Every action received is heartbeated while it waits; spot interruptions start at once, outside this bound."),
        OptionSpec("taint", env: "NODE_LIFECYCLE_DRAIN_TAINT", value: "KEY[=VALUE][:EFFECT]",
                   default: "node-lifecycle/draining:NoSchedule", help: "Taint put on a node before it is drained."),
        OptionSpec("on-unknown-node", env: "NODE_LIFECYCLE_ON_UNKNOWN_NODE", value: "leave|continue", default: "leave",
                   help: "An action whose instance is no node of this cluster: leave its message on the queue (it goes to the dead-letter queue after maxReceiveCount; safe when clusters share a queue) or complete it with CONTINUE and delete it."),
        OptionSpec("delete-emptydir-data", env: "NODE_LIFECYCLE_DELETE_EMPTYDIR_DATA", value: nil, default: "off",
                   help: "kubectl drain --delete-emptydir-data: also evict pods with emptyDir volumes (their data is lost). Off: they stay, logged."),
        OptionSpec("force", env: "NODE_LIFECYCLE_FORCE", value: nil, default: "off",
                   help: "kubectl drain --force: also evict pods that declare no controller. Off: they stay, logged."),
        OptionSpec("ignore-daemonsets", env: "NODE_LIFECYCLE_IGNORE_DAEMONSETS", value: nil, default: "on (kubectl: off)",
                   help: "kubectl drain --ignore-daemonsets. DaemonSet pods are never evicted; =false logs them as kubectl's refusal."),
        OptionSpec("pod-selector", env: "NODE_LIFECYCLE_POD_SELECTOR", value: "SELECTOR", default: "all pods",
                   help: "kubectl drain --pod-selector: only pods with these labels are drained (a labelSelector, e.g. app!=db)."),
        OptionSpec("grace-period", env: "NODE_LIFECYCLE_GRACE_PERIOD", value: "SECONDS", default: "-1 (the pod's own)",
                   help: "kubectl drain --grace-period: seconds each pod gets to stop; always capped to the drain time left."),
        OptionSpec("metrics-addr", env: "NODE_LIFECYCLE_METRICS_ADDR", value: "HOST:PORT", default: "off",
                   help: "Serve Prometheus metrics on http://HOST:PORT/metrics (and /healthz), e.g. :9100."),
        OptionSpec("managed-tag", env: "NODE_LIFECYCLE_MANAGED_TAG", value: "KEY[=VALUE]", default: "off (every instance)",
                   help: "Only handle instances carrying this EC2 tag (DescribeTags, cached per instance); others are left on the queue for the cluster that owns them."),
        OptionSpec("cordon-only", env: "NODE_LIFECYCLE_CORDON_ONLY", value: nil, default: "off",
                   help: "Cordon and taint, never evict (the lifecycle action is still completed)."),
        OptionSpec("exclude-from-load-balancers", env: "NODE_LIFECYCLE_EXCLUDE_FROM_LOAD_BALANCERS", value: nil, default: "off",
                   help: "Label node.kubernetes.io/exclude-from-external-load-balancers=true with the cordon, before any eviction."),
        OptionSpec("out-of-service-taint", env: "NODE_LIFECYCLE_OUT_OF_SERVICE_TAINT", value: nil, default: "off",
                   help: "After the drain of an instance that terminates, taint node.kubernetes.io/out-of-service=nodeshutdown:NoExecute (volumes detach at once)."),
        OptionSpec("kube-api-qps", env: "NODE_LIFECYCLE_KUBE_API_QPS", value: "N", default: "20",
                   help: "Kubernetes API requests per second (token bucket over every request)."),
        OptionSpec("kube-api-burst", env: "NODE_LIFECYCLE_KUBE_API_BURST", value: "N", default: "40",
                   help: "Kubernetes API requests allowed at once above --kube-api-qps."),
        OptionSpec("heartbeat-until", env: "NODE_LIFECYCLE_HEARTBEAT_UNTIL", value: "DURATION", default: "48h",
                   help: "Stop heartbeating an action this long after it was received (1m to 48h); the hook's HeartbeatTimeout then applies."),
        OptionSpec("complete-lifecycle-action-delay", env: "NODE_LIFECYCLE_COMPLETE_LIFECYCLE_ACTION_DELAY", value: "DURATION|-1", default: "-1 (none)",
                   help: "Wait this long after a drain before CompleteLifecycleAction (heartbeats go on)."),
        OptionSpec("webhook-url", env: "NODE_LIFECYCLE_WEBHOOK_URL", value: "URL", default: "off",
                   help: "POST one message per event here (Slack, Teams, any receiver), from its own thread: never delays a drain."),
        OptionSpec("webhook-template", env: "NODE_LIFECYCLE_WEBHOOK_TEMPLATE", value: "TEMPLATE", default: "aws-node-termination-handler's",
                   help: "Body with {{ .EventID }} {{ .Kind }} {{ .InstanceID }} {{ .NodeName }} {{ .Description }} {{ .StartTime }} {{ .State }} {{ .AutoScalingGroupName }}."),
        OptionSpec("webhook-headers", env: "NODE_LIFECYCLE_WEBHOOK_HEADERS", value: "JSON", default: #"{"Content-Type":"application/json"}"#,
                   help: "Headers of each post, a JSON object of strings."),
    ] + CommonOptions.specs

    public var queueURL: String
    public var region: String
    public var settings: DrainSettings
    public var concurrency: Int
    public var taint: Taint
    public var onUnknownNode: UnknownNodePolicy
    public var metricsAddress: String?
    public var common: CommonConfig
    public var options = DrainOptions()
    public var managedTag: (key: String, value: String?)?
    public var kubeQPS: Double = 20
    public var kubeBurst: Int = 40
    public var webhook: (url: AWSURL, template: WebhookTemplate, headers: [AWSHeader])?

    public static func load(arguments: [String], environment env: [String: String]) throws(NodeLifecycleError) -> DrainConfig {
        let o = try parse(specs, arguments, env)
        guard let queueURL = o["queue-url"], !queueURL.isEmpty else {
            throw NodeLifecycleError(.usage, "drain needs --queue-url (or NODE_LIFECYCLE_QUEUE_URL): the SQS queue URL the lifecycle hook sends to.")
        }
        guard AWSURL(queueURL) != nil else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "queue-url")) \"\(queueURL)\" is not an http(s):// URL; copy the QueueUrl from the SQS console or CloudFormation output.")
        }
        let common = try CommonConfig.load(o, environment: env)
        guard let region = o["region"] ?? SQSClient.region(fromQueueURL: queueURL) ?? common.region else {
            throw NodeLifecycleError(.usage, "No AWS region: the queue URL does not name one; set --region or AWS_REGION.")
        }
        var grace: Int? = nil
        if let text = o["grace-period"] {
            guard let n = Int(text), n >= -1, n <= 31_536_000 else {
                throw NodeLifecycleError(.usage, "\(o.source(of: "grace-period")) must be whole seconds, or -1 for each pod's own (got \"\(text)\").")
            }
            grace = n < 0 ? nil : n
        }
        let selector = o["pod-selector"].flatMap { $0.trimmingWhitespace.isEmpty ? nil : $0.trimmingWhitespace }
        let settings = DrainSettings(
            timeout: try duration(o, "drain-timeout", default: .seconds(600), minimum: .seconds(1)),
            evictionRetry: try duration(o, "eviction-retry", default: .seconds(5), minimum: .milliseconds(100)),
            heartbeatInterval: try duration(o, "heartbeat-interval", default: .seconds(60)),
            pollInterval: try duration(o, "poll-interval", default: .seconds(2)),
            deleteEmptyDirData: o.isSet("delete-emptydir-data"), force: o.isSet("force"),
            ignoreDaemonSets: o["ignore-daemonsets"] == nil || o.isSet("ignore-daemonsets"),
            podSelector: selector, gracePeriodSeconds: grace)
        let unknownText = o["on-unknown-node"] ?? "leave"
        guard let onUnknownNode = UnknownNodePolicy(rawValue: unknownText) else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "on-unknown-node")) must be leave or continue (got \"\(unknownText)\").")
        }
        guard let concurrency = Int(o["concurrency"] ?? "4"), concurrency >= 1, concurrency <= 64 else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "concurrency")) must be a whole number from 1 to 64 (got \"\(o["concurrency"]!)\").")
        }
        let taintText = o["taint"] ?? "node-lifecycle/draining:NoSchedule"
        guard let taint = Taint.parse(taintText) else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "taint")) \"\(taintText)\" is not KEY[=VALUE][:NoSchedule|PreferNoSchedule|NoExecute].")
        }
        let metrics = o["metrics-addr"].flatMap { $0.isEmpty ? nil : $0 }
        if let metrics { _ = try NodeLifecycleMetricsServer.parse(address: metrics) }
        var config = DrainConfig(queueURL: queueURL, region: region, settings: settings, concurrency: concurrency, taint: taint,
                                 onUnknownNode: onUnknownNode, metricsAddress: metrics, common: common)
        if let text = o["managed-tag"] {
            guard let tag = ManagedTag.parse(text) else {
                throw NodeLifecycleError(.usage, "\(o.source(of: "managed-tag")) must be KEY or KEY=VALUE (got \"\(text)\").")
            }
            config.managedTag = tag
        }
        config.options.cordonOnly = o.isSet("cordon-only")
        config.options.excludeFromLoadBalancers = o.isSet("exclude-from-load-balancers")
        config.options.outOfServiceTaint = o.isSet("out-of-service-taint")
        guard let qps = Double(o["kube-api-qps"] ?? "20"), qps.isFinite, qps >= 0.1, qps <= 10_000 else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "kube-api-qps")) must be a number from 0.1 to 10000 (got \"\(o["kube-api-qps"]!)\").")
        }
        guard let burst = Int(o["kube-api-burst"] ?? "40"), burst >= 1, burst <= 10_000 else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "kube-api-burst")) must be a whole number from 1 to 10000 (got \"\(o["kube-api-burst"]!)\").")
        }
        (config.kubeQPS, config.kubeBurst) = (qps, burst)
        let until = try duration(o, "heartbeat-until", default: .seconds(172_800), minimum: .seconds(60))
        guard until <= .seconds(172_800) else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "heartbeat-until")) must be at most 48h, Auto Scaling's global timeout (got \(o["heartbeat-until"]!)).")
        }
        guard until >= settings.heartbeatInterval else {
            throw NodeLifecycleError(.usage, "\(o.source(of: "heartbeat-until")) must be at least --heartbeat-interval.")
        }
        config.options.heartbeatUntil = until
        if let text = o["complete-lifecycle-action-delay"], text != "-1" {
            let delay = try duration(o, "complete-lifecycle-action-delay", default: .zero, minimum: .zero)
            guard delay <= .seconds(7200) else {
                throw NodeLifecycleError(.usage, "\(o.source(of: "complete-lifecycle-action-delay")) must be at most 2h (got \(text)).")
            }
            config.options.completeDelay = delay
        }
        if let text = o["webhook-url"], !text.isEmpty {
            guard let url = AWSURL(text) else {
                throw NodeLifecycleError(.usage, "\(o.source(of: "webhook-url")) is not an http(s):// URL.")
            }
            let template = try WebhookTemplate(o["webhook-template"] ?? WebhookTemplate.nthDefault)
            let headers = try WebhookNotifier.parseHeaders(o["webhook-headers"] ?? #"{"Content-Type":"application/json"}"#)
            config.webhook = (url, template, headers)
        }
        return config
    }
}

/// `node-lifecycle ready`.
public struct ReadyConfig: Sendable {
    public static let specs: [OptionSpec] = [
        OptionSpec("node", env: "NODE_NAME", value: "NAME", help: "This node (downward API spec.nodeName). Required."),
        OptionSpec("taint", env: "NODE_LIFECYCLE_BOOT_TAINT", value: "KEY", default: "node-lifecycle/booting",
                   help: "Boot taint to remove (kubelet --register-with-taints)."),
        OptionSpec("conditions", env: "NODE_LIFECYCLE_CONDITIONS", value: "A,B", default: "none",
                   help: "Node conditions that must be reported and False, e.g. KernelDeadlock,ReadonlyFilesystem."),
        OptionSpec("timeout", env: "NODE_LIFECYCLE_READY_TIMEOUT", value: "DURATION", default: "10m",
                   help: "Signal FAILURE and exit 1 when the node is not healthy by then."),
        OptionSpec("poll-interval", env: "NODE_LIFECYCLE_POLL_INTERVAL", value: "DURATION", default: "5s", help: "How often to read the node."),
        OptionSpec("stack", env: "NODE_LIFECYCLE_STACK", value: "STACK", help: "CloudFormation stack to signal (with --resource)."),
        OptionSpec("resource", env: "NODE_LIFECYCLE_RESOURCE", value: "LOGICAL_ID", help: "Logical id of the Auto Scaling group in the stack."),
        OptionSpec("instance-id", env: "NODE_LIFECYCLE_INSTANCE_ID", value: "ID", default: "IMDSv2, else the node's spec.providerID",
                   help: "UniqueId of the signal: this instance."),
    ] + CommonOptions.specs

    public var settings: ReadySettings
    public var stack: String?
    public var resource: String?
    public var instanceID: String?
    public var region: String?
    public var common: CommonConfig

    public static func load(arguments: [String], environment env: [String: String]) throws(NodeLifecycleError) -> ReadyConfig {
        let o = try parse(specs, arguments, env)
        guard let node = o["node"], !node.isEmpty else {
            throw NodeLifecycleError(.usage, "ready needs --node (or NODE_NAME from the downward API: fieldRef spec.nodeName).")
        }
        let common = try CommonConfig.load(o, environment: env)
        let conditions = (o["conditions"] ?? "").split(separator: ",").map { String($0).trimmingWhitespace }.filter { !$0.isEmpty }
        let settings = ReadySettings(nodeName: node, taintKey: o["taint"] ?? "node-lifecycle/booting", conditions: conditions,
                                     timeout: try duration(o, "timeout", default: .seconds(600), minimum: .seconds(1)),
                                     pollInterval: try duration(o, "poll-interval", default: .seconds(5)))
        let stack = o["stack"], resource = o["resource"]
        if (stack == nil) != (resource == nil) {
            throw NodeLifecycleError(.usage, "--stack and --resource go together: give both to signal CloudFormation, or neither.")
        }
        if stack != nil && common.region == nil {
            throw NodeLifecycleError(.usage, "No AWS region for SignalResource: set --region or AWS_REGION.")
        }
        return ReadyConfig(settings: settings, stack: stack, resource: resource, instanceID: o["instance-id"],
                           region: common.region, common: common)
    }
}

func parse(_ specs: [OptionSpec], _ arguments: [String], _ env: [String: String]) throws(NodeLifecycleError) -> ParsedOptions {
    let o: ParsedOptions
    do {
        o = try OptionParser(specs).parse(arguments: arguments, environment: env)
    } catch {
        throw NodeLifecycleError(.usage, error.message)
    }
    if let extra = o.positionals.first {
        throw NodeLifecycleError(.usage, "unexpected argument '\(extra)'; run with --help to see the options")
    }
    return o
}
