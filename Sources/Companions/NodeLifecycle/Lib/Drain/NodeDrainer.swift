import KLCore
import KLSupport

/// What became of one lifecycle message.
public enum DrainReport: Sendable, Hashable {
    /// No node has this instance's providerID; `--on-unknown-node continue`:
    /// completed with CONTINUE and deleted.
    case unknownNode
    /// No node has this instance's providerID; `--on-unknown-node leave`
    /// (default): neither completed nor deleted. The message comes back
    /// after its visibility timeout (another cluster sharing the queue may
    /// own the instance) and goes to the dead-letter queue after
    /// `maxReceiveCount` receives.
    case unknownNodeLeft
    /// Every pod went; completed with CONTINUE and deleted.
    case drained(node: String)
    /// `--drain-timeout` ran out; completed with CONTINUE anyway and deleted.
    case timedOut(node: String, remaining: [String])
    /// Auto Scaling no longer had the action (completed before, or its
    /// heartbeat timeout passed): nothing to complete, message deleted.
    case alreadyCompleted(node: String?)
    /// A launching instance: completed with CONTINUE and deleted.
    case launchCompleted
    /// A rebalance recommendation: the node was cordoned and tainted (not
    /// drained); message deleted.
    case cordoned(node: String)
    /// The message stays on the queue (it comes back after its visibility
    /// timeout): Kubernetes or AWS failed in a way worth retrying.
    case leftOnQueue(reason: String)
}

/// `--on-unknown-node`: what to do with an action whose instance is no node
/// of this cluster.
public enum UnknownNodePolicy: String, Sendable, Equatable {
    /// Leave the message on the queue (aws-node-termination-handler's
    /// `DELETE_SQS_MSG_IF_NODE_NOT_FOUND=false`). Default.
    case leave
    /// Complete the action with CONTINUE and delete the message.
    case `continue`
}

/// Drains the node of one terminating instance and answers its lifecycle
/// action. Every step can be repeated safely, so a redelivered message (or a
/// second replica) does no harm:
/// 1. find the node by `spec.providerID` (`aws:///ZONE/INSTANCE`);
/// 2. cordon it and add the drain taint (no-op when already there);
/// 3. evict its pods per `DrainPlan` (kubectl drain's filters), while the
///    action is heartbeated and its messages kept hidden;
/// 4. complete the action with CONTINUE, exactly once, and delete its
///    messages with their newest receipt handles.
public struct NodeDrainer: Sendable {
    public var cluster: any ClusterAPI
    public var lifecycle: any LifecycleAPI
    public var queue: any QueueAPI
    public var settings: DrainSettings
    public var taint: Taint
    public var clock: any BlockingClock<MonotonicInstant>
    public var logger: Logger
    public var onUnknownNode: UnknownNodePolicy
    public var metrics: DrainMetrics?

    public init(cluster: any ClusterAPI, lifecycle: any LifecycleAPI, queue: any QueueAPI, settings: DrainSettings,
                taint: Taint, clock: any BlockingClock<MonotonicInstant>, logger: Logger, onUnknownNode: UnknownNodePolicy = .leave,
                metrics: DrainMetrics? = nil) {
        self.cluster = cluster
        self.lifecycle = lifecycle
        self.queue = queue
        self.settings = settings
        self.taint = taint
        self.clock = clock
        self.logger = logger
        self.onUnknownNode = onUnknownNode
        self.metrics = metrics
    }

    /// How long the message is hidden per extension: two heartbeats' worth.
    var visibilitySeconds: Int { Int(max(30, min(43_200, 2 * settings.heartbeatInterval.components.seconds))) }

    func log(for ticket: ActionTicket) -> Logger {
        logger.with(("instance.id", .string(ticket.action.instanceID)), ("asg.name", .string(ticket.action.autoScalingGroupName)),
                    ("sqs.message_id", .string(ticket.messages.first?.messageID ?? "")))
    }

    /// Drains on its own, heartbeating the action itself (one action, no service).
    public func handle(_ action: LifecycleAction, message: SQSMessage) -> DrainReport {
        handle(ActionTicket(action: action, message: message, now: clock.now), selfHeartbeat: true)
    }

