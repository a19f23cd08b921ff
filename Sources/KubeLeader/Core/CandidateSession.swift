/// The upkeep of this replica's `LeaseCandidate` (`--coordinated`,
/// docs/coordinated.md), sans I/O like `LockSession`: the caller feeds an `Input` with
/// the time and performs the one blocking `Command` it gets back (after any
/// log lines). Production: `CandidateRunner` (KLKube, its own thread);
/// tests: scripted, on a virtual clock.
///
/// What it does, as client-go's `leasecandidate.go`:
/// - creates the candidate named after the identity (`leaseName` = the
///   lock, versions, strategy, `renewTime` now); one left by an earlier run
///   with our identity (409) is read and rewritten with ours;
/// - reads it every `pollInterval` and answers a `pingTime` newer than its
///   `renewTime` by writing `renewTime` (never earlier than the ping, so a
///   clock behind the controller's cannot leave the ping unanswered);
/// - renews it every `renewInterval` (5 minutes) anyway, and recreates it
///   when someone deleted it;
/// - on stop, deletes it (until `stopDeadline`).
/// Start-up: a 404 (the cluster does not serve the API, or the namespace
/// is missing), 401/403, an untrusted server or 422 on the first create
/// ends it with `.configurationError` (exit 2), before any retry. Later
/// failures are retried, each retry at least a retry period after the
/// failure; every request has `requestTimeout`.
public struct CandidateSession: Sendable {
    public typealias Instant = MonotonicInstant

    public struct Config: Sendable, Equatable {
        public var namespace: String
        /// The candidate's name: our identity.
        public var name: String
        /// The Lease it stands for (the lock).
        public var leaseName: String
        public var election: CoordinatedElection
        public var retryPeriod: Duration
        public var requestTimeout: Duration
        /// How often the candidate is read for a ping. The controller waits
        /// 5 s for answers; a read per second leaves room for a retry.
        public var pollInterval: Duration
        public var renewInterval: Duration
        /// How long the delete on stop may be retried.
        public var stopDeadline: Duration

        public init(namespace: String, name: String, leaseName: String, election: CoordinatedElection,
                    retryPeriod: Duration, requestTimeout: Duration = .seconds(5), pollInterval: Duration = .seconds(1),
                    renewInterval: Duration = CoordinatedElection.renewInterval, stopDeadline: Duration = .seconds(5)) {
            self.namespace = namespace
            self.name = name
            self.leaseName = leaseName
            self.election = election
            self.retryPeriod = retryPeriod
            self.requestTimeout = requestTimeout
            self.pollInterval = pollInterval
            self.renewInterval = renewInterval
            self.stopDeadline = stopDeadline
        }

        /// "leasecandidate default/replica-0", for messages.
        public var describe: String { "leasecandidate \(namespace)/\(name)" }
    }

    public enum Request: Sendable, Equatable {
        indirect case create(JSON)
        case get
        /// PUT this object (its `metadata.resourceVersion` is the precondition).
        indirect case update(JSON)
        case delete
    }

    public enum Input: Sendable, Equatable {
        case start
        indirect case answer(LockSession.Answer)
        /// The last `.sleep` ended (its time came, or a stop request woke it:
        /// call `noteStopRequested` first).
        case woke
    }

    public enum Outcome: Sendable, Equatable {
        /// Stopped; the candidate was deleted (or was already gone).
        case deleted
        /// Stopped, but the delete did not succeed before the stop deadline
        /// (the controller stops electing it once it stops answering pings).
        case notDeleted(String)
        /// A problem retrying cannot fix, at start-up (exit code 2).
        case configurationError(String)
    }

    public enum Command: Sendable, Equatable {
        indirect case send(Request, timeout: Duration)
        case sleep(until: Instant)
        indirect case log(LogLevel, String, [LockSession.LogField])
        indirect case done(Outcome)
    }

    public enum Phase: Sendable, Equatable {
        /// Creating the candidate (or taking over a leftover).
        case creating
        /// The candidate exists; answering pings, renewing.
        case running
        case stopping
        case done
    }

    public var config: Config { configBox.value }
    private let configBox: HeapBox<Config>   // one word to copy: a smaller binary
    public private(set) var phase: Phase = .creating
    /// The candidate as last read or written.
    public private(set) var current: JSON?
    /// When the last renew that succeeded was sent.
    public private(set) var lastRenewAt: Instant?
    /// Set by a successful create or update: later 404/403 are outages.
    public private(set) var everWorked = false
    private var stopRequested = false
    private var stopBy: Instant?
    private var pending: (request: Request, sentAt: Instant)?
    /// No write before this instant (after a failed or conflicting one).
    private var writeNotBefore: Instant?
    private var failuresInARow = 0
    private var out: [Command] = []

