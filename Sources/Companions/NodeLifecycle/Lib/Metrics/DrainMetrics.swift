import KLCore
import Synchronization

/// The drain's Prometheus metrics (`--metrics-addr`, text format 0.0.4).
/// Counters only go up; the gauges are set from the service's own book.
public final class DrainMetrics: Sendable {
    /// Upper bounds of the drain duration histogram, in seconds.
    public static let durationBuckets: [Double] = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600]

    struct State {
        var received: [String: Int] = [:]     // transition
        var completed: [String: Int] = [:]    // result
        var drainsInProgress = 0
        var actionsWaiting = 0
        var podsEvicted = 0
        var evictionsBlocked = 0
        var heartbeats: [String: Int] = [:]   // outcome
        var bucketCounts = [Int](repeating: 0, count: DrainMetrics.durationBuckets.count)
        var durationSum = 0.0
        var durationCount = 0
        var kubeRequests = 0
        var kubeThrottled = 0
        var webhooks: [String: Int] = [:]     // outcome
        var evictionsStuck = 0
        var instancesLost = 0
    }
    private let state = Mutex(State())

    public init() {}

    /// Counted by `transition`: `terminating`, `launching`, or the EC2
    /// event (`spot_interruption`, `rebalance_recommendation`, `state_change`).
    public func received(_ action: LifecycleAction) {
        let name = action.isLifecycleHook ? (action.transition == .terminating ? "terminating" : "launching") : action.source.rawValue
        state.withLock { $0.received[name, default: 0] += 1 }
    }
    public func completed(_ report: DrainReport) { state.withLock { $0.completed[report.metricResult, default: 0] += 1 } }
    public func setInProgress(running: Int, waiting: Int) {
        state.withLock { $0.drainsInProgress = running; $0.actionsWaiting = waiting }
    }
    public func podEvicted() { state.withLock { $0.podsEvicted += 1 } }
    public func evictionBlocked() { state.withLock { $0.evictionsBlocked += 1 } }
    public func kubeRequest() { state.withLock { $0.kubeRequests += 1 } }
    public func kubeRequestThrottled() { state.withLock { $0.kubeThrottled += 1 } }
    public func webhook(ok: Bool) { state.withLock { $0.webhooks[ok ? "sent" : "failed", default: 0] += 1 } }
    /// A pod whose eviction a PodDisruptionBudget kept refusing past the warning threshold.
    public func evictionStuck() { state.withLock { $0.evictionsStuck += 1 } }
    /// An instance that stopped or terminated while its drain ran.
    public func instanceLost() { state.withLock { $0.instancesLost += 1 } }
    public func heartbeat(ok: Bool) { state.withLock { $0.heartbeats[ok ? "ok" : "failed", default: 0] += 1 } }
    public func drainDuration(_ d: Duration) {
        let (s, atto) = d.components
        let seconds = Double(s) + Double(atto) / 1e18
        state.withLock {
            for (i, bound) in Self.durationBuckets.enumerated() where seconds <= bound { $0.bucketCounts[i] += 1 }
            $0.durationSum += seconds
            $0.durationCount += 1
        }
    }

    /// The exposition text (`text/plain; version=0.0.4`).
    public func render() -> String {
        let s = state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        func labelled(_ name: String, _ label: String, _ values: [String: Int], always: [String]) {
            for key in Set(values.keys).union(always).sorted() { out += "\(name){\(label)=\"\(key)\"} \(values[key] ?? 0)\n" }
        }
        family("node_lifecycle_actions_received_total", "counter", "Lifecycle actions and EC2 events received from the queue (redeliveries not counted).")
        labelled("node_lifecycle_actions_received_total", "transition", s.received, always: ["launching", "terminating"])
        family("node_lifecycle_actions_completed_total", "counter", "Lifecycle actions finished, by result.")
        labelled("node_lifecycle_actions_completed_total", "result", s.completed, always: ["drained", "timed_out"])
        family("node_lifecycle_drains_in_progress", "gauge", "Drains running now.")
        out += "node_lifecycle_drains_in_progress \(s.drainsInProgress)\n"
        family("node_lifecycle_actions_waiting", "gauge", "Lifecycle actions received and heartbeated, waiting for a drain slot.")
        out += "node_lifecycle_actions_waiting \(s.actionsWaiting)\n"
        family("node_lifecycle_pods_evicted_total", "counter", "Evictions accepted by the API server.")
        out += "node_lifecycle_pods_evicted_total \(s.podsEvicted)\n"
        family("node_lifecycle_evictions_blocked_total", "counter", "Evictions refused by a PodDisruptionBudget (HTTP 429), retried.")
        out += "node_lifecycle_evictions_blocked_total \(s.evictionsBlocked)\n"
        family("node_lifecycle_kube_requests_total", "counter", "Kubernetes API requests sent (after the --kube-api-qps token bucket).")
        out += "node_lifecycle_kube_requests_total \(s.kubeRequests)\n"
        family("node_lifecycle_kube_requests_throttled_total", "counter", "Kubernetes API requests that waited for the token bucket.")
        out += "node_lifecycle_kube_requests_throttled_total \(s.kubeThrottled)\n"
        family("node_lifecycle_webhooks_total", "counter", "Webhook posts, by outcome (sent, failed).")
        labelled("node_lifecycle_webhooks_total", "outcome", s.webhooks, always: ["failed", "sent"])
        family("node_lifecycle_evictions_stuck_total", "counter", "Pods whose eviction a PodDisruptionBudget refused for longer than the warning threshold (a Warning Event names the budget).")
        out += "node_lifecycle_evictions_stuck_total \(s.evictionsStuck)\n"
        family("node_lifecycle_instances_lost_during_drain_total", "counter", "Instances stopped or terminated (EC2 state change) while their drain was running.")
        out += "node_lifecycle_instances_lost_during_drain_total \(s.instancesLost)\n"
        family("node_lifecycle_heartbeats_total", "counter", "RecordLifecycleActionHeartbeat calls, by outcome.")
        labelled("node_lifecycle_heartbeats_total", "outcome", s.heartbeats, always: ["failed", "ok"])
        family("node_lifecycle_drain_duration_seconds", "histogram", "Time from drain start to completing the lifecycle action.")
        for (i, bound) in Self.durationBuckets.enumerated() {
            out += "node_lifecycle_drain_duration_seconds_bucket{le=\"\(Self.formatBound(bound))\"} \(s.bucketCounts[i])\n"
        }
        out += "node_lifecycle_drain_duration_seconds_bucket{le=\"+Inf\"} \(s.durationCount)\n"
        out += "node_lifecycle_drain_duration_seconds_sum \(s.durationSum)\n"
        out += "node_lifecycle_drain_duration_seconds_count \(s.durationCount)\n"
        return out
    }

    static func formatBound(_ b: Double) -> String {
        b == b.rounded() ? String(Int(b)) + ".0" : String(b)
    }
}

extension DrainReport {
    /// The `result` label of `node_lifecycle_actions_completed_total`.
    public var metricResult: String {
        switch self {
        case .unknownNode: "unknown_node_continue"
        case .unknownNodeLeft: "unknown_node_left"
        case .drained: "drained"
        case .timedOut: "timed_out"
        case .alreadyCompleted: "already_completed"
        case .launchCompleted: "launch_continue"
        case .leftOnQueue: "left_on_queue"
        case .cordoned: "cordoned"
        case .notManaged: "not_managed_left"
        }
    }
}
