/// kube-leader's configuration: flags, then env vars, then defaults
/// (README.md, "Options"). Built and validated once, by a pure
/// function, so every mistake is reported before anything starts.
public struct LeaderConfig: Sendable {
    /// Name of the ConfigMap or Lease that is the lock (first positional argument).
    public var lockName: String
    /// The command to run as the child (the rest of the arguments).
    public var command: [String]
    /// Namespace of the lock. Default: `POD_NAMESPACE`, else the service
    /// account's namespace file.
    public var namespace: String
    /// Our name in the lock record. Default: `POD_NAME`, else the host name.
    public var identity: String
    /// Default `configmap`.
    public var lockKind: LockKind
    /// How long a record that stopped changing stays valid. Default 15s.
    public var leaseDuration: Duration
    /// A leader that has not renewed for this long stops its child. Default 10s.
    public var renewDeadline: Duration
    /// Time between renews (leader) and between retries. Default 2s.
    public var retryPeriod: Duration
    /// Time between SIGTERM and SIGKILL of a child whose leader lost the lock.
    /// Default `leaseDuration − renewDeadline − minimumMargin(leaseDuration)`.
    public var killGrace: Duration
    /// nil: not in a cluster and no `--api-server`: just run the command.
    public var apiServer: String?
    public var tokenFile: String?
    public var caFile: String?
    /// Default `info`.
    public var logLevel: LogLevel
    /// `json` (default) or `text`.
    public var logFormat: LogFormat
    /// Label this replica's Pod carries while it leads. Default: none.
    public var leaderLabel: LeaderLabel? = nil
    /// The Pod that gets `leaderLabel`: `POD_NAME`, else the identity.
    public var podName: String = ""
    /// `HOST:PORT` of the plain-HTTP status endpoint. Default: none.
    public var statusAddress: StatusAddress? = nil
    /// Write core/v1 Events on the lock when this replica gains or gives up
    /// leadership. Default: off.
    public var events = false
    /// `--on-loss`: exit 3 after a loss (default), or stand by again.
    public var onLoss: OnLoss = .exit
    /// `--coordinated`: take part in the cluster's coordinated leader
    /// election through a LeaseCandidate (docs/coordinated.md). nil: off.
    public var coordinated: CoordinatedElection? = nil

    public var timing: Election.Timing {
        Election.Timing(leaseDuration: leaseDuration, renewDeadline: renewDeadline, retryPeriod: retryPeriod)
    }

    /// The options, two lines each: `name;ENV;VALUE;default` (an empty
    /// VALUE is a switch, an empty default none), then the help. One string
    /// rather than twenty `OptionSpec(...)` calls: 4 KB less code.
    public static let options: [OptionSpec] = OptionSpec.table("""
        namespace;POD_NAMESPACE;NAME;the service account's namespace
        Namespace of the lock object (must exist: a missing one exits 2).
        identity;POD_NAME;NAME;host name
        This replica's name in the lock; must be unique per replica (use the downward API).
        lock-kind;KUBE_LEADER_LOCK_KIND;configmap|lease;configmap
        Kind of lock object: a ConfigMap annotation (client-go record) or a coordination.k8s.io/v1 Lease.
        lease-duration;KUBE_LEADER_LEASE_DURATION;DURATION;15s
        How long standbys wait after the record last changed before taking over (1s to 24h).
        renew-deadline;KUBE_LEADER_RENEW_DEADLINE;DURATION;10s
        The leader stops its child when it could not renew for this long.
        retry-period;KUBE_LEADER_RETRY_PERIOD;DURATION;2s
        Time between renews, and the least time between retries after any error (at least 100ms; with configmap locks renew-deadline must exceed it by 1s).
        kill-grace;KUBE_LEADER_KILL_GRACE;DURATION;lease-duration - renew-deadline - max(1s, 1% of lease-duration)
        Time between SIGTERM and SIGKILL when leadership is lost. lease-duration - renew-deadline - kill-grace must be at least max(1s, 1% of lease-duration).
        api-server;KUBE_LEADER_API_SERVER;URL;https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
        Kubernetes API URL; http:// works too (kubectl proxy). Without it and outside a cluster the command just runs.
        token-file;KUBE_LEADER_TOKEN_FILE;PATH;\(InCluster.tokenFile)
        Bearer token file, re-read so rotated tokens work. With http:// no token is sent unless this is given.
        ca-file;KUBE_LEADER_CA_FILE;PATH;\(InCluster.caFile)
        CA bundle that signs the API server's certificate.
        log-level;KUBE_LEADER_LOG_LEVEL;LEVEL;info
        trace, debug, info, notice, warning, error or critical.
        log-format;KUBE_LEADER_LOG_FORMAT;json|text;json
        One JSON object per line, or plain text.
        leader-label;KUBE_LEADER_LEADER_LABEL;KEY=VALUE;none
        While leading, this replica's Pod (POD_NAME) carries the label; a Service selecting it reaches only the leader. Needs patch and list on pods.
        status-addr;KUBE_LEADER_STATUS_ADDR;HOST:PORT;none
        Serve GET /healthz, /leader and /metrics (Prometheus) over plain HTTP, e.g. 0.0.0.0:9090.
        events;KUBE_LEADER_EVENTS;;off
        Write an Event on the lock when this replica becomes leader or stops leading. Needs create on events.
        on-loss;KUBE_LEADER_ON_LOSS;exit|standby;exit
        After losing the lock and stopping the child: exit 3 (the container restarts), or stand by again in the same process and lead again when the lock is won.
        coordinated;KUBE_LEADER_COORDINATED;;off
        Coordinated leader election (Kubernetes >= 1.33, CoordinatedLeaderElection gate): keep a LeaseCandidate named after the identity and lead only when the cluster's election controller names this replica in the Lease. Needs --lock-kind lease and --binary-version; RBAC on leasecandidates (docs/coordinated.md).
        binary-version;KUBE_LEADER_BINARY_VERSION;VERSION;
        With --coordinated: this replica's version, MAJOR.MINOR.PATCH (e.g. 1.4.2), the LeaseCandidate's binaryVersion.
        emulation-version;KUBE_LEADER_EMULATION_VERSION;VERSION;the binary version
        With --coordinated: the LeaseCandidate's emulationVersion (at most the binary version); the lowest leads.
        strategy;KUBE_LEADER_STRATEGY;NAME;OldestEmulationVersion
        With --coordinated: the LeaseCandidate's strategy: OldestEmulationVersion (lowest emulation version, then binary version, then oldest candidate) or a third party's PREFIX/NAME.
        """)

