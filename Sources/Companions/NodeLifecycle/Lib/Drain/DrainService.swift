import KLCore
import KLSystem
import Synchronization

/// The `drain` loop. It receives continuously, whatever the number of
/// drains running, so that every lifecycle action that reached the queue is
/// heartbeated from the moment it is received until it is completed:
/// 1. receive (long poll); test notifications are deleted, malformed
///    messages left for the dead-letter queue, launching actions completed;
/// 2. a terminating action whose instance is no node here follows
///    `--on-unknown-node`; any other gets a heartbeat at once and a ticket;
/// 3. tickets wait in arrival order for one of `concurrency` drain slots;
/// 4. the heartbeat loop (`runHeartbeats`) sends
///    `RecordLifecycleActionHeartbeat` for every ticket, waiting or
///    draining, each `--heartbeat-interval`, and keeps its messages hidden
///    (newest receipt handle), so nothing ever waits on `HeartbeatTimeout`.
///
/// At most `maxTracked` actions are held (bounded memory); beyond that,
/// receiving pauses and the rest stay on the queue.
public final class DrainService: Sendable {
    public let queue: any QueueAPI
    public let drainer: NodeDrainer
    public let concurrency: Int
    public let logger: Logger
    /// Long-poll wait per ReceiveMessage (SQS maximum 20 s).
    public let waitSeconds: Int
    public let maxTracked: Int
    /// `--managed-tag`: only instances carrying the tag are handled.
    public let managedTag: ManagedTag?

    struct Book {
        var tickets: [String: ActionTicket] = [:]
        /// Tokens waiting for a drain slot, oldest first.
        var waiting: [String] = []
        var running: Set<String> = []
    }
    private let book = Mutex(Book())
    private let reports = Mutex<[DrainReport]>([])

    public init(queue: any QueueAPI, drainer: NodeDrainer, concurrency: Int = 4, waitSeconds: Int = 20,
                maxTracked: Int = 1000, managedTag: ManagedTag? = nil, logger: Logger) {
        self.managedTag = managedTag
        self.queue = queue
        self.drainer = drainer
        self.concurrency = max(1, concurrency)
        self.waitSeconds = waitSeconds
        self.maxTracked = max(1, maxTracked)
        self.logger = logger
    }

    var metrics: DrainMetrics? { drainer.metrics }

    /// Drains running now.
    public var running: Int { book.withLock { $0.running.count } }
    /// Actions received and heartbeated, waiting for a drain slot.
    public var waiting: Int { book.withLock { $0.waiting.count } }
    /// Every action held (waiting or draining).
    public var tracked: [ActionTicket] { book.withLock { Array($0.tickets.values) } }

    /// Every finished action's report, in order (for tests and metrics).
    public var finished: [DrainReport] { reports.withLock { $0 } }

    func report(_ r: DrainReport) {
        reports.withLock { $0.append(r) }
        metrics?.completed(r)
    }

    func updateGauges() {
        let (r, w) = book.withLock { ($0.running.count, $0.waiting.count) }
        metrics?.setInProgress(running: r, waiting: w)
    }

    /// One receive, then drains started for free slots. Returns how many
    /// messages came. `inline` runs drains on the calling thread (tests).
    @discardableResult
    public func pollOnce(inline: Bool = false) throws(NodeLifecycleError) -> Int {
        let room = maxTracked - book.withLock { $0.tickets.count }
        if room <= 0 {
            logger.warning("too many lifecycle actions held; receiving paused", ("max", JSON(maxTracked)))
            drainer.clock.sleep(until: drainer.clock.now + .seconds(1))
            return 0
        }
        let messages = try queue.receive(max: min(10, room), waitSeconds: waitSeconds,
                                         visibilitySeconds: drainer.visibilitySeconds)
        var nodes: [JSON]? = nil   // listed once per batch, when needed
        if let managedTag, messages.count > 1 {
            // One DescribeTags for the batch instead of one per instance.
            managedTag.prefetch(messages.flatMap { m -> [String] in
                switch try? LifecycleMessage.parse(m.body) {
                case .action(let a)?: [a.instanceID]
                case .actions(let list)?: list.map(\.instanceID)
                default: []
                }
            })
        }
        for message in messages { accept(message, nodes: &nodes) }
        startWaiting(inline: inline)
        return messages.count
    }

