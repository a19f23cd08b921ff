import KLCore
import KLSystem
import Synchronization

/// A token bucket (client-go's `flowcontrol` limiter): `qps` tokens a
/// second, at most `burst` saved up. Pure arithmetic on the instants it is
/// given, so tests drive it with a virtual clock.
public struct TokenBucket: Sendable, Equatable {
    public let qps: Double
    public let burst: Int
    private var tokens: Double
    private var last: MonotonicClock.Instant?

    public init(qps: Double, burst: Int) {
        self.qps = max(0.001, qps)
        self.burst = max(1, burst)
        tokens = Double(self.burst)
    }

    /// Takes one token at `now`; returns how long the caller must wait
    /// before sending (zero when a token was there). Tokens may go negative:
    /// each waiting caller has reserved its own slot in the future.
    public mutating func reserve(now: MonotonicClock.Instant) -> Duration {
        if let last, now > last {
            let (s, atto) = (now - last).components
            tokens = min(Double(burst), tokens + (Double(s) + Double(atto) / 1e18) * qps)
        }
        if last == nil || now > last! { last = now }
        tokens -= 1
        if tokens >= 0 { return .zero }
        return .nanoseconds(Int64((-tokens / qps * 1e9).rounded(.up)))
    }
}

/// Every Kubernetes request of the drain through one token bucket
/// (`--kube-api-qps`, `--kube-api-burst`), counted in the metrics.
public final class RateLimitedCluster: ClusterAPI {
    public let inner: any ClusterAPI
    let bucket: Mutex<TokenBucket>
    let clock: any BlockingClock<MonotonicInstant>
    let metrics: DrainMetrics?

    public init(_ inner: any ClusterAPI, qps: Double, burst: Int, clock: any BlockingClock<MonotonicInstant>, metrics: DrainMetrics? = nil) {
        self.inner = inner
        bucket = Mutex(TokenBucket(qps: qps, burst: burst))
        self.clock = clock
        self.metrics = metrics
    }

    func admit() {
        let now = clock.now
        let wait = bucket.withLock { $0.reserve(now: now) }
        if wait > .zero {
            metrics?.kubeRequestThrottled()
            clock.sleep(until: now + wait)
        }
        metrics?.kubeRequest()
    }

    public func listNodes() throws(NodeLifecycleError) -> [JSON] { admit(); return try inner.listNodes() }
    public func getNode(_ name: String) throws(NodeLifecycleError) -> JSON? { admit(); return try inner.getNode(name) }
    public func updateNode(_ node: JSON) throws(NodeLifecycleError) -> Bool { admit(); return try inner.updateNode(node) }
    public func podsOnNode(_ name: String, labelSelector: String?) throws(NodeLifecycleError) -> [JSON] {
        admit(); return try inner.podsOnNode(name, labelSelector: labelSelector)
    }
    public func evict(namespace: String, name: String, gracePeriodSeconds: Int?) -> EvictionResult {
        admit(); return inner.evict(namespace: namespace, name: name, gracePeriodSeconds: gracePeriodSeconds)
    }
    public func recordEvent(_ event: NodeEvent) throws(NodeLifecycleError) { admit(); try inner.recordEvent(event) }
}
