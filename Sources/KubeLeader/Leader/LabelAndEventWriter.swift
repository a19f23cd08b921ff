import KLCore
import KLKube
import KLSystem
import Synchronization

/// The leader label (`--leader-label`) and Events (`--events`): API writes
/// made when this replica gains or gives up leadership, loses it, or hands
/// it over (`LeaderStatus.Change`), on a thread of their own so the election
/// never waits for them. Every Event goes through `record` and `event`.
///
/// Best effort throughout. Each request is bounded by `timeout`; a failure is
/// logged and dropped, never retried in a loop and never a reason to stop
/// leading. A label left behind (this replica died before removing it) is
/// removed by the next leader, which strips it from every other Pod.
/// Missing RBAC: a warning once for the label, a debug line once for Events.
public final class LabelAndEventWriter: @unchecked Sendable {
    let client: KubeClient
    let logger: Logger
    let label: LeaderLabel?
    let events: Bool
    let podName: String
    let timeout: Duration
    private let queue = Mutex<(jobs: [(LeaderStatus.Change, LeaderStatus)], busy: Bool)>(([], false))
    private let wake: WakePipe
    // Touched only by the worker thread.
    private var warnedLabelRBAC = false
    private var warnedEventsRBAC = false

    /// Nil when neither surface is on (then nothing runs at all).
    public init?(client: KubeClient, logger: Logger, label: LeaderLabel?, events: Bool, podName: String,
                 timeout: Duration = .seconds(5)) {
        guard label != nil || events else { return nil }
        guard let wake = try? WakePipe() else { return nil }
        self.wake = wake
        self.client = client
        self.logger = logger
        self.label = label
        self.events = events
        self.podName = podName
        self.timeout = timeout
        _ = startDetachedThread { [self] in work() }
    }

    /// Queues the writes for a change; returns at once.
    public func enqueue(_ change: LeaderStatus.Change, _ status: LeaderStatus) {
        queue.withLock { $0.jobs.append((change, status)) }
        wake.wake()
    }

    /// Waits until everything queued is done, at most `limit` (kube-leader
    /// calls this before it exits, so the label is removed on release).
    public func finish(within limit: Duration) {
        let deadline = MonotonicClock.now + limit
        while MonotonicClock.now < deadline {
            if queue.withLock({ $0.jobs.isEmpty && !$0.busy }) { return }
            blockingSleep(.milliseconds(10))
        }
    }

    private func work() {
        while true {
            let job = queue.withLock { q -> (LeaderStatus.Change, LeaderStatus)? in
                guard !q.jobs.isEmpty else { return nil }
                q.busy = true
                return q.jobs.removeFirst()
            }
            guard let (change, status) = job else {
                wake.wait(until: MonotonicClock.now + .seconds(1))
                continue
            }
            if let label, change == .acquired || change == .stopped { apply(label, change, status) }
            if events { record(change, status) }
            queue.withLock { $0.busy = false }
        }
    }

    // MARK: Label

    func apply(_ label: LeaderLabel, _ change: LeaderStatus.Change, _ status: LeaderStatus) {
        let ns = status.namespace
        if attempt("set the leader label on this Pod", { () throws(KubeError) in
            _ = try client.patch(.pods, namespace: ns, name: podName, patch: Self.labelPatch(label, on: change == .acquired), timeout: timeout)
        }) {
            logger.info(change == .acquired ? "labelled this Pod as the leader" : "removed the leader label from this Pod",
                        ("pod", .string(podName)), ("label", .string(label.selector)))
        }
        guard change == .acquired else { return }
        // Leaders that died without removing their label: take it off.
        _ = attempt("remove the leader label from other Pods") { () throws(KubeError) in
            let pods = try client.list(.pods, namespace: ns, labelSelector: label.selector, timeout: timeout)
            for pod in pods["items"]?.arrayValue ?? [] {
                guard let name = pod[path: "metadata", "name"]?.stringValue, name != podName else { continue }
                _ = try client.patch(.pods, namespace: ns, name: name, patch: Self.labelPatch(label, on: false), timeout: timeout)
                logger.info("removed the leader label from a former leader's Pod", ("pod", .string(name)), ("label", .string(label.selector)))
            }
        }
    }