    func accept(_ message: SQSMessage) {
        var nodes: [JSON]? = nil
        accept(message, nodes: &nodes)
    }

    /// Handles one received message. `nodes` caches the node list for the
    /// rest of the batch (one list call per receive, not per message).
    func accept(_ message: SQSMessage, nodes: inout [JSON]?) {
        let log = logger.with(("sqs.message_id", .string(message.messageID)), ("sqs.receive_count", JSON(message.receiveCount)))
        let parsed: LifecycleMessage
        do {
            parsed = try LifecycleMessage.parse(message.body)
        } catch {
            log.error("malformed message left on the queue", ("error", .string(error.description)),
                      ("body", .string(String(message.body.prefix(300)))))
            return
        }
        if case .ignoredEvent(let what) = parsed {
            log.info("EC2 event needs nothing; deleted", ("event", .string(what)))
            do { try queue.delete(message) } catch {
                log.warning("cannot delete the message", ("error", .string(error.description)))
            }
            return
        }
        let actions: [LifecycleAction]
        switch parsed {
        case .action(let a): actions = [a]
        case .actions(let list): actions = list
        default:
            log.info("test notification deleted")
            do { try queue.delete(message) } catch {
                log.warning("cannot delete the test notification", ("error", .string(error.description)))
            }
            return
        }
        let shared = actions.count > 1 ? SharedMessage(count: actions.count) : nil
        for action in actions { accept(action, message, shared: shared, log: log, nodes: &nodes) }
    }

    /// The node list of the last receive that needed one: a node found there
    /// needs no new list (under a busy token bucket every list waits its
    /// turn, and a scale-in of 200 receives 20+ batches). A node not found
    /// there is looked up in a fresh list, at most once per batch.
    private let knownNodes = Mutex<[JSON]>([])

    func lookupNode(_ instanceID: String, nodes: inout [JSON]?) throws(NodeLifecycleError) -> JSON? {
        if let known = NodeDrainer.node(for: instanceID, in: knownNodes.withLock { $0 }) { return known }
        if nodes == nil {
            let fresh = try drainer.cluster.listNodes()
            nodes = fresh
            knownNodes.withLock { $0 = fresh }
        }
        return NodeDrainer.node(for: instanceID, in: nodes ?? [])
    }

    /// The ticket held for `instanceID`, whatever its source.
    func held(instance instanceID: String) -> ActionTicket? {
        book.withLock { b in b.tickets.values.first { $0.action.instanceID == instanceID } }
    }