    public static let parser = OptionParser(options, mode: .stopAtFirstPositional)

    /// What `load` found on the command line besides a configuration.
    public enum Request: Sendable {
        // indirect: one reference instead of the whole configuration inline
        // (smaller value witnesses, a smaller binary).
        indirect case run(LeaderConfig)
        case help
        case version
    }

    /// Builds the configuration from the command line and environment.
    ///
    /// - Parameters:
    ///   - readFile: reads a small file (the service account's namespace); nil if unreadable.
    ///   - hostName: the host name, the identity's fallback.
    public static func load(arguments: [String], environment: [String: String],
                            readFile: (String) -> String?, hostName: String) throws(UsageError) -> Request {
        let o = try parser.parse(arguments: arguments, environment: environment)
        if o.help { return .help }
        if o.version { return .version }

        // LOCK_NAME [--] COMMAND [ARG...]
        var rest = o.positionals[...]
        guard let lockName = rest.popFirst(), !lockName.isEmpty else {
            throw UsageError("missing LOCK_NAME: usage: kube-leader [OPTIONS] LOCK_NAME [--] COMMAND [ARG...]")
        }
        if rest.first == "--" { rest = rest.dropFirst() }
        guard let first = rest.first, !first.isEmpty else {
            throw UsageError("missing COMMAND after the lock name '\(lockName)': usage: kube-leader [OPTIONS] LOCK_NAME [--] COMMAND [ARG...]")
        }
        guard isDNSSubdomain(lockName) else {
            throw UsageError("lock name '\(lockName)' is not a valid Kubernetes object name: use lower-case letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit")
        }

        func duration(_ name: String, _ fallback: Duration) throws(UsageError) -> Duration {
            guard let text = o[name] else { return fallback }
            do {
                let d = try DurationText.parse(text)
                return d
            } catch {
                throw UsageError("\(o.source(of: name)): \(error.description)")
            }
        }
        let lease = try duration("lease-duration", .seconds(15))
        let renew = try duration("renew-deadline", .seconds(10))
        let retry = try duration("retry-period", .seconds(2))
        let grace = try duration("kill-grace", lease - renew - Self.minimumMargin(lease: lease))

        let kind: LockKind
        switch (o["lock-kind"] ?? "configmap").lowercased() {
        case "configmap", "configmaps": kind = .configMap
        case "lease", "leases": kind = .lease
        case let other: throw UsageError("\(o.source(of: "lock-kind")): unknown lock kind '\(other)': use configmap or lease")
        }

        let levelText = o["log-level"] ?? LogLevel.info.name
        guard let level = LogLevel(name: levelText) else {
            throw UsageError("\(o.source(of: "log-level")): unknown log level '\(levelText.lowercased())': use one of \(LogLevel.names.joined(separator: ", "))")
        }
        let formatText = o["log-format"] ?? LogFormat.json.rawValue
        guard let format = LogFormat(name: formatText) else {
            throw UsageError("\(o.source(of: "log-format")): unknown log format '\(formatText.lowercased())': use \(LogFormat.allCases.map(\.rawValue).joined(separator: " or "))")
        }

        // Where the API is: an explicit URL, else the in-cluster service env.
        let apiServer = o["api-server"] ?? InCluster.apiServer(environment: environment)
        if let url = apiServer, !(url.hasPrefix("https://") || url.hasPrefix("http://")) || url.count < 9 {
            throw UsageError("\(o.source(of: "api-server")): '\(url)' is not an http:// or https:// URL")
        }
        let plainHTTP = apiServer?.hasPrefix("http://") ?? false
        let tokenFile = o["token-file"] ?? (plainHTTP ? nil : InCluster.tokenFile)
        let caFile = plainHTTP ? nil : (o["ca-file"] ?? InCluster.caFile)

        // Identity: POD_NAME set but empty means the downward API is missing.
        let identity: String
        if let given = o["identity"] {
            identity = given
        } else if environment["POD_NAME"] == "", apiServer != nil {
            throw UsageError("env POD_NAME is set but empty: set it from the downward API (fieldRef: metadata.name) or pass --identity NAME")
        } else {
            identity = hostName
        }
        if apiServer != nil, identity.isEmpty {
            throw UsageError("no identity: set POD_NAME from the downward API (fieldRef: metadata.name) or pass --identity NAME")
        }

        var namespace = o["namespace"] ?? ""
        if namespace.isEmpty, apiServer != nil {
            namespace = readFile(InCluster.namespaceFile)?.trimmingWhitespace ?? ""
            if namespace.isEmpty {
                throw UsageError("no namespace: set POD_NAMESPACE from the downward API (fieldRef: metadata.namespace) or pass --namespace NAME")
            }
        }

        if apiServer != nil, !isDNSLabel(namespace) {
            throw UsageError("\(o.source(of: "namespace")): namespace '\(namespace)' is not a valid Kubernetes namespace name (RFC 1123 label): use lower-case letters, digits and '-', at most 63 characters, starting and ending with a letter or digit")
        }

        var config = LeaderConfig(
            lockName: lockName, command: Array(rest), namespace: namespace, identity: identity, lockKind: kind,
            leaseDuration: lease, renewDeadline: renew, retryPeriod: retry, killGrace: grace,
            apiServer: apiServer, tokenFile: tokenFile, caFile: caFile, logLevel: level, logFormat: format)
        if let text = o["leader-label"] {
            switch LeaderLabel.parse(text) {
            case .success(let label): config.leaderLabel = label
            case .failure(let e): throw UsageError("\(o.source(of: "leader-label")): \(e.message)")
            }
        }
        config.podName = environment["POD_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? identity
        if let text = o["status-addr"] {
            guard let address = StatusAddress(text) else {
                throw UsageError("\(o.source(of: "status-addr")): '\(text)' is not HOST:PORT (for example 0.0.0.0:9090, 127.0.0.1:0 or [::]:9090)")
            }
            config.statusAddress = address
        }
        config.events = o.isSet("events")
        if let text = o["on-loss"] {
            guard let mode = OnLoss(rawValue: text.lowercased()) else {
                throw UsageError("\(o.source(of: "on-loss")): unknown mode '\(text)': use exit or standby")
            }
            config.onLoss = mode
        }
        config.coordinated = try coordinatedElection(o, lockKind: kind)
        try config.validate(sources: o)
        return .run(config)
    }

    /// `--coordinated` and its versions; the version options only with it.
    static func coordinatedElection(_ o: ParsedOptions, lockKind: LockKind) throws(UsageError) -> CoordinatedElection? {
        guard o.isSet("coordinated") else {
            for name in ["binary-version", "emulation-version", "strategy"] where o[name] != nil {
                throw UsageError("\(o.source(of: name)) is only used with --coordinated (env KUBE_LEADER_COORDINATED=true)")
            }
            if let value = o["coordinated"], !value.isEmpty, !["0", "false", "no", "off"].contains(value.lowercased()) {
                throw UsageError("\(o.source(of: "coordinated")): '\(value)' is not true or false")
            }
            return nil
        }
        guard lockKind == .lease else {
            throw UsageError("--coordinated needs --lock-kind lease: coordinated leader election elects the holder of a coordination.k8s.io Lease, never of a ConfigMap")
        }
        guard let binary = o["binary-version"], !binary.isEmpty else {
            throw UsageError("--coordinated needs --binary-version VERSION (env KUBE_LEADER_BINARY_VERSION), e.g. 1.4.2: the election controller prefers the oldest version")
        }
        return try CoordinatedElection.validate(binary: binary, emulation: o["emulation-version"] ?? binary,
                                                strategy: o["strategy"] ?? CoordinatedElection.defaultStrategy,
                                                source: { o.source(of: $0) })
    }

    /// The safety inequalities (docs/safety.md, "The safety argument"): the child is dead before any other
    /// candidate can see the lease expire, and renews have time to retry.
    /// The least time that must remain between the leader's last moment with
    /// a child (renew deadline + kill grace after its last renew was sent) and
    /// the moment a standby may take over (one lease after it saw that renew):
    /// max(1 s, 1 % of the lease). Each replica measures these durations on its
    /// own clock; the margin absorbs a difference of their rates up to
    /// margin / lease: 1 % (10,000 ppm) for leases of 100 s and longer, more
    /// for shorter ones (6.7 % at the default 15 s), far above NTP's 500 ppm.
    public static func minimumMargin(lease: Duration) -> Duration {
        max(.seconds(1), lease / 100)
    }

    public func validate(sources o: ParsedOptions = ParsedOptions()) throws(UsageError) {
        func name(_ n: String) -> String { o.sources[n]?.description ?? n }
        for (n, d) in [("lease-duration", leaseDuration), ("renew-deadline", renewDeadline), ("retry-period", retryPeriod)] where d <= .zero {
            throw UsageError("\(name(n)) must be positive (got \(DurationText.format(d)))")
        }
        if renewDeadline >= leaseDuration {
            throw UsageError("renew-deadline (\(DurationText.format(renewDeadline))) must be shorter than lease-duration (\(DurationText.format(leaseDuration))): the leader must give up before standbys may take over")
        }
        if renewDeadline.seconds <= 1.2 * retryPeriod.seconds {
            throw UsageError("renew-deadline (\(DurationText.format(renewDeadline))) must be greater than 1.2 × retry-period (\(DurationText.format(retryPeriod))) so a renew can be retried before the deadline")
        }
        if killGrace < .zero {
            throw UsageError("kill-grace is negative (\(DurationText.format(killGrace))): with lease-duration \(DurationText.format(leaseDuration)) and renew-deadline \(DurationText.format(renewDeadline)) there is no time left; make lease-duration longer than renew-deadline + max(1s, 1% of lease-duration) or set --kill-grace")
        }
        let margin = Self.minimumMargin(lease: leaseDuration)
        if leaseDuration - renewDeadline - killGrace < margin {
            throw UsageError("lease-duration (\(DurationText.format(leaseDuration))) - renew-deadline (\(DurationText.format(renewDeadline))) - kill-grace (\(DurationText.format(killGrace))) must be at least max(1s, 1% of lease-duration) = \(DurationText.format(margin)): this margin is what absorbs a clock-rate difference between replicas (up to 1% of the lease); otherwise another replica could start before this one's child is killed")
        }
        if leaseDuration < .seconds(1) {
            throw UsageError("lease-duration (\(DurationText.format(leaseDuration))) must be at least 1s: the lock record counts whole seconds")
        }
        if leaseDuration > .seconds(LockBounds.maxLeaseSeconds) {
            throw UsageError("\(name("lease-duration")) (\(DurationText.format(leaseDuration))) must be at most 24h: other replicas treat a longer lease in a record as absurd (held, never expiring by it)")
        }
        if retryPeriod < Self.minimumRetryPeriod {
            throw UsageError("\(name("retry-period")) (\(DurationText.format(retryPeriod))) must be at least \(DurationText.format(Self.minimumRetryPeriod)): it paces every request to the API server, and a round trip takes about that long")
        }
        if lockKind == .configMap, renewDeadline <= retryPeriod + .seconds(1) {
            throw UsageError("renew-deadline (\(DurationText.format(renewDeadline))) must be greater than retry-period (\(DurationText.format(retryPeriod))) + 1s with --lock-kind configmap: its record has whole-second times, so a renew within the same second changes nothing and does not count")
        }
    }

    /// The shortest retry period accepted (the pace of every retry).
    public static let minimumRetryPeriod = Duration.milliseconds(100)

    /// RFC 1123 label: what Kubernetes accepts as a namespace name.
    public static func isDNSLabel(_ s: String) -> Bool {
        s.utf8.count <= 63 && !s.contains(".") && isDNSSubdomain(s)
    }

    /// RFC 1123 subdomain: what Kubernetes accepts as a ConfigMap or Lease name.
    public static func isDNSSubdomain(_ s: String) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 253 else { return false }
        let ok = s.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 46 }
        guard ok, let f = s.utf8.first, let l = s.utf8.last else { return false }
        let alnum: (UInt8) -> Bool = { (97...122).contains($0) || (48...57).contains($0) }
        return alnum(f) && alnum(l)
    }
}