    /// Runs one best-effort label request; logs a failure (RBAC once).
    private func attempt(_ what: String, _ body: () throws(KubeError) -> Void) -> Bool {
        do {
            try body()
            return true
        } catch {
            logFailure(error, .warning, warned: &warnedLabelRBAC,
                       rbac: "cannot \(what): grant patch and list on pods in this namespace (see deploy/); leading goes on without the label",
                       other: "cannot \(what); the next leader cleans up")
            return false
        }
    }

    /// Logs a failed best-effort request at `level`: missing rights
    /// (forbidden, unauthorized) once, as `rbac`; any other error each time, as `other`.
    private func logFailure(_ error: KubeError, _ level: LogLevel, warned: inout Bool, rbac: String, other: String) {
        let fields: [(String, JSON)] = [("error", .string(error.description))]
        if error.code == .forbidden || error.code == .unauthorized {
            if !warned {
                warned = true
                logger.log(level, rbac, fields)
            }
        } else {
            logger.log(level, other, fields)
        }
    }

    /// JSON merge patch that sets (or with `on: false` removes) the label.
    static func labelPatch(_ label: LeaderLabel, on: Bool) -> JSON {
        ["metadata": ["labels": .object(JSONObject([(label.key, on ? .string(label.value) : .null)]))]]
    }

    // MARK: Events

    func record(_ change: LeaderStatus.Change, _ status: LeaderStatus) {
        let now = wallNow()
        let event = Self.event(change, status, now: now)
        do {
            _ = try client.create(.events, namespace: status.namespace, body: event, timeout: timeout)
            logger.debug("recorded an event", ("message", event["message"] ?? .null))
        } catch {
            logFailure(error, .debug, warned: &warnedEventsRBAC,
                       rbac: "cannot create events (grant create on events to see leader changes in kubectl get events)",
                       other: "cannot create an event")
        }
    }

    /// Reason, type and message of the Event for `change`: for acquiring and
    /// stopping, what client-go's lock `RecordEvent` writes (reason
    /// LeaderElection, type Normal, "ID became leader" / "ID stopped
    /// leading"); a loss (LeadershipLost, Warning) and a hand-over
    /// (HandedOver, Normal) say why and to whom.
    static func describe(_ change: LeaderStatus.Change, identity: String) -> (reason: String, type: String, message: String) {
        switch change {
        case .acquired: ("LeaderElection", "Normal", "\(identity) became leader")
        case .stopped: ("LeaderElection", "Normal", "\(identity) stopped leading")
        case .lost(let reason): ("LeadershipLost", "Warning", "\(identity) lost leadership" + (reason.map { ": \($0)" } ?? ""))
        case .handedOver(let to): ("HandedOver", "Normal", "\(identity) handed over to the preferred holder \(to)")
        }
    }

    /// The core/v1 Event on the lock object, as client-go's lock
    /// `RecordEvent` writes it (`describe` gives reason, type and message).
    static func event(_ change: LeaderStatus.Change, _ status: LeaderStatus, now: WallTime) -> JSON {
        let what = describe(change, identity: status.identity)
        let time = JSON.string(RFC3339.format(now))
        var involved: JSON = [
            "apiVersion": .string(status.kind == .lease ? "coordination.k8s.io/v1" : "v1"),
            "kind": .string(status.kind == .lease ? "Lease" : "ConfigMap"),
            "name": .string(status.lockName), "namespace": .string(status.namespace),
        ]
        if let uid = status.lockUID { involved["uid"] = .string(uid) }
        let nanos = Int64(now.seconds) &* 1_000_000_000 &+ Int64(now.nanoseconds)
        return [
            "apiVersion": "v1", "kind": "Event",
            "metadata": ["name": .string("\(status.lockName).\(String(UInt64(bitPattern: nanos), radix: 16))"),
                         "namespace": .string(status.namespace)],
            "involvedObject": involved,
            "reason": .string(what.reason),
            "message": .string(what.message),
            "type": .string(what.type),
            "source": ["component": "kube-leader"],
            "firstTimestamp": time, "lastTimestamp": time, "count": 1,
            "reportingComponent": "kube-leader", "reportingInstance": .string(status.identity),
        ]
    }
}