    func accept(_ action: LifecycleAction, _ message: SQSMessage, shared: SharedMessage?, log: Logger, nodes: inout [JSON]?) {
        let alog = log.with(("instance.id", .string(action.instanceID)), ("source", .string(action.source.rawValue)))
        if action.source == .stateChange {
            // The instance is stopping or going while we hold an action for
            // it (terminated from the console or the API: no hook waits).
            if let drain = held(instance: action.instanceID), drain.token != action.lifecycleActionToken, !drain.isDone {
                instanceLost(drain, notice: action, message: message, log: alog, nodes: &nodes)
                return
            }
            if action.ec2State == "stopped" || action.ec2State == "terminated" {
                alog.info("EC2 event needs nothing; deleted", ("state", .string(action.ec2State ?? "")))
                drainer.deleteMessages(ActionTicket(action: action, message: message, now: drainer.clock.now, shared: shared), log: alog)
                return
            }
        }
        // Received again (visibility ran out, or a duplicate message): keep
        // the newest receipt handle and hide it like the others.
        if let known = book.withLock({ $0.tickets[action.lifecycleActionToken] }) {
            known.received(message)
            alog.info("lifecycle action received again; newest receipt handle kept")
            do { try queue.extend(message, seconds: drainer.visibilitySeconds) } catch {
                alog.warning("cannot extend the message's visibility", ("error", .string(error.description)))
            }
            return
        }
        metrics?.received(action)
        let ticket = ActionTicket(action: action, message: message, now: drainer.clock.now, shared: shared)
        if let managedTag {
            do {
                if try !managedTag.isManaged(action.instanceID) {
                    alog.info("instance does not carry the managed tag; message left on the queue for the cluster that owns it",
                              ("managed_tag", .string(managedTag.description)))
                    ticket.markDone()
                    report(.notManaged)
                    return
                }
            } catch {
                alog.warning("cannot read the instance's tags; message left on the queue and retried when it comes back",
                             ("error", .string(error.description)))
                ticket.markDone()
                report(.leftOnQueue(reason: error.description))
                return
            }
        }
        if action.transition == .launching {
            report(drainer.handle(ticket, selfHeartbeat: true))
            return
        }
        // Not our node (another cluster sharing the queue): decide now, so
        // its message is not held hidden while it waits for a slot.
        do {
            if try lookupNode(action.instanceID, nodes: &nodes) == nil {
                report(drainer.unknownNode(ticket, log: alog))
                return
            }
        } catch {
            alog.warning("cannot list nodes; the drain looks the node up again", ("error", .string(error.description)))
        }
        // The action may have waited in the queue: heartbeat it at once.
        guard drainer.keepAlive(ticket, log: alog) else {
            alog.warning("the lifecycle action is no longer active; message deleted")
            drainer.deleteMessages(ticket, log: alog)
            report(.alreadyCompleted(node: nil))
            return
        }
        let position = book.withLock { b -> Int in
            b.tickets[ticket.token] = ticket
            b.waiting.append(ticket.token)
            return b.waiting.count
        }
        updateGauges()
        alog.info("lifecycle action received; heartbeated until it is completed", ("queue.position", JSON(position)))
    }

    /// A state change (stopping, shutting-down, stopped, terminated) for an
    /// instance whose action is held: someone terminated it from the console
    /// or the API while it drained or waited. Told: a Warning Event on the
    /// node, a log line, the metric, the webhook. The notice is deleted; the
    /// held action goes on (its completion is answered or found gone).
    func instanceLost(_ drain: ActionTicket, notice: LifecycleAction, message: SQSMessage, log: Logger, nodes: inout [JSON]?) {
        let state = notice.ec2State ?? "?"
        let running = book.withLock { $0.running.contains(drain.token) }
        metrics?.instanceLost()
        log.error("instance is going while its drain \(running ? "runs" : "waits"); pods not yet evicted go down with it",
                  ("state", .string(state)), ("held_source", .string(drain.action.source.rawValue)))
        if nodes == nil { nodes = try? drainer.cluster.listNodes() }
        if let node = NodeDrainer.node(for: notice.instanceID, in: nodes ?? []), let name = node[path: "metadata", "name"]?.stringValue {
            drainer.event(NodeEvent(node: name, nodeUID: node[path: "metadata", "uid"]?.stringValue, reason: "InstanceLostDuringDrain",
                                    message: "Instance \(notice.instanceID) is \(state) (EC2 state change, no lifecycle hook) while its drain \(running ? "runs" : "waits for a slot"); pods not yet evicted go down with it.",
                                    kind: .warning), log: log)
            drainer.notify(ActionTicket(action: notice, message: message, now: drainer.clock.now), node: name,
                           description: "instance \(state) while its drain \(running ? "runs" : "waits")")
        }
        drainer.deleteMessages(ActionTicket(action: notice, message: message, now: drainer.clock.now), log: log)
    }