    public init(config: Config) { self.configBox = HeapBox(config) }

    public mutating func noteStopRequested() { stopRequested = true }

    /// The object we keep in the API.
    public func desiredSpec(renewTime: WallTime) -> JSON {
        ["leaseName": .string(config.leaseName), "binaryVersion": .string(config.election.binaryVersion),
         "emulationVersion": .string(config.election.emulationVersion), "strategy": .string(config.election.strategy),
         "renewTime": .string(RFC3339.formatMicro(renewTime))]
    }

    public func newObject(renewTime: WallTime) -> JSON {
        ["apiVersion": "coordination.k8s.io/v1beta1", "kind": "LeaseCandidate",
         "metadata": ["name": .string(config.name), "namespace": .string(config.namespace)],
         "spec": desiredSpec(renewTime: renewTime)]
    }

    /// Feeds one input; returns log lines and then exactly one blocking
    /// command (`.send`, `.sleep`) or `.done`.
    public mutating func step(_ input: Input, now: Instant, wall: WallTime) -> [Command] {
        out = []
        if stopRequested, phase != .stopping, phase != .done {
            // Whatever was in flight, its answer no longer matters: delete.
            pending = nil
            beginStop(now: now)
            return out
        }
        switch input {
        case .start:
            create(now: now, wall: wall)
        case .woke:
            next(now: now, wall: wall)
        case .answer(let answer):
            guard let p = pending else { next(now: now, wall: wall); return out }
            pending = nil
            answered(p.request, sentAt: p.sentAt, answer, now: now, wall: wall)
        }
        return out
    }

    // MARK: Decisions

    private mutating func send(_ request: Request, now: Instant) {
        pending = (request, now)
        var timeout = config.requestTimeout
        if let stopBy { timeout = max(.milliseconds(1), min(timeout, now.duration(to: stopBy))) }
        out.append(.send(request, timeout: timeout))
    }

    private mutating func sleep(until: Instant) { out.append(.sleep(until: until)) }

    private mutating func log(_ level: LogLevel, _ message: String, _ fields: LockSession.LogField...) {
        out.append(.log(level, message, [LockSession.LogField("candidate", .string(config.describe))] + fields))
    }

    private mutating func create(now: Instant, wall: WallTime) {
        if let until = writeNotBefore, now < until { sleep(until: until); return }
        phase = .creating
        send(.create(newObject(renewTime: wall)), now: now)
    }

    /// After a sleep: the next read, the pending create, or the stop.
    private mutating func next(now: Instant, wall: WallTime) {
        switch phase {
        case .creating: create(now: now, wall: wall)
        case .running: send(.get, now: now)
        case .stopping: stopStep(now: now)
        case .done: out.append(.done(.deleted))
        }
    }

    private mutating func answered(_ request: Request, sentAt: Instant, _ answer: LockSession.Answer, now: Instant, wall: WallTime) {
        if phase == .stopping { deleteAnswered(answer, now: now); return }
        switch (request, answer) {
        case (.create, .ok(let object)), (.update, .ok(let object)):
            let first = !everWorked
            everWorked = true
            failuresInARow = 0
            current = object
            lastRenewAt = sentAt
            phase = .running
            if first { log(.info, "LeaseCandidate ready: the election controller may name us", LockSession.LogField("lease", .string(config.leaseName))) }
            afterRenew(now: now, wall: wall)
        case (.get, .ok(let object)):
            failuresInARow = 0
            current = object
            decide(now: now, wall: wall)
        case (.create, .failed(let f)) where f.kind == .status(409):
            // Left by an earlier run with our identity: read it, then rewrite it.
            log(.info, "a LeaseCandidate with our name exists (an earlier run): taking it over")
            phase = .running
            send(.get, now: now)
        case (.create, .failed(let f)):
            if !everWorked, let message = configurationProblem(f) {
                phase = .done
                out.append(.done(.configurationError(message)))
                return
            }
            failed("cannot create the LeaseCandidate", f, now: now)
        case (.get, .failed(let f)) where f.kind == .status(404), (.update, .failed(let f)) where f.kind == .status(404):
            log(.warning, "the LeaseCandidate is gone (deleted by someone else): creating it again", LockSession.LogField("error", .string(f.message)))
            phase = .creating
            create(now: now, wall: wall)
        case (.update, .failed(let f)) where f.kind == .status(409):
            // Someone else wrote it (the controller's ping): read at once, write
            // again no sooner than a retry period from now.
            writeNotBefore = now + config.retryPeriod
            send(.get, now: now)
        case (_, .failed(let f)):
            failed(request == .get ? "cannot read the LeaseCandidate" : "cannot renew the LeaseCandidate", f, now: now)
        case (.delete, _):
            next(now: now, wall: wall)
        }
    }

