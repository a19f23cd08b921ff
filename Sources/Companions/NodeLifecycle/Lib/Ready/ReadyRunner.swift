import KLCore
import KLSupport

/// Where a `ready` run ended.
public enum ReadyOutcome: Sendable, Equatable {
    /// Healthy: taint removed (and SUCCESS signalled when configured).
    case ready
    /// The timeout passed: FAILURE signalled (when configured), taint kept.
    case timedOut(problems: [String])
    /// Healthy, but removing the taint or signalling failed.
    case failed(String)
}

/// Settings of `node-lifecycle ready`.
public struct ReadySettings: Sendable, Equatable {
    public var nodeName: String
    /// The boot taint to remove (kubelet `--register-with-taints`).
    public var taintKey: String
    /// Conditions that must be reported and False (node-problem-detector).
    public var conditions: [String]
    public var timeout: Duration
    public var pollInterval: Duration

    public init(nodeName: String, taintKey: String, conditions: [String] = [], timeout: Duration = .seconds(600),
                pollInterval: Duration = .seconds(5)) {
        self.nodeName = nodeName
        self.taintKey = taintKey
        self.conditions = conditions
        self.timeout = timeout
        self.pollInterval = pollInterval
    }
}

/// The CloudFormation signal `ready` sends, if any.
public struct ResourceSignal: Sendable {
    public var client: CloudFormationClient
    public var stack: String
    public var logicalResourceID: String
    public var uniqueID: String

    public init(client: CloudFormationClient, stack: String, logicalResourceID: String, uniqueID: String) {
        self.client = client
        self.stack = stack
        self.logicalResourceID = logicalResourceID
        self.uniqueID = uniqueID
    }

    func send(_ status: ResourceSignalStatus) throws(NodeLifecycleError) {
        try client.signalResource(stack: stack, logicalResourceID: logicalResourceID, uniqueID: uniqueID, status: status)
    }
}

/// Waits for a new node to be healthy, then lets work onto it:
/// 1. poll the node until Ready is True and every named condition is
///    reported False (a condition not reported yet is not healthy);
/// 2. remove the boot taint (idempotent; re-read on conflict);
/// 3. signal SUCCESS for the CloudFormation resource.
/// On timeout: signal FAILURE (the rolling update stops and rolls back),
/// keep the taint, report the problems.
public struct ReadyRunner: Sendable {
    public var cluster: any ClusterAPI
    public var settings: ReadySettings
    public var signal: ResourceSignal?
    public var sleeper: any Sleeper
    public var logger: Logger

    public init(cluster: any ClusterAPI, settings: ReadySettings, signal: ResourceSignal?, sleeper: any Sleeper, logger: Logger) {
        self.cluster = cluster
        self.settings = settings
        self.signal = signal
        self.sleeper = sleeper
        self.logger = logger
    }

    public func run() -> ReadyOutcome {
        let log = logger.with(("node.name", .string(settings.nodeName)))
        let deadline = sleeper.now() + settings.timeout
        var lastProblems: [String] = []
        while true {
            var problems: [String]
            do {
                if let node = try cluster.getNode(settings.nodeName) {
                    problems = NodeHealth.check(node, mustBeFalse: settings.conditions).problems
                } else {
                    problems = ["the node is not registered yet"]
                }
            } catch {
                problems = ["cannot read the node: \(error.description)"]
            }
            if problems.isEmpty {
                log.notice("node is healthy")
                return becomeReady(log)
            }
            if problems != lastProblems {
                log.info("waiting for the node to be healthy", ("problems", .array(problems.map { .string($0) })))
                lastProblems = problems
            }
            let now = sleeper.now()
            if now >= deadline {
                log.error("node did not become healthy in time; the boot taint stays",
                          ("problems", .array(problems.map { .string($0) })),
                          ("timeout", .string(DurationText.format(settings.timeout))))
                if let signal {
                    do {
                        try signal.send(.failure)
                        log.notice("resource signalled", ("status", "FAILURE"), ("stack", .string(signal.stack)),
                                   ("resource", .string(signal.logicalResourceID)))
                    } catch {
                        log.error("cannot signal FAILURE", ("error", .string(error.description)))
                    }
                }
                return .timedOut(problems: problems)
            }
            sleeper.sleep(until: min(deadline, now + settings.pollInterval))
        }
    }

    func becomeReady(_ log: Logger) -> ReadyOutcome {
        do {
            var removed = false
            for _ in 0..<5 where !removed {
                guard let node = try cluster.getNode(settings.nodeName) else {
                    return .failed("The node \(settings.nodeName) disappeared before its taint was removed.")
                }
                guard let edited = NodeEdits.removeTaint(node, key: settings.taintKey) else {
                    log.info("boot taint not present", ("taint", .string(settings.taintKey)))
                    removed = true
                    break
                }
                removed = try cluster.updateNode(edited)
                if removed { log.notice("boot taint removed", ("taint", .string(settings.taintKey))) }
            }
            if !removed {
                return .failed("Removing the taint \(settings.taintKey) from node \(settings.nodeName) kept conflicting with other writers; run ready again.")
            }
        } catch {
            return .failed(error.description)
        }
        if let signal {
            do {
                try signal.send(.success)
                log.notice("resource signalled", ("status", "SUCCESS"), ("stack", .string(signal.stack)),
                           ("resource", .string(signal.logicalResourceID)), ("unique_id", .string(signal.uniqueID)))
            } catch {
                if CloudFormationClient.isNotWaitingForSignals(error) {
                    log.notice("the resource is not waiting for signals; nothing to signal", ("error", .string(error.description)))
                    return .ready
                }
                return .failed(error.description)
            }
        }
        return .ready
    }
}
