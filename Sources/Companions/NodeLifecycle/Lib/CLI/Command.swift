import KLCore
import KLKube
import KLTransport
import KLSystem

/// `node-lifecycle drain|ready`: parses, wires, runs. Returns the exit code:
/// 0 done, 1 failure (ready timed out, AWS or Kubernetes failed), 2 bad usage.
public enum NodeLifecycleCommand {
    public static let usage = """
        usage: node-lifecycle drain --queue-url URL [OPTIONS]
               node-lifecycle ready --node NAME [--taint KEY] [--conditions A,B] [--timeout D]
                                    [--stack S --resource R] [--instance-id ID] [OPTIONS]

        drain  Long-polls the SQS queue of an Auto Scaling lifecycle hook; for each
               terminating instance cordons, taints and drains its node through the
               Eviction API (kubectl drain's filters, PodDisruptionBudgets respected),
               then completes the lifecycle action with CONTINUE. Every action received
               is heartbeated until completed, also while it waits for a drain slot.
        ready  Waits until this node is Ready and the named conditions are False,
               removes the boot taint and signals CloudFormation SUCCESS (FAILURE
               and exit 1 on timeout).

        Exit codes: 0 done, 1 failure, 2 bad usage or configuration.
        """

    public static func main(arguments: [String], environment env: [String: String]) -> Int32 {
        guard let sub = arguments.first else {
            writeAll(fd: 2, usage + "\n")
            return ExitCode.usage
        }
        let rest = Array(arguments.dropFirst())
        switch sub {
        case "--version", "version":
            writeAll(fd: 1, BuildInfo.versionText(program: "node-lifecycle", version: kubeLeaderVersion,
                                                  openSSL: OpenSSLInfo.versionText))
            return 0
        case "-h", "--help", "help":
            writeAll(fd: 1, usage + "\n")
            return 0
        case "drain":
            if rest.contains("--help") || rest.contains("-h") {
                writeAll(fd: 1, "usage: node-lifecycle drain --queue-url URL [OPTIONS]\n\n" + OptionParser(DrainConfig.specs).helpText() + "\n")
                return 0
            }
            return runDrain(rest, env)
        case "ready":
            if rest.contains("--help") || rest.contains("-h") {
                writeAll(fd: 1, "usage: node-lifecycle ready --node NAME [OPTIONS]\n\n" + OptionParser(ReadyConfig.specs).helpText() + "\n")
                return 0
            }
            return runReady(rest, env)
        default:
            writeAll(fd: 2, "node-lifecycle: unknown command '\(sub)'; use drain or ready.\n\n" + usage + "\n")
            return ExitCode.usage
        }
    }

    static func fail(_ e: NodeLifecycleError, _ logger: Logger?) -> Int32 {
        if let logger {
            logger.error("node-lifecycle failed", ("error", .string(e.description)))
        } else {
            writeAll(fd: 2, "node-lifecycle: \(e.description)\n")
        }
        return e.code == .usage ? ExitCode.usage : ExitCode.failure
    }

    static func kubeCluster(_ c: CommonConfig, instance: String = "node-lifecycle") throws(NodeLifecycleError) -> KubeCluster {
        // Fail at start, naming the file, rather than on the first node event.
        if let tokenFile = c.kube.tokenFile { _ = try readSmallFile(tokenFile) }
        do {
            let client = try KubeClient(config: KubeConfig(server: c.kube.server, caFile: c.kube.caFile, tokenFile: c.kube.tokenFile,
                                                           userAgent: "node-lifecycle"))
            return KubeCluster(client: client, instance: instance)
        } catch {
            throw NodeLifecycleError(.usage, error.description)
        }
    }