    /// Drains `ticket`'s node. With `selfHeartbeat` false the caller (the
    /// service's heartbeat loop) keeps the action alive; the drain only
    /// stops when that loop finds it gone.
    public func handle(_ ticket: ActionTicket, selfHeartbeat: Bool) -> DrainReport {
        let action = ticket.action
        let log = log(for: ticket)
        if action.transition == .launching {
            return finish(ticket, node: nil, log: log, report: .launchCompleted)
        }
        // 1. The node.
        let node: JSON?
        do {
            node = try findNode(action.instanceID)
        } catch {
            log.error("cannot list nodes; message left for redelivery", ("error", .string(error.description)))
            return .leftOnQueue(reason: error.description)
        }
        guard let node, let nodeName = node[path: "metadata", "name"]?.stringValue else {
            return unknownNode(ticket, log: log)
        }
        let nodeUID = node[path: "metadata", "uid"]?.stringValue
        let nlog = log.with(("node.name", .string(nodeName)))
        // 2. Cordon and taint.
        do {
            try cordon(nodeName, log: nlog)
        } catch {
            nlog.error("cannot cordon the node; message left for redelivery", ("error", .string(error.description)))
            return .leftOnQueue(reason: error.description)
        }
        if action.source == .rebalanceRecommendation {
            nlog.notice("rebalance recommendation: node cordoned, not drained")
            event(NodeEvent(node: nodeName, nodeUID: nodeUID, reason: "RebalanceRecommendation",
                            message: "EC2 recommends rebalancing instance \(action.instanceID): cordoned and tainted, pods stay until it is terminated."),
                  log: nlog)
            return finish(ticket, node: nodeName, log: nlog, report: .cordoned(node: nodeName))
        }
        // A spot instance goes two minutes after its warning.
        var settings = settings
        if action.source == .spotInterruption { settings.timeout = min(settings.timeout, .seconds(120)) }
        // 3. Drain.
        let pods: [JSON]
        do {
            pods = try cluster.podsOnNode(nodeName, labelSelector: settings.podSelector)
        } catch {
            nlog.error("cannot list the node's pods; message left for redelivery", ("error", .string(error.description)))
            return .leftOnQueue(reason: error.description)
        }
        let started = clock.now
        var plan = DrainPlan.make(pods: pods.compactMap(DrainPod.init(json:)), settings: settings, now: started)
        for (pod, reason) in plan.skipped {
            if reason.isRefusal {
                nlog.warning("pod left on the node: kubectl drain would refuse it", ("pod", .string(pod.key)), ("reason", .string(reason.rawValue)))
            } else {
                nlog.info("pod stays on the node", ("pod", .string(pod.key)), ("reason", .string(reason.rawValue)))
            }
        }
        nlog.notice("drain started", ("pods.to_evict", JSON(plan.remaining.count)), ("pods.left", JSON(plan.skipped.count)),
                    ("drain.timeout", .string(DurationText.format(settings.timeout))))
        event(NodeEvent(node: nodeName, nodeUID: nodeUID, reason: "DrainStarted",
                        message: "Instance \(action.instanceID) is terminating (\(action.source.rawValue)): draining \(plan.remaining.count) pods (timeout \(DurationText.format(settings.timeout)))."),
              log: nlog)
        while true {
            for step in plan.next(now: clock.now) {
                switch step {
                case .evict(let pod):
                    let grace = plan.gracePeriod(for: pod, now: clock.now)
                    let result = cluster.evict(namespace: pod.namespace, name: pod.name, gracePeriodSeconds: grace)
                    switch result {
                    case .accepted:
                        metrics?.podEvicted()
                        nlog.info("pod evicted", ("pod", .string(pod.key)), ("grace_period_seconds", grace.map { JSON($0) } ?? .null))
                    case .notFound: nlog.info("pod already gone", ("pod", .string(pod.key)))
                    case .blocked:
                        metrics?.evictionBlocked()
                        nlog.info("eviction blocked by a PodDisruptionBudget; retrying", ("pod", .string(pod.key)))
                    case .failed(let why): nlog.warning("eviction failed; retrying", ("pod", .string(pod.key)), ("error", .string(why)))
                    }
                    plan.record(result, for: pod, now: clock.now)
                case .heartbeat:
                    plan.heartbeatSent(now: clock.now)
                    if selfHeartbeat { _ = keepAlive(ticket, log: nlog) }
                    if ticket.isGone {
                        nlog.warning("the lifecycle action is no longer active; stopping the drain")
                        deleteMessages(ticket, log: nlog)
                        return .alreadyCompleted(node: nodeName)
                    }
                case .wait(let until):
                    clock.sleep(until: until)
                    do {
                        let skippedBefore = plan.skipped.count
                        let adopted = plan.observe(pods: try cluster.podsOnNode(nodeName, labelSelector: settings.podSelector)
                            .compactMap(DrainPod.init(json:)), now: clock.now)
                        for pod in adopted {
                            nlog.info("pod arrived on the node during the drain; evicting it too", ("pod", .string(pod.key)))
                        }
                        for (pod, reason) in plan.skipped.dropFirst(skippedBefore) {
                            nlog.warning("pod arrived on the node during the drain and stays", ("pod", .string(pod.key)),
                                         ("reason", .string(reason.rawValue)))
                        }
                    } catch {
                        nlog.warning("cannot list the node's pods", ("error", .string(error.description)))
                    }
                case .finish(.drained):
                    let took = clock.now - started
                    nlog.notice("node drained", ("drain.duration", .string(DurationText.format(took))))
                    event(NodeEvent(node: nodeName, nodeUID: nodeUID, reason: "DrainFinished",
                                    message: "Drained in \(DurationText.format(took)); completing the lifecycle action of \(action.instanceID) with CONTINUE."),
                          log: nlog)
                    metrics?.drainDuration(took)
                    return finish(ticket, node: nodeName, log: nlog, report: .drained(node: nodeName))
                case .finish(.timedOut(let remaining)):
                    let left = remaining.map(\.key)
                    nlog.error("drain timeout reached; completing with pods left on the node",
                               ("pods.left", .array(left.map { .string($0) })))
                    event(NodeEvent(node: nodeName, nodeUID: nodeUID, reason: "DrainTimedOut",
                                    message: "Drain timeout \(DurationText.format(settings.timeout)) reached with \(left.count) pods left (\(left.prefix(10).joined(separator: ", "))); completing with CONTINUE.",
                                    kind: .warning),
                          log: nlog)
                    metrics?.drainDuration(clock.now - started)
                    return finish(ticket, node: nodeName, log: nlog, report: .timedOut(node: nodeName, remaining: left))
                }
            }
        }
    }

