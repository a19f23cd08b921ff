import KLCore
import KLSupport

/// What became of one lifecycle message.
public enum DrainReport: Sendable, Equatable {
    /// No node has this instance's providerID: completed and deleted.
    case unknownNode
    /// Every pod went; completed with CONTINUE and deleted.
    case drained(node: String)
    /// `--drain-timeout` ran out; completed with CONTINUE anyway and deleted.
    case timedOut(node: String, remaining: [String])
    /// Auto Scaling no longer had the action (completed before, or its
    /// heartbeat timeout passed): nothing to complete, message deleted.
    case alreadyCompleted(node: String?)
    /// A launching instance: completed with CONTINUE and deleted.
    case launchCompleted
    /// The message stays on the queue (it comes back after its visibility
    /// timeout): Kubernetes or AWS failed in a way worth retrying.
    case leftOnQueue(reason: String)
}

/// Drains the node of one terminating instance and answers its lifecycle
/// action. Every step can be repeated safely, so a redelivered message (or a
/// second replica) does no harm:
/// 1. find the node by `spec.providerID` (`aws:///ZONE/INSTANCE`);
/// 2. cordon it and add the drain taint (no-op when already there);
/// 3. evict its pods per `DrainPlan`, with heartbeats (which also extend
///    the message's visibility) while it runs;
/// 4. complete the action with CONTINUE, exactly once, and delete the message.
public struct NodeDrainer: Sendable {
    public var cluster: any ClusterAPI
    public var lifecycle: any LifecycleAPI
    public var queue: any QueueAPI
    public var settings: DrainSettings
    public var taint: Taint
    public var sleeper: any Sleeper
    public var logger: Logger

    public init(cluster: any ClusterAPI, lifecycle: any LifecycleAPI, queue: any QueueAPI, settings: DrainSettings,
                taint: Taint, sleeper: any Sleeper, logger: Logger) {
        self.cluster = cluster
        self.lifecycle = lifecycle
        self.queue = queue
        self.settings = settings
        self.taint = taint
        self.sleeper = sleeper
        self.logger = logger
    }

    /// How long the message is hidden per extension: two heartbeats' worth.
    var visibilitySeconds: Int { Int(max(30, 2 * settings.heartbeatInterval.components.seconds)) }

