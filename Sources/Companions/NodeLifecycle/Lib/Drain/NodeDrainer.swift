import KLCore
import KLSystem

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
    /// A rebalance recommendation, or `--cordon-only`: the node was cordoned
    /// and tainted (not drained); completed when a hook waits; message deleted.
    case cordoned(node: String)
    /// `--managed-tag`: the instance does not carry the tag (another
    /// cluster's, on a shared queue): left on the queue like
    /// `--on-unknown-node leave`.
    case notManaged
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

/// What aws-node-termination-handler can be told to do besides draining
/// (`--cordon-only`, `--exclude-from-load-balancers`,
/// `--out-of-service-taint`, `--heartbeat-until`,
/// `--complete-lifecycle-action-delay`, `--webhook-*`).
public struct DrainOptions: Sendable {
    /// Cordon and taint, no eviction (NTH `CORDON_ONLY`).
    public var cordonOnly = false
    /// Label `node.kubernetes.io/exclude-from-external-load-balancers` with
    /// the cordon, before any eviction (NTH `EXCLUDE_FROM_LOAD_BALANCERS`).
    public var excludeFromLoadBalancers = false
    /// After the drain, taint `node.kubernetes.io/out-of-service=nodeshutdown:NoExecute`
    /// when the event ends in termination (NTH `ENABLE_OUT_OF_SERVICE_TAINT`).
    public var outOfServiceTaint = false
    /// Stop heartbeating an action this long after it was received (NTH
    /// `HEARTBEAT_UNTIL`, default 172800 s = 48 h, Auto Scaling's global timeout).
    public var heartbeatUntil: Duration = .seconds(172_800)
    /// Wait this long after the drain before `CompleteLifecycleAction` (NTH
    /// `COMPLETE_LIFECYCLE_ACTION_DELAY_SECONDS`, default -1: none).
    public var completeDelay: Duration? = nil
    /// A pod whose eviction a PodDisruptionBudget refuses for this long gets
    /// a Warning Event naming the budget (and the stuck-evictions metric).
    public var stuckEvictionWarning: Duration = .seconds(60)
    public var webhook: WebhookNotifier? = nil
    /// Wall clock, for a scheduled change's `startTime`.
    public var wallClock: @Sendable () -> WallTime = { wallNow() }

    public static let excludeLabel = "node.kubernetes.io/exclude-from-external-load-balancers"
    public static let outOfService = Taint(key: "node.kubernetes.io/out-of-service", value: "nodeshutdown", effect: "NoExecute")

