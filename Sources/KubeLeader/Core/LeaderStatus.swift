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

    public init(identity: String, namespace: String, lockName: String, kind: LockKind) {
        self.identity = identity
        self.namespace = namespace
        self.lockName = lockName
        self.kind = kind
    }

    /// What changed for the surfaces that act on leadership (label, Events).
    public enum Change: Sendable, Equatable {
        case acquired
        case stopped
    }

    // MARK: Inputs

    /// A record read by GET or from the watch; nil when the lock is absent.
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

    /// The election gave leadership up (renew deadline passed, lost race).
    public mutating func lost(reason: String? = nil) -> Change? {
        losses += 1
        if let reason { lastLossReason = reason }
        return leading ? stop() : nil
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

    /// The child's environment while it leads (DESIGN.md, "Child environment").
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
        ]
    }

    /// The body of `GET /metrics`: Prometheus text format 0.0.4. The first two
    /// families carry client-go's names and help so existing dashboards work.
    public var metricsText: String {
        let l = "{name=\(Self.labelValue(lockName))}"
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (suffix, value) in samples { out += "\(name)\(suffix) \(value)\n" }
        }
        family("leader_election_master_status", "gauge",
               "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease. Please make sure to group by name.",
               [(l, leading ? "1" : "0")])
        family("leader_election_slowpath_total", "counter",
               "Total number of slow path exercised in renewing leader leases. 'name' is the string used to identify the lease. Please make sure to group by name.",
               [(l, String(slowPaths))])
        family("kube_leader_transitions_total", "counter", "Changes of the lock's holder seen by this replica.",
               [(l, String(holderChanges))])
        family("kube_leader_renew_duration_seconds", "histogram", "Duration of successful renew requests.",
               renewDurations.samples(labels: "name=\(Self.labelValue(lockName))"))
        family("kube_leader_renew_failures_total", "counter", "Renew requests that failed while leading.",
               [(l, String(renewFailures))])
        family("kube_leader_child_exit_code", "gauge", "Exit code of the child (128+N for signal N); absent until it exits.",
               childExitCode.map { [(l, String($0))] } ?? [])
        family("kube_leader_standby_watch_restarts_total", "counter", "Times a standby's watch of the lock failed and was re-established.",
               [(l, String(watchRestarts))])
        family("kube_leader_leadership_losses_total", "counter",
               "Leaderships this process lost (its child was stopped); with --on-loss standby it stood by again after each.",
               [(l, String(losses))])
        return out
    }

    /// A quoted label value with the escapes the text format requires.
    static func labelValue(_ s: String) -> String {
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out + "\""
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

    /// Suffix and value of each sample: cumulative buckets, `_sum`, `_count`.
    func samples(labels: String) -> [(String, String)] {
        var out: [(String, String)] = []
        var cumulative = 0
        for (i, text) in (Self.boundTexts + ["+Inf"]).enumerated() {
            cumulative += counts[i]
            out.append(("_bucket{\(labels),le=\"\(text)\"}", String(cumulative)))
        }
        out.append(("_sum{\(labels)}", String(sum)))
        out.append(("_count{\(labels)}", String(count)))
        return out
    }
}

/// `--leader-label KEY=VALUE`: a Kubernetes label the leader's Pod carries.
public struct LeaderLabel: Sendable, Equatable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    /// Parses and checks `KEY=VALUE` as the API server would (a qualified name
    /// with an optional DNS-subdomain prefix; a value of at most 63 characters).
    /// Returns why it is not valid, or the label.
    public static func parse(_ text: String) -> Result<LeaderLabel, UsageError> {
        guard let eq = text.firstIndex(of: "=") else {
            return .failure(UsageError("'\(text)' is not KEY=VALUE (for example role=leader)"))
        }
        let key = String(text[..<eq]), value = String(text[text.index(after: eq)...])
        var name = Substring(key)
        if let slash = key.firstIndex(of: "/") {
            let prefix = String(key[..<slash])
            guard LeaderConfig.isDNSSubdomain(prefix) else {
                return .failure(UsageError("label key prefix '\(prefix)' must be a DNS subdomain (lower-case letters, digits, '-', '.')"))
            }
            name = key[key.index(after: slash)...]
        }
        guard isLabelName(name, allowEmpty: false) else {
            return .failure(UsageError("label key '\(key)' is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
        }
        guard isLabelName(Substring(value), allowEmpty: true) else {
            return .failure(UsageError("label value '\(value)' is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
        }
        return .success(LeaderLabel(key: key, value: value))
    }

    static func isLabelName(_ s: Substring, allowEmpty: Bool) -> Bool {
        if s.isEmpty { return allowEmpty }
        let u = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) }
        return u.count <= 63 && alnum(u[0]) && alnum(u[u.count - 1])
            && u.allSatisfy { alnum($0) || $0 == 45 || $0 == 95 || $0 == 46 }
    }

    /// `KEY=VALUE`, for label selectors and logs.
    public var selector: String { "\(key)=\(value)" }
}

/// `--status-addr HOST:PORT`: a numeric IPv4 or bracketed IPv6 address (empty
/// host: every interface) and a port (0: the kernel picks one).
public struct StatusAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = String(host.dropFirst().dropLast())
            guard host.utf8.allSatisfy({ $0 == 58 || $0 == 46 || (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }) else { return nil }
        } else if host.isEmpty {
            host = "0.0.0.0"
        } else {
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && UInt8($0) != nil }) else { return nil }
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