    /// Starts drains while slots are free, oldest action first. A spot
    /// interruption (two minutes' notice) starts at once, slot or not.
    func startWaiting(inline: Bool) {
        while let ticket = book.withLock({ b -> ActionTicket? in
            let spot = b.waiting.firstIndex { b.tickets[$0]?.action.source == .spotInterruption }
            // Spot drains do not take one of the `concurrency` slots either.
            let slotsUsed = b.running.count { b.tickets[$0]?.action.source != .spotInterruption }
            guard let index = spot ?? (slotsUsed < concurrency && !b.waiting.isEmpty ? 0 : nil) else { return nil }
            let token = b.waiting.remove(at: index)
            b.running.insert(token)
            return b.tickets[token]
        }) {
            updateGauges()
            let work: @Sendable () -> Void = { [self] in
                let r = drainer.handle(ticket, selfHeartbeat: false)
                book.withLock { b in
                    b.running.remove(ticket.token)
                    b.tickets[ticket.token] = nil
                }
                report(r)
                updateGauges()
                if !inline { startWaiting(inline: false) }
            }
            if inline { work() } else { runOnNewThread(work) }
        }
    }

    /// Heartbeats every held action that is due. An action Auto Scaling no
    /// longer has is dropped (its messages deleted) when still waiting; a
    /// running drain sees it gone and stops. Returns when the next is due.
    @discardableResult
    public func heartbeatDue() -> MonotonicClock.Instant {
        let interval = drainer.settings.heartbeatInterval
        let now = drainer.clock.now
        var next = now + interval
        for ticket in tracked where !ticket.isDone {
            let due = ticket.nextHeartbeat(interval: interval, now: now)
            guard due <= now else { next = min(next, due); continue }
            let log = drainer.log(for: ticket)
            if !drainer.keepAlive(ticket, log: log) {
                let dropped = book.withLock { b -> Bool in
                    guard let i = b.waiting.firstIndex(of: ticket.token) else { return false }
                    b.waiting.remove(at: i)
                    b.tickets[ticket.token] = nil
                    return true
                }
                if dropped {
                    log.warning("the lifecycle action is no longer active while waiting; message deleted")
                    drainer.deleteMessages(ticket, log: log)
                    report(.alreadyCompleted(node: nil))
                    updateGauges()
                }
            }
            next = min(next, drainer.clock.now + interval)
        }
        return next
    }

    /// The heartbeat loop: `heartbeatDue` whenever one is due (checked at
    /// least every second), until `shouldStop`.
    public func runHeartbeats(shouldStop: @Sendable () -> Bool) {
        while !shouldStop() {
            let next = heartbeatDue()
            drainer.clock.sleep(until: min(next, drainer.clock.now + .seconds(1)))
        }
    }

    /// Makes the messages of every held action (waiting or draining) visible
    /// again at once, so another replica resumes them without waiting out the
    /// visibility timeout. Called on SIGTERM; the lifecycle actions stay open.
    @discardableResult
    public func releaseInFlight() -> Int {
        let messages = tracked.flatMap(\.messages)
        for m in messages {
            do {
                try queue.extend(m, seconds: 0)
            } catch {
                logger.warning("cannot release a message", ("sqs.message_id", .string(m.messageID)), ("error", .string(error.description)))
            }
        }
        return messages.count
    }

    /// Heartbeats on a thread of their own, and receives until `shouldStop`
    /// returns true. Receive errors are logged and retried with backoff (up
    /// to 30 s); the process keeps running.
    public func run(shouldStop: @escaping @Sendable () -> Bool) {
        runOnNewThread { [self] in runHeartbeats(shouldStop: shouldStop) }
        var backoff: Duration = .seconds(1)
        while !shouldStop() {
            do {
                try pollOnce()
                backoff = .seconds(1)
            } catch {
                logger.error("cannot receive from the queue; retrying", ("error", .string(error.description)),
                             ("retry_in", .string(DurationText.format(backoff))))
                drainer.clock.sleep(until: drainer.clock.now + backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }
}