    public init() {}
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
    public var options = DrainOptions()

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
        // A rebalance recommendation, or any action under --cordon-only,
        // ends here: cordoned and tainted, not drained.
        var cordonedOnly: (log: String, reason: String, event: String, webhook: String)?
        if action.source == .rebalanceRecommendation {
            cordonedOnly = ("rebalance recommendation: node cordoned, not drained", "RebalanceRecommendation",
                            "EC2 recommends rebalancing instance \(action.instanceID): cordoned and tainted, pods stay until it is terminated.",
                            "rebalance recommendation: cordoned")
        } else if options.cordonOnly {
            cordonedOnly = ("node cordoned, not drained (--cordon-only)", "Cordoned",
                            "Instance \(action.instanceID) is going (\(action.source.rawValue)): cordoned and tainted, not drained (--cordon-only).",
                            "cordoned, not drained (--cordon-only)")
        }
        if let cordonedOnly {
            nlog.notice(cordonedOnly.log)
            event(NodeEvent(node: nodeName, nodeUID: nodeUID, reason: cordonedOnly.reason, message: cordonedOnly.event), log: nlog)
            notify(ticket, node: nodeName, description: cordonedOnly.webhook)
            return finish(ticket, node: nodeName, log: nlog, report: .cordoned(node: nodeName))
        }
        // A spot instance goes two minutes after its warning.
        var settings = settings
        if action.source == .spotInterruption { settings.timeout = min(settings.timeout, .seconds(120)) }
        // A scheduled change must be drained before it starts.
        if let start = action.startTime {
            let left = start.duration(since: options.wallClock())
            settings.timeout = left > .seconds(1) ? min(settings.timeout, left) : min(settings.timeout, .seconds(120))
            if left <= .seconds(1) {
                nlog.warning("the scheduled change has started already; draining within 2 minutes", ("start_time", .string(RFC3339.format(start))))
            }
        }
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
        notify(ticket, node: nodeName, description: "draining \(plan.remaining.count) pods (timeout \(DurationText.format(settings.timeout)))")
        var firstBlocked: [String: MonotonicClock.Instant] = [:]
        var warnedStuck: Set<String> = []
        var budgets: [String: String] = [:]   // pod key -> PDB
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
                    case .blocked(_, let budget):
                        metrics?.evictionBlocked()
                        if let budget { budgets[pod.key] = budget }
                        nlog.info("eviction blocked by a PodDisruptionBudget; retrying", ("pod", .string(pod.key)),
                                  ("pdb", budget.map { .string($0) } ?? .null))
                        let since = firstBlocked[pod.key] ?? clock.now
                        firstBlocked[pod.key] = since
                        if clock.now - since >= options.stuckEvictionWarning, warnedStuck.insert(pod.key).inserted {
                            let pdb = budget ?? "(not named by the API server)"
                            metrics?.evictionStuck()
                            nlog.warning("a PodDisruptionBudget keeps refusing an eviction", ("pod", .string(pod.key)), ("pdb", .string(pdb)),
                                         ("blocked_for", .string(DurationText.format(clock.now - since))))
                            event(NodeEvent(node: nodeName, nodeUID: nodeUID, reason: "EvictionBlocked",
                                            message: "PodDisruptionBudget \(pdb) has refused evicting \(pod.key) for \(DurationText.format(clock.now - since)); the drain gives up at its timeout (\(DurationText.format(settings.timeout))).",
                                            kind: .warning),
                                  log: nlog)
                        }
                    case .failed(let why):
                        firstBlocked[pod.key] = nil
                        nlog.warning("eviction failed; retrying", ("pod", .string(pod.key)), ("error", .string(why)))
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
                    outOfService(ticket, nodeName, log: nlog)
                    return finish(ticket, node: nodeName, log: nlog, report: .drained(node: nodeName))
                case .finish(.timedOut(let remaining)):
                    let left = remaining.map(\.key)
                    let blockers = Set(remaining.compactMap { budgets[$0.key] }).sorted()
                    let because = blockers.isEmpty ? "" : "; blocked by PodDisruptionBudget \(blockers.prefix(5).joined(separator: ", "))"
                    nlog.error("drain timeout reached; completing with pods left on the node",
                               ("pods.left", .array(left.map { .string($0) })))
                    event(NodeEvent(node: nodeName, nodeUID: nodeUID, reason: "DrainTimedOut",
                                    message: "Drain timeout \(DurationText.format(settings.timeout)) reached with \(left.count) pods left (\(left.prefix(10).joined(separator: ", ")))\(because); completing with CONTINUE.",
                                    kind: .warning),
                          log: nlog)
                    metrics?.drainDuration(clock.now - started)
                    outOfService(ticket, nodeName, log: nlog)
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
        let stopped = clock.now - ticket.receivedAt >= options.heartbeatUntil
        if stopped, ticket.action.isLifecycleHook, ticket.stopHeartbeats() {
            log.warning("heartbeats stopped (--heartbeat-until); the hook's HeartbeatTimeout now applies",
                        ("heartbeat_until", .string(DurationText.format(options.heartbeatUntil))))
        }
        if ticket.action.isLifecycleHook && !stopped { do {
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
            let labels = options.excludeFromLoadBalancers ? [(DrainOptions.excludeLabel, "true")] : []
            guard let edited = NodeEdits.cordonAndTaint(node, taint: taint, labels: labels) else {
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
        if node != nil, ticket.action.isLifecycleHook, ticket.action.transition == .terminating, let delay = options.completeDelay, delay > .zero {
            // Heartbeats go on meanwhile (the ticket is not done yet).
            log.info("waiting before completing the lifecycle action (--complete-lifecycle-action-delay)",
                     ("delay", .string(DurationText.format(delay))))
            // In steps of at most one heartbeat interval, so the heartbeat
            // loop (a thread of its own, or a virtual clock's sleep hook) runs.
            let end = clock.now + delay
            while clock.now < end { clock.sleep(until: min(end, clock.now + settings.heartbeatInterval)) }
        }
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
        guard ticket.markDeleted() else { return }
        if let shared = ticket.shared, !shared.release() {
            log.debug("message shared with other instances' actions; deleted when the last is done")
            return
        }
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

    /// `--out-of-service-taint`: after the drain, only for events that end
    /// in termination. Best effort (the action is completed either way).
    func outOfService(_ ticket: ActionTicket, _ name: String, log: Logger) {
        guard options.outOfServiceTaint, ticket.action.endsInTermination else { return }
        for _ in 0..<5 {
            do {
                guard let node = try cluster.getNode(name) else { return }
                guard let edited = NodeEdits.addTaint(node, taint: DrainOptions.outOfService) else { return }
                if try cluster.updateNode(edited) {
                    log.info("out-of-service taint added", ("taint", .string(DrainOptions.outOfService.key)))
                    return
                }
            } catch {
                log.warning("cannot add the out-of-service taint", ("error", .string(error.description)))
                return
            }
        }
    }

    /// `--webhook-url`: one post per event, queued (never blocks the drain).
    func notify(_ ticket: ActionTicket, node: String, description: String) {
        guard let webhook = options.webhook else { return }
        let a = ticket.action
        webhook.notify(WebhookEvent(eventID: ticket.messages.first?.messageID ?? a.lifecycleActionToken, kind: a.nthKind,
                                    instanceID: a.instanceID, nodeName: node, description: description,
                                    startTime: a.startTime.map(RFC3339.format) ?? a.time ?? "", state: a.ec2State ?? "",
                                    autoScalingGroupName: a.autoScalingGroupName))
    }

    func event(_ e: NodeEvent, log: Logger) {
        do { try cluster.recordEvent(e) } catch {
            log.warning("cannot record an Event on the node", ("reason", .string(e.reason)), ("error", .string(error.description)))
        }
    }
}

extension LifecycleAction {
    /// aws-node-termination-handler's event kind, for webhook templates.
    public var nthKind: String {
        switch source {
        case .lifecycleHook: "ASG_LIFECYCLE"
        case .spotInterruption: "SPOT_ITN"
        case .rebalanceRecommendation: "REBALANCE_RECOMMENDATION"
        case .stateChange: "STATE_CHANGE"
        case .scheduledChange: "SCHEDULED_EVENT"
        }
    }
}
