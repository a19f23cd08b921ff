import KLCore
import KLSystem

/// Where a `ready` run ended.
public enum ReadyOutcome: Sendable, Equatable {
    /// Healthy: taint removed (and SUCCESS signalled when configured).
    case ready
    /// The timeout passed: FAILURE signalled (when configured), taint kept.
    case timedOut(problems: [String])
    /// Healthy, but removing the taint or signalling failed.
    case failed(String)
    /// The node never carried the boot taint (and has no record that it
    /// did): an old node. Nothing removed, nothing signalled.
    case notBooting
}

/// Settings of `node-lifecycle ready`.
public struct ReadySettings: Sendable, Equatable {
    public var nodeName: String
    /// The boot taint to remove (kubelet `--register-with-taints`).
    public var taintKey: String
    /// Conditions that must be reported and False (node-problem-detector).
    public var conditions: [String] = []
    public var timeout: Duration = .seconds(600)
    public var pollInterval: Duration = .seconds(5)
}

/// The CloudFormation signal `ready` sends, if any.
public struct ResourceSignal: Sendable {
    public var client: CloudFormationClient
    public var stack: String
    public var logicalResourceID: String
    public var uniqueID: String

    func send(_ status: ResourceSignalStatus) throws(NodeLifecycleError) {
        try client.signalResource(stack: stack, logicalResourceID: logicalResourceID, uniqueID: uniqueID, status: status)
    }
}

/// What `ready` records on the Node so that running it again (a restarted
/// init container, a DaemonSet pod recreated on an old node) never signals
/// twice: annotations, written with the resourceVersion read.
public enum ReadyRecord {
    /// Set when `ready` removes the boot taint: the node booted with it.
    public static let bootedAnnotation = "node-lifecycle/booted-with-taint"
    /// Instance id for which SUCCESS / FAILURE was signalled.
    public static func signalledAnnotation(_ status: ResourceSignalStatus) -> String {
        "node-lifecycle/signalled-" + status.rawValue.lowercased()
    }

    public static func bootedWithTaint(_ node: JSON) -> Bool {
        node[path: "metadata", "annotations", bootedAnnotation] != nil
    }

    public static func signalled(_ node: JSON, _ status: ResourceSignalStatus, uniqueID: String) -> Bool {
        node[path: "metadata", "annotations", signalledAnnotation(status)]?.stringValue == uniqueID
    }

    /// `node` with `metadata.annotations[key] = value`, or nil when already so.
    public static func annotate(_ node: JSON, _ key: String, _ value: String) -> JSON? {
        if node[path: "metadata", "annotations", key]?.stringValue == value { return .none }
        var node = node
        if node[path: "metadata", "annotations"]?.objectValue == nil { node[path: "metadata", "annotations"] = .object(JSONObject()) }
        node[path: "metadata", "annotations", key] = .string(value)
        return .some(node)
    }
}

/// Waits for a new node to be healthy, then lets work onto it:
/// 0. a node that neither carries the boot taint nor the record that it
///    booted with it is an old node: nothing to do, no signal;
/// 1. poll the node until Ready is True and every named condition is
///    reported False (a condition not reported yet is not healthy);
/// 2. remove the boot taint and record `ReadyRecord.bootedAnnotation` (one
///    update; idempotent; re-read on conflict);
/// 3. signal SUCCESS for the CloudFormation resource, unless the Node
///    records that it was signalled for this instance, then record it.
/// On timeout: signal FAILURE (the rolling update stops and rolls back)
/// once per instance, keep the taint, report the problems.
/// A signal is recorded after it was sent: a crash between the two can
/// repeat it once; nothing else can.
public struct ReadyRunner: Sendable {
    public var cluster: any ClusterAPI
    public var settings: ReadySettings
    public var signal: ResourceSignal?
    public var clock: any BlockingClock<MonotonicInstant>
    public var logger: Logger

