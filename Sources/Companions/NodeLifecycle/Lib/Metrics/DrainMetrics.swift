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
        var out = PrometheusText()
        func counter(_ name: String, _ help: String, _ value: Int) {
            out.family(name, .counter, help: help)
            out.sample(name, value)
        }
        func labelled(_ name: String, _ help: String, _ label: String, _ values: [String: Int], always: [String]) {
            out.family(name, .counter, help: help)
            for key in Set(values.keys).union(always).sorted() { out.sample(name, [(label, key)], values[key] ?? 0) }
        }
        labelled("node_lifecycle_actions_received_total", "Lifecycle actions and EC2 events received from the queue (redeliveries not counted).",
                 "transition", s.received, always: ["launching", "terminating"])
        labelled("node_lifecycle_actions_completed_total", "Lifecycle actions finished, by result.",
                 "result", s.completed, always: ["drained", "timed_out"])
        out.family("node_lifecycle_drains_in_progress", .gauge, help: "Drains running now.")
        out.sample("node_lifecycle_drains_in_progress", s.drainsInProgress)
        out.family("node_lifecycle_actions_waiting", .gauge, help: "Lifecycle actions received and heartbeated, waiting for a drain slot.")
        out.sample("node_lifecycle_actions_waiting", s.actionsWaiting)
        counter("node_lifecycle_pods_evicted_total", "Evictions accepted by the API server.", s.podsEvicted)
        counter("node_lifecycle_evictions_blocked_total", "Evictions refused by a PodDisruptionBudget (HTTP 429), retried.", s.evictionsBlocked)
        counter("node_lifecycle_kube_requests_total", "Kubernetes API requests sent (after the --kube-api-qps token bucket).", s.kubeRequests)
        counter("node_lifecycle_kube_requests_throttled_total", "Kubernetes API requests that waited for the token bucket.", s.kubeThrottled)
        labelled("node_lifecycle_webhooks_total", "Webhook posts, by outcome (sent, failed).", "outcome", s.webhooks, always: ["failed", "sent"])
        counter("node_lifecycle_evictions_stuck_total",
                "Pods whose eviction a PodDisruptionBudget refused for longer than the warning threshold (a Warning Event names the budget).",
                s.evictionsStuck)
        counter("node_lifecycle_instances_lost_during_drain_total",
                "Instances stopped or terminated (EC2 state change) while their drain was running.", s.instancesLost)
        labelled("node_lifecycle_heartbeats_total", "RecordLifecycleActionHeartbeat calls, by outcome.", "outcome", s.heartbeats, always: ["failed", "ok"])
        out.family("node_lifecycle_drain_duration_seconds", .histogram, help: "Time from drain start to completing the lifecycle action.")
        out.histogram("node_lifecycle_drain_duration_seconds",
                      buckets: Self.durationBuckets.enumerated().map { (le: Self.formatBound($1), cumulative: s.bucketCounts[$0]) },
                      sum: s.durationSum, count: s.durationCount)
        return out.text
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