    /// `--instance-id`, else IMDSv2, else the node's `spec.providerID` (the
    /// metadata service may be blocked for pods: hop limit 1).
    static func resolveInstanceID(_ config: ReadyConfig, env: [String: String], transport: any AWSTransport,
                                  cluster: any ClusterAPI, logger: Logger) throws(NodeLifecycleError) -> String {
        if let given = config.instanceID { return given }
        do {
            return try IMDS(baseURL: env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] ?? IMDS.defaultBaseURL, transport: transport).instanceID()
        } catch {
            if let node = try? cluster.getNode(config.settings.nodeName),
               let id = node[path: "spec", "providerID"]?.stringValue.flatMap(ProviderID.instanceID) {
                logger.warning("instance metadata unavailable; using the node's providerID", ("instance.id", .string(id)),
                               ("error", .string(error.description)))
                return id
            }
            throw NodeLifecycleError(.credentials, "Cannot find this node's instance id: \(error.description) Give --instance-id, or allow IMDSv2 from pods (hop limit 2).")
        }
    }

    static func runDrain(_ arguments: [String], _ env: [String: String]) -> Int32 {
        let config: DrainConfig
        do { config = try DrainConfig.load(arguments: arguments, environment: env) } catch { return fail(error, nil) }
        let logger = Logger(level: config.common.logLevel, format: config.common.logFormat, metadata: [("component", "node-lifecycle")])
        do {
            let transport = HTTPTransport()
            let credentials = try CredentialSources.resolve(environment: env, region: config.region, transport: transport)
            // Fail fast on bad credential set-ups (unreadable token file, STS
            // refusing the role) instead of retrying them forever.
            _ = try credentials.credentials(now: wallNow())
            let aws = AWSClient(transport: transport, credentials: credentials, region: config.region) { wallNow() }
            let sqs = SQSClient(aws: aws, baseURL: AWSService.sqs.endpoint(region: config.region, environment: env))
            let asg = AutoScalingClient(aws: aws, baseURL: AWSService.autoScaling.endpoint(region: config.region, environment: env))
            let queue = SQSQueue(client: sqs, queueURL: config.queueURL)
            let metrics = DrainMetrics()
            let clock = MonotonicClock()
            let cluster = RateLimitedCluster(try kubeCluster(config.common, instance: env["HOSTNAME"] ?? "node-lifecycle"),
                                             qps: config.kubeQPS, burst: config.kubeBurst, clock: clock, metrics: metrics)
            var drainer = NodeDrainer(cluster: cluster,
                                      lifecycle: asg, queue: queue, settings: config.settings,
                                      taint: config.taint, clock: clock, logger: logger,
                                      onUnknownNode: config.onUnknownNode, metrics: metrics)
            drainer.options = config.options
            var webhook: WebhookNotifier?
            if let w = config.webhook {
                webhook = WebhookNotifier(url: w.url, template: w.template, headers: w.headers, transport: HTTPTransport(),
                                          logger: logger, metrics: metrics)
                drainer.options.webhook = webhook
            }
            let managedTag = config.managedTag.map { tag in
                ManagedTag(key: tag.key, value: tag.value,
                           tags: EC2Client(aws: aws, baseURL: AWSService.ec2.endpoint(region: config.region, environment: env)))
            }
            // Bound now (a bad address fails at start); served after the
            // signal mask is set, since threads inherit it.
            let metricsServer = try config.metricsAddress.map { address throws(NodeLifecycleError) in
                try NodeLifecycleMetricsServer(address: address) { metrics.render() }
            }
            logger.notice("draining nodes of terminating instances", ("sqs.queue_url", .string(config.queueURL)),
                          ("aws.region", .string(config.region)), ("aws.credentials", .string(credentials.source)),
                          ("concurrency", JSON(config.concurrency)), ("on_unknown_node", .string(config.onUnknownNode.rawValue)),
                          ("heartbeat.interval", .string(DurationText.format(config.settings.heartbeatInterval))),
                          ("pod_selector", config.settings.podSelector.map { .string($0) } ?? .null),
                          ("delete_emptydir_data", .bool(config.settings.deleteEmptyDirData)), ("force", .bool(config.settings.force)),
                          ("ignore_daemonsets", .bool(config.settings.ignoreDaemonSets)),
                          ("managed_tag", managedTag.map { JSON.string($0.description) } ?? .null),
                          ("cordon_only", .bool(config.options.cordonOnly)),
                          ("exclude_from_load_balancers", .bool(config.options.excludeFromLoadBalancers)),
                          ("out_of_service_taint", .bool(config.options.outOfServiceTaint)),
                          ("kube_api_qps", .number(String(config.kubeQPS))), ("kube_api_burst", JSON(config.kubeBurst)),
                          ("heartbeat_until", .string(DurationText.format(config.options.heartbeatUntil))),
                          ("webhook", .bool(webhook != nil)))
            let service = DrainService(queue: queue, drainer: drainer, concurrency: config.concurrency,
                                       managedTag: managedTag, logger: logger)
            // SIGTERM (this pod evicted, a rollout): hand drains in progress to
            // another replica at once instead of after the visibility timeout.
            onTerminationSignal { signal in
                let released = service.releaseInFlight()
                logger.notice("stopping; drains in progress handed back to the queue", ("signal", JSON(Int(signal))),
                              ("messages.released", JSON(released)))
                exit(0)
            }
            webhook?.start()
            if let metricsServer, let address = config.metricsAddress {
                metricsServer.start()
                logger.notice("serving metrics", ("metrics.addr", .string(address)), ("metrics.port", JSON(metricsServer.port)))
            }
            service.run { false }
            return 0
        } catch {
            return fail(error, logger)
        }
    }

    static func runReady(_ arguments: [String], _ env: [String: String]) -> Int32 {
        let config: ReadyConfig
        do { config = try ReadyConfig.load(arguments: arguments, environment: env) } catch { return fail(error, nil) }
        let logger = Logger(level: config.common.logLevel, format: config.common.logFormat, metadata: [("component", "node-lifecycle")])
        do {
            let cluster = try kubeCluster(config.common)
            var signal: ResourceSignal?
            if let stack = config.stack, let resource = config.resource, let region = config.region {
                let transport = HTTPTransport()
                let instanceID = try resolveInstanceID(config, env: env, transport: transport, cluster: cluster, logger: logger)
                let credentials = try CredentialSources.resolve(environment: env, region: region, transport: transport)
                let aws = AWSClient(transport: transport, credentials: credentials, region: region) { wallNow() }
                signal = ResourceSignal(client: CloudFormationClient(aws: aws, baseURL: AWSService.cloudFormation.endpoint(region: region, environment: env)),
                                        stack: stack, logicalResourceID: resource, uniqueID: instanceID)
            }
            let outcome = ReadyRunner(cluster: cluster, settings: config.settings, signal: signal, clock: MonotonicClock(), logger: logger).run()
            switch outcome {
            case .ready, .notBooting: return 0
            case .timedOut: return ExitCode.failure
            case .failed(let why):
                logger.error("node is healthy but could not be released", ("error", .string(why)))
                return ExitCode.failure
            }
        } catch {
            return fail(error, logger)
        }
    }
}