    public func handle(_ action: LifecycleAction, message: SQSMessage) -> DrainReport {
        let log = logger.with(("instance.id", .string(action.instanceID)), ("asg.name", .string(action.autoScalingGroupName)),
                              ("sqs.message_id", .string(message.messageID)))
        if action.transition == .launching {
            return finish(action, message: message, node: nil, log: log, report: .launchCompleted)
        }
        // 1. The node.
        let nodeName: String?
        do {
            nodeName = ProviderID.nodeName(for: action.instanceID, in: try cluster.listNodes())
        } catch {
            log.error("cannot list nodes; message left for redelivery", ("error", .string(error.description)))
            return .leftOnQueue(reason: error.description)
        }
        guard let nodeName else {
            log.warning("no node has this instance's providerID; completing the lifecycle action")
            return finish(action, message: message, node: nil, log: log, report: .unknownNode)
        }
        let nlog = log.with(("node.name", .string(nodeName)))
        // 2. Cordon and taint.
        do {
            try cordon(nodeName, log: nlog)
        } catch {
            nlog.error("cannot cordon the node; message left for redelivery", ("error", .string(error.description)))
            return .leftOnQueue(reason: error.description)
        }
        // 3. Drain.
        let pods: [JSON]
        do {
            pods = try cluster.podsOnNode(nodeName)
        } catch {
            nlog.error("cannot list the node's pods; message left for redelivery", ("error", .string(error.description)))
            return .leftOnQueue(reason: error.description)
        }
        var plan = DrainPlan.make(pods: pods.compactMap(DrainPod.init(json:)), settings: settings, now: sleeper.now())
        for (pod, reason) in plan.skipped {
            nlog.info("pod stays on the node", ("pod", .string(pod.key)), ("reason", .string(reason.rawValue)))
        }
        nlog.notice("drain started", ("pods.to_evict", JSON(plan.remaining.count)),
                    ("drain.timeout", .string(DurationText.format(settings.timeout))))
        while true {
            for step in plan.next(now: sleeper.now()) {
                switch step {
                case .evict(let pod):
                    let result = cluster.evict(namespace: pod.namespace, name: pod.name)
                    switch result {
                    case .accepted: nlog.info("pod evicted", ("pod", .string(pod.key)))
                    case .notFound: nlog.info("pod already gone", ("pod", .string(pod.key)))
                    case .blocked: nlog.info("eviction blocked by a PodDisruptionBudget; retrying", ("pod", .string(pod.key)))
                    case .failed(let why): nlog.warning("eviction failed; retrying", ("pod", .string(pod.key)), ("error", .string(why)))
                    }
                    plan.record(result, for: pod, now: sleeper.now())
                case .heartbeat:
                    plan.heartbeatSent(now: sleeper.now())
                    do {
                        try lifecycle.heartbeat(action)
                        nlog.debug("lifecycle heartbeat sent")
                    } catch {
                        if AutoScalingClient.isNoActiveAction(error) {
                            nlog.warning("the lifecycle action is no longer active; stopping the drain")
                            deleteMessage(message, log: nlog)
                            return .alreadyCompleted(node: nodeName)
                        }
                        nlog.warning("lifecycle heartbeat failed", ("error", .string(error.description)))
                    }
                    do { try queue.extend(message, seconds: visibilitySeconds) } catch {
                        nlog.warning("cannot extend the message's visibility", ("error", .string(error.description)))
                    }
                case .wait(let until):
                    sleeper.sleep(until: until)
                    do {
                        plan.observe(pods: try cluster.podsOnNode(nodeName).compactMap(DrainPod.init(json:)), now: sleeper.now())
                    } catch {
                        nlog.warning("cannot list the node's pods", ("error", .string(error.description)))
                    }
                case .finish(.drained):
                    nlog.notice("node drained")
                    return finish(action, message: message, node: nodeName, log: nlog, report: .drained(node: nodeName))
                case .finish(.timedOut(let remaining)):
                    let left = remaining.map(\.key)
                    nlog.error("drain timeout reached; completing with pods left on the node",
                               ("pods.left", .array(left.map { .string($0) })))
                    return finish(action, message: message, node: nodeName, log: nlog,
                                  report: .timedOut(node: nodeName, remaining: left))
                }
            }
        }
    }

    /// Cordons and taints, re-reading after a conflict (up to 5 times).
    func cordon(_ name: String, log: Logger) throws(NodeLifecycleError) {
        for _ in 0..<5 {
            guard let node = try cluster.getNode(name) else {
                throw NodeLifecycleError(.kube, "The node \(name) disappeared while cordoning it.")
            }
            guard let edited = NodeEdits.cordonAndTaint(node, taint: taint) else {
                log.info("node already cordoned and tainted")
                return
            }
            if try cluster.updateNode(edited) {
                log.info("node cordoned and tainted", ("taint", .string(taint.key)))
                return
            }
        }
        throw NodeLifecycleError(.kube, "Cordoning node \(name) kept conflicting with other writers (5 attempts); it is retried when the message comes back.")
    }

    /// Completes with CONTINUE (once) and deletes the message. A "no active
    /// lifecycle action" answer means it was done before: delete anyway.
    func finish(_ action: LifecycleAction, message: SQSMessage, node: String?, log: Logger, report: DrainReport) -> DrainReport {
        do {
            try lifecycle.complete(action, result: .continue)
            log.notice("lifecycle action completed", ("result", "CONTINUE"))
        } catch {
            if AutoScalingClient.isNoActiveAction(error) {
                log.info("lifecycle action was already completed")
                deleteMessage(message, log: log)
                return .alreadyCompleted(node: node)
            }
            log.error("cannot complete the lifecycle action; message left for redelivery", ("error", .string(error.description)))
            return .leftOnQueue(reason: error.description)
        }
        deleteMessage(message, log: log)
        return report
    }

    func deleteMessage(_ message: SQSMessage, log: Logger) {
        do {
            try queue.delete(message)
            log.debug("message deleted")
        } catch {
            log.warning("cannot delete the message; it comes back and is handled again harmlessly", ("error", .string(error.description)))
        }
    }
}
