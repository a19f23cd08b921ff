/// What this replica knows about its election, kept for the optional
/// surfaces: the child's environment, `/leader`, `/metrics`, `/healthz`, the
/// leader label and Events. Pure: the lock store wrapper feeds it what the
/// election read and wrote; readers take copies.
///
/// It never decides anything about leadership: the election does. `leading`
/// is what our writes and reads showed last, and `lost()` is reported by the
/// supervisor when the election gives up.
public struct LeaderStatus: Sendable {
    public var identity: String
    public var namespace: String
    public var lockName: String
    public var kind: LockKind

    /// We wrote the lock holding our identity and have not seen it change hands since.
    public private(set) var leading = false
    /// The holder in the last record we read or wrote; "" when free or unknown.
    public private(set) var holder = ""
    /// `acquireTime` of that record as written (RFC 3339), nil if absent.
    public private(set) var since: String?
    /// `leaderTransitions` of that record.
    public private(set) var transitions = 0
    /// The resourceVersion our acquiring write returned, while we lead.
    public private(set) var fencingToken: String?
    /// When we sent the last acquire or renew that succeeded (monotonic).
    public private(set) var lastRenew: MonotonicInstant?
    /// `metadata.uid` of the lock object last seen (Events refer to it).
    public private(set) var lockUID: String?
    /// Whether any record was seen yet (the first one is no change of holder).
    private var seenAny = false

    // Counters for /metrics (since this process started).
    /// Changes of holder seen (to, from or between others).
    public private(set) var holderChanges = 0
    /// GETs while leading: the optimistic renew failed and the lock was re-read
    /// (client-go's "slow path").
    public private(set) var slowPaths = 0
    public private(set) var renewFailures = 0
    public private(set) var renewDurations = Histogram()
    public private(set) var childExitCode: Int32?
    /// A standby's watch failed and had to be re-established.
    public private(set) var watchRestarts = 0
    /// Leaderships lost (the child was stopped; with `--on-loss standby`
    /// kube-leader stood by again), and why the last one was.
    public private(set) var losses = 0
    public private(set) var lastLossReason: String?
    /// Hand-overs this process made (hand-over when asked: it stopped its child
    /// and released the lock for the preferred holder the lock named), and
    /// to whom the last one was.
    public private(set) var handOvers = 0
    public private(set) var lastHandOverTo: String?

    public init(identity: String, namespace: String, lockName: String, kind: LockKind) {
        self.identity = identity
        self.namespace = namespace
        self.lockName = lockName
        self.kind = kind
    }

    /// What changed for the surfaces that act on leadership (label, Events).
    /// `acquired` and `stopped` follow the lock's records (the label and
    /// client-go's "became leader" / "stopped leading" Events); `lost` and
    /// `handedOver` are what the supervisor reports on top (an Event each).
    public enum Change: Sendable, Equatable {
        case acquired
        case stopped
        /// The election gave leadership up (the child is stopped).
        case lost(reason: String?)
        /// The lock was released for the preferred holder `to`.
        case handedOver(to: String)
    }

    // MARK: Inputs

    /// A record read (LIST or GET) or from the watch; nil when the lock is absent.
    public mutating func observed(_ snapshot: LockSnapshot?, duringLeadership: Bool = false) -> Change? {
        if duringLeadership && leading { slowPaths += 1 }
        let record = snapshot?.record
        note(record)
        if let uid = snapshot?.object[path: "metadata", "uid"]?.stringValue { lockUID = uid }
        if leading, record?.holderIdentity != identity {
            return stop()
        }
        return nil
    }

    /// Our create or update succeeded. `sentAt`: when the request was sent.
    public mutating func wrote(_ snapshot: LockSnapshot, sentAt: MonotonicInstant, now: MonotonicInstant) -> Change? {
        let record = snapshot.record
        note(record)
        if let uid = snapshot.object[path: "metadata", "uid"]?.stringValue { lockUID = uid }
        if record?.holderIdentity == identity {
            lastRenew = sentAt
            if !leading {
                leading = true
                fencingToken = snapshot.resourceVersion
                return .acquired
            }
            renewDurations.observe(seconds: (now - sentAt).seconds)
            return nil
        }
        return leading ? stop() : nil
    }

    /// A create or update failed (timeout, conflict, 5xx).
    public mutating func writeFailed() {
        if leading { renewFailures += 1 }
    }

    /// The election gave leadership up (renew deadline passed, lost race):
    /// `.stopped` first if our records still said we lead, then `.lost`.
    public mutating func lost(reason: String? = nil) -> [Change] {
        losses += 1
        if let reason { lastLossReason = reason }
        return (leading ? [stop()] : []) + [.lost(reason: reason)]
    }

    /// The election released the lock for the preferred holder `to` (its
    /// release record usually told us already: then only `.handedOver`).
    public mutating func handedOver(to: String) -> [Change] {
        handOvers += 1
        lastHandOverTo = to
        return (leading ? [stop()] : []) + [.handedOver(to: to)]
    }

    public mutating func childExited(code: Int32) { childExitCode = code }

    public mutating func watchRestarted() { watchRestarts += 1 }

    private mutating func note(_ record: LeaderElectionRecord?) {
        let newHolder = record?.holderIdentity ?? ""
        if seenAny, newHolder != holder { holderChanges += 1 }
        seenAny = true
        holder = newHolder
        since = record.flatMap { $0.acquireTime }.map { RFC3339.format($0) }
        transitions = record?.leaderTransitions ?? transitions
    }