    /// A read came back: answer a ping, renew when due, restore our spec.
    private mutating func decide(now: Instant, wall: WallTime) {
        guard let object = current else { sleep(until: now + config.pollInterval); return }
        let spec = object["spec"]
        let ping = spec?["pingTime"]?.stringValue.flatMap(RFC3339.parse)
        let renewed = spec?["renewTime"]?.stringValue.flatMap(RFC3339.parse)
        let pinged = ping.map { p in renewed.map { $0 < p } ?? true } ?? false
        let due = lastRenewAt.map { now >= $0 + config.renewInterval } ?? true
        let ours = desiredSpec(renewTime: wall)
        let drifted = ["leaseName", "binaryVersion", "emulationVersion", "strategy"].contains { spec?[$0] != ours[$0] }
        guard pinged || due || drifted else { afterRenew(now: now, wall: wall); return }
        if let until = writeNotBefore, now < until { sleep(until: min(until, now + config.pollInterval)); return }
        var renewTime = wall
        if let ping, renewTime < ping { renewTime = ping }   // never before the ping, whatever our clock says
        var updated = object
        updated["spec"] = desiredSpec(renewTime: renewTime)
        if let ping = spec?["pingTime"] { updated[path: "spec", "pingTime"] = ping }
        if pinged { log(.debug, "answering the election controller's ping") }
        send(.update(updated), now: now)
    }

    /// The next read: a poll interval on, earlier if the renew falls due.
    private mutating func afterRenew(now: Instant, wall: WallTime) {
        var until = now + config.pollInterval
        if let last = lastRenewAt { until = min(until, max(now, last + config.renewInterval)) }
        sleep(until: until)
    }

    private mutating func failed(_ what: String, _ f: LockSession.Failure, now: Instant) {
        failuresInARow += 1
        writeNotBefore = now + config.retryPeriod
        if failuresInARow == 1 || failuresInARow % 30 == 0 {
            log(.warning, what + "; retrying every retry period", LockSession.LogField("error", .string(f.message)),
                LockSession.LogField("failures_in_a_row", JSON(failuresInARow)))
        }
        sleep(until: now + config.retryPeriod)
    }

    /// Start-up failures no retry can fix.
    private func configurationProblem(_ f: LockSession.Failure) -> String? {
        switch f.kind {
        case .status(404):
            return "cannot create \(config.describe): \(f.message): the cluster does not serve coordination.k8s.io/v1beta1 leasecandidates (coordinated leader election needs Kubernetes 1.33 or later with the CoordinatedLeaderElection feature gate and --runtime-config=coordination.k8s.io/v1beta1=true), or the namespace \(config.namespace) does not exist; run without --coordinated otherwise"
        case .status(401), .status(403), .credentials:
            return "cannot create \(config.describe): \(f.message): --coordinated needs get, create, update and delete on leasecandidates in the API group coordination.k8s.io (docs/coordinated.md)"
        case .status(400), .status(422):
            return "the API server refused \(config.describe): \(f.message)"
        case .untrustedServer:
            return f.message
        default:
            return nil
        }
    }

    // MARK: Stop

    private mutating func beginStop(now: Instant) {
        phase = .stopping
        stopBy = now + config.stopDeadline
        stopStep(now: now)
    }

    private mutating func stopStep(now: Instant) {
        guard let stopBy, now < stopBy else {
            phase = .done
            out.append(.done(.notDeleted("the delete did not succeed within \(DurationText.format(config.stopDeadline))")))
            return
        }
        // Even when no create was answered: one may have landed (404 is fine).
        send(.delete, now: now)
    }

    private mutating func deleteAnswered(_ answer: LockSession.Answer, now: Instant) {
        switch answer {
        case .ok:
            phase = .done
            log(.info, "deleted the LeaseCandidate")
            out.append(.done(.deleted))
        case .failed(let f) where f.kind == .status(404):
            phase = .done
            out.append(.done(.deleted))
        case .failed(let f):
            log(.warning, "cannot delete the LeaseCandidate", LockSession.LogField("error", .string(f.message)))
            let retryAt = now + config.retryPeriod
            if let stopBy, retryAt < stopBy { sleep(until: retryAt) } else {
                phase = .done
                out.append(.done(.notDeleted(f.message)))
            }
        }
    }
}