    public func run() -> ReadyOutcome {
        let log = logger.with(("node.name", .string(settings.nodeName)))
        let deadline = clock.now + settings.timeout
        var lastProblems: [String] = []
        var checkedBoot = false
        while true {
            var problems: [String]
            do {
                if let node = try cluster.getNode(settings.nodeName) {
                    if !checkedBoot {
                        checkedBoot = true
                        if !NodeEdits.hasTaint(node, key: settings.taintKey) && !ReadyRecord.bootedWithTaint(node) {
                            log.notice("the node did not boot with the boot taint (an old node, or a pod restarted there); nothing to release or signal",
                                       ("taint", .string(settings.taintKey)))
                            return .notBooting
                        }
                        if let signal, ReadyRecord.signalled(node, .success, uniqueID: signal.uniqueID) {
                            log.notice("SUCCESS was already signalled for this instance; not signalling again",
                                       ("unique_id", .string(signal.uniqueID)))
                            return becomeReady(log, signalToo: false)
                        }
                    }
                    problems = NodeHealth.check(node, mustBeFalse: settings.conditions).problems
                } else {
                    problems = ["the node is not registered yet"]
                }
            } catch {
                problems = ["cannot read the node: \(error.description)"]
            }
            if problems.isEmpty {
                log.notice("node is healthy")
                return becomeReady(log, signalToo: true)
            }
            if problems != lastProblems {
                log.info("waiting for the node to be healthy", ("problems", .array(problems.map { .string($0) })))
                lastProblems = problems
            }
            let now = clock.now
            if now >= deadline {
                log.error("node did not become healthy in time; the boot taint stays",
                          ("problems", .array(problems.map { .string($0) })),
                          ("timeout", .string(DurationText.format(settings.timeout))))
                if let signal {
                    signalOnce(signal, .failure, log: log)
                }
                return .timedOut(problems: problems)
            }
            clock.sleep(until: min(deadline, now + settings.pollInterval))
        }
    }

    /// Re-reads the node and PUTs `edit`'s result, up to 5 times on conflict.
    /// Returns false when it kept conflicting; true when done or nothing to do.
    func editNode(_ edit: (JSON) -> JSON?) throws(NodeLifecycleError) -> Bool {
        for _ in 0..<5 {
            guard let node = try cluster.getNode(settings.nodeName) else {
                throw NodeLifecycleError(.kube, "The node \(settings.nodeName) disappeared.")
            }
            guard let edited = edit(node) else { return true }
            if try cluster.updateNode(edited) { return true }
        }
        return false
    }

    /// Signals `status` unless the Node records it for this instance, then
    /// records it. Returns an error text when the signal failed.
    @discardableResult
    func signalOnce(_ signal: ResourceSignal, _ status: ResourceSignalStatus, log: Logger) -> String? {
        let key = ReadyRecord.signalledAnnotation(status)
        do {
            if let node = try cluster.getNode(settings.nodeName), ReadyRecord.signalled(node, status, uniqueID: signal.uniqueID) {
                log.notice("\(status.rawValue) was already signalled for this instance; not signalling again",
                           ("status", .string(status.rawValue)), ("unique_id", .string(signal.uniqueID)))
                return nil
            }
        } catch {
            log.warning("cannot read the node's signal record; signalling anyway", ("error", .string(error.description)))
        }
        do {
            try signal.send(status)
            log.notice("resource signalled", ("status", .string(status.rawValue)), ("stack", .string(signal.stack)),
                       ("resource", .string(signal.logicalResourceID)), ("unique_id", .string(signal.uniqueID)))
        } catch {
            if CloudFormationClient.isNotWaitingForSignals(error) {
                log.notice("the resource is not waiting for signals; nothing to signal", ("error", .string(error.description)))
            } else {
                log.error("cannot signal \(status.rawValue)", ("error", .string(error.description)))
                return error.description
            }
        }
        do {
            if try !editNode({ ReadyRecord.annotate($0, key, signal.uniqueID) }) {
                log.warning("cannot record the signal on the node (conflicts)", ("annotation", .string(key)))
            }
        } catch {
            log.warning("cannot record the signal on the node", ("annotation", .string(key)), ("error", .string(error.description)))
        }
        return nil
    }

    func becomeReady(_ log: Logger, signalToo: Bool) -> ReadyOutcome {
        do {
            var hadTaint = false
            let done = try editNode { node in
                hadTaint = NodeEdits.hasTaint(node, key: settings.taintKey)
                let untainted = NodeEdits.removeTaint(node, key: settings.taintKey) ?? node
                if let annotated = ReadyRecord.annotate(untainted, ReadyRecord.bootedAnnotation, "true") { return .some(annotated) }
                // (Not `hadTaint ? untainted : nil`: JSON is ExpressibleByNilLiteral.)
                if hadTaint { return .some(untainted) }
                return Optional<JSON>.none
            }
            if !done {
                return .failed("Removing the taint \(settings.taintKey) from node \(settings.nodeName) kept conflicting with other writers; run ready again.")
            }
            if hadTaint {
                log.notice("boot taint removed", ("taint", .string(settings.taintKey)))
            } else {
                log.info("boot taint not present", ("taint", .string(settings.taintKey)))
            }
        } catch {
            return .failed(error.description)
        }
        if signalToo, let signal, let failure = signalOnce(signal, .success, log: log) {
            return .failed(failure)
        }
        return .ready
    }
}