    private mutating func stop() -> Change {
        leading = false
        fencingToken = nil
        return .stopped
    }

    // MARK: Outputs

    /// client-go's HealthzAdaptor for our timing: unhealthy only while leading
    /// with no successful renew for longer than `renewDeadline` (a wedged
    /// leader that a liveness probe should restart).
    public func isHealthy(now: MonotonicInstant, renewDeadline: Duration) -> Bool {
        guard leading else { return true }
        guard let lastRenew else { return false }
        return now - lastRenew <= renewDeadline
    }

    /// The child's environment while it leads (docs/surfaces.md, "Child
    /// environment and the fencing token").
    public var childEnvironment: [String: String] {
        var env = [
            "KUBE_LEADER_IDENTITY": identity,
            "KUBE_LEADER_LOCK": "\(namespace)/\(lockName)",
            "KUBE_LEADER_LOCK_KIND": kind.rawValue,
            "KUBE_LEADER_TRANSITIONS": String(transitions),
        ]
        if let fencingToken { env["KUBE_LEADER_FENCING_TOKEN"] = fencingToken }
        return env
    }

    /// The body of `GET /leader`.
    public var leaderJSON: JSON {
        [
            "identity": .string(identity),
            "leading": .bool(leading),
            "holder": .string(holder),
            "lock": .string("\(namespace)/\(lockName)"),
            "kind": .string(kind.rawValue),
            "since": since.map { .string($0) } ?? .null,
            "transitions": JSON(transitions),
            "fencing_token": fencingToken.map { .string($0) } ?? .null,
            "losses": JSON(losses),
            "last_loss_reason": lastLossReason.map { .string($0) } ?? .null,
            "hand_overs": JSON(handOvers),
            "last_hand_over_to": lastHandOverTo.map { .string($0) } ?? .null,
        ]
    }

    /// The body of `GET /metrics`: Prometheus text format 0.0.4. The first two
    /// families carry client-go's names and help so existing dashboards work.
    public var metricsText: String {
        let l: [PrometheusText.Label] = [("name", lockName)]
        var out = PrometheusText()
        out.family("leader_election_master_status", .gauge,
                   help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.")
        out.sample("leader_election_master_status", l, leading ? 1 : 0)
        out.family("leader_election_slowpath_total", .counter,
                   help: "Total number of slow path exercised in renewing leader leases. 'name' is the string used to identify the lease. Please make sure to group by name.")
        out.sample("leader_election_slowpath_total", l, slowPaths)
        out.family("kube_leader_transitions_total", .counter, help: "Changes of the lock's holder seen by this replica.")
        out.sample("kube_leader_transitions_total", l, holderChanges)
        out.family("kube_leader_renew_duration_seconds", .histogram, help: "Duration of successful renew requests.")
        renewDurations.write("kube_leader_renew_duration_seconds", l, to: &out)
        out.family("kube_leader_renew_failures_total", .counter, help: "Renew requests that failed while leading.")
        out.sample("kube_leader_renew_failures_total", l, renewFailures)
        out.family("kube_leader_child_exit_code", .gauge, help: "Exit code of the child (128+N for signal N); absent until it exits.")
        if let childExitCode { out.sample("kube_leader_child_exit_code", l, Int(childExitCode)) }
        out.family("kube_leader_standby_watch_restarts_total", .counter,
                   help: "Times a standby's watch of the lock failed and was re-established.")
        out.sample("kube_leader_standby_watch_restarts_total", l, watchRestarts)
        out.family("kube_leader_leadership_losses_total", .counter,
                   help: "Leaderships this process lost (its child was stopped); with --on-loss standby it stood by again after each.")
        out.sample("kube_leader_leadership_losses_total", l, losses)
        out.family("kube_leader_hand_overs_total", .counter,
                   help: "Hand-overs this process made: it stopped its child and released the lock for the preferred holder the lock named (Lease spec.preferredHolder, or the kube-leader.io/preferred-holder annotation).")
        out.sample("kube_leader_hand_overs_total", l, handOvers)
        return out.text
    }
}

/// A Prometheus histogram with fixed buckets (seconds).
public struct Histogram: Sendable {
    /// Upper bounds, ascending; `+Inf` is implied.
    public static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    static let boundTexts = ["0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10"]
    /// Per bucket (not cumulative), plus one for `+Inf`.
    public private(set) var counts = [Int](repeating: 0, count: bounds.count + 1)
    public private(set) var sum = 0.0
    public private(set) var count = 0

    public init() {}

    public mutating func observe(seconds: Double) {
        let v = seconds.isFinite ? max(0, seconds) : 0
        counts[Self.bounds.firstIndex { v <= $0 } ?? Self.bounds.count] += 1
        sum += v
        count += 1
    }

    /// Its samples: cumulative buckets, `_sum`, `_count`.
    func write(_ name: String, _ labels: [PrometheusText.Label], to out: inout PrometheusText) {
        var cumulative = 0
        let buckets = Self.boundTexts.enumerated().map { i, text in
            cumulative += counts[i]
            return (le: text, cumulative: cumulative)
        }
        out.histogram(name, labels, buckets: buckets, sum: sum, count: count)
    }
}