    /// The node whose `spec.providerID` names `instanceID`, or nil.
    public func findNode(_ instanceID: String) throws(NodeLifecycleError) -> JSON? {
        Self.node(for: instanceID, in: try cluster.listNodes())
    }

    static func node(for instanceID: String, in nodes: [JSON]) -> JSON? {
        nodes.first { $0[path: "spec", "providerID"]?.stringValue.flatMap(ProviderID.instanceID) == instanceID }
    }

    /// `--on-unknown-node`: leave the message (default) or complete and delete.
    func unknownNode(_ ticket: ActionTicket, log: Logger) -> DrainReport {
        switch onUnknownNode {
        case .leave:
            log.warning("no node has this instance's providerID; message left on the queue (--on-unknown-node leave): it comes back after its visibility timeout and goes to the dead-letter queue after maxReceiveCount receives",
                        ("on_unknown_node", "leave"), ("sqs.receive_count", JSON(ticket.messages.map(\.receiveCount).max() ?? 1)))
            ticket.markDone()
            return .unknownNodeLeft
        case .continue:
            log.warning("no node has this instance's providerID; completing the lifecycle action (--on-unknown-node continue)",
                        ("on_unknown_node", "continue"))
            return finish(ticket, node: nil, log: log, report: .unknownNode)
        }
    }

    /// One heartbeat: RecordLifecycleActionHeartbeat, then every message of
    /// the action hidden for `visibilitySeconds` more (newest receipt handle).
    /// Returns false when Auto Scaling no longer has the action (then the
    /// ticket is marked gone).
    @discardableResult
    public func keepAlive(_ ticket: ActionTicket, log: Logger) -> Bool {
        if ticket.isDone { return true }
        ticket.heartbeatSent(now: clock.now)
        if ticket.action.isLifecycleHook { do {
            try lifecycle.heartbeat(ticket.action)
            metrics?.heartbeat(ok: true)
            log.debug("lifecycle heartbeat sent")
        } catch {
            metrics?.heartbeat(ok: false)
            if AutoScalingClient.isNoActiveAction(error) {
                ticket.markGone()
                return false
            }
            log.warning("lifecycle heartbeat failed", ("error", .string(error.description)))
        } }
        for m in ticket.messages {
            do { try queue.extend(m, seconds: visibilitySeconds) } catch {
                log.warning("cannot extend the message's visibility", ("sqs.message_id", .string(m.messageID)), ("error", .string(error.description)))
            }
        }
        return true
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

    /// Completes with CONTINUE (once) and deletes the messages. A "no active
    /// lifecycle action" answer means it was done before: delete anyway.
    func finish(_ ticket: ActionTicket, node: String?, log: Logger, report: DrainReport) -> DrainReport {
        ticket.markDone()
        guard ticket.action.isLifecycleHook else {
            // An EC2 event: no lifecycle action waits for an answer.
            log.notice("EC2 event handled", ("source", .string(ticket.action.source.rawValue)))
            deleteMessages(ticket, log: log)
            return report
        }
        do {
            try lifecycle.complete(ticket.action, result: .continue)
            log.notice("lifecycle action completed", ("result", "CONTINUE"))
        } catch {
            if AutoScalingClient.isNoActiveAction(error) {
                log.info("lifecycle action was already completed")
                deleteMessages(ticket, log: log)
                return .alreadyCompleted(node: node)
            }
            log.error("cannot complete the lifecycle action; message left for redelivery", ("error", .string(error.description)))
            return .leftOnQueue(reason: error.description)
        }
        deleteMessages(ticket, log: log)
        return report
    }

    /// Deletes every message of the action with its newest receipt handle.
    func deleteMessages(_ ticket: ActionTicket, log: Logger) {
        ticket.markDone()
        for message in ticket.messages {
            do {
                try queue.delete(message)
                log.debug("message deleted", ("sqs.message_id", .string(message.messageID)))
            } catch {
                log.warning("cannot delete the message; it comes back and is handled again harmlessly",
                            ("sqs.message_id", .string(message.messageID)), ("error", .string(error.description)))
            }
        }
    }

    func event(_ e: NodeEvent, log: Logger) {
        do { try cluster.recordEvent(e) } catch {
            log.warning("cannot record an Event on the node", ("reason", .string(e.reason)), ("error", .string(error.description)))
        }
    }
}
