/// One replica's whole conversation with the lock, sans I/O: every decision
/// the election thread makes between `Election` and the sockets.
///
/// `Election` decides *what* to do with the lock (read, write, wait, lead).
/// `LockSession` embeds it and decides everything around it that used to
/// live in the blocking runner and the lock store: how a read is made (LIST,
/// GET after a 403 on LIST, the original kube-leader's owner Pod), how an
/// answer is checked and turned into an `Election.Observation`, how a
/// standby watches (resourceVersion to resume from, expiry, silence, events
/// per retry period, pacing of reads and watches after failures), how a
/// failure is classified (lost race, retry, configuration error), the log
/// lines, and the callbacks to the supervisor.
///
/// Like h11 or quinn-proto it does no I/O and reads no clock: the caller
/// feeds an `Input` with the time and performs the `Command`s it gets back.
/// Each call returns zero or more non-blocking commands (logs, callbacks,
/// closing the watch) followed by exactly one *blocking* command (a request,
/// a watch read, a sleep, `beginAcquire`) whose result is the next input,
/// or by `.done`. Production runs it with `ElectionRunner` (KLLeader: blocking
/// sockets, one thread); the simulation runs the same machine on simulated
/// time (`Tests/Simulation/Lib/ElectionThread.swift`).
public struct LockSession: Sendable {
    public typealias Instant = MonotonicInstant

    // MARK: Configuration

    public struct Config: Sendable, Equatable {
        public var kind: LockKind
        public var namespace: String
        public var name: String
        /// Upper bound of one request when no deadline is closer.
        public var requestTimeout: Duration
        /// How long one watch request may stay open (the server ends it then).
        public var watchSeconds: Int
        /// Longest wait for a watch's response headers.
        public var watchOpenTimeout: Duration
        /// How often the API server sends a BOOKMARK on a watch that asked
        /// for them (about every 60 s). A watch silent for two of these is
        /// presumed dead (half-open) and replaced, paced.
        public var bookmarkInterval: Duration
        /// After a GET fallback (LIST answered 403), LIST is tried again this
        /// long later: a short authorization outage must not cost the
        /// resumable watch for good.
        public var listRetryInterval: Duration

        public init(kind: LockKind, namespace: String, name: String, requestTimeout: Duration = .seconds(10),
                    watchSeconds: Int = 300, watchOpenTimeout: Duration = .seconds(10),
                    bookmarkInterval: Duration = .seconds(60), listRetryInterval: Duration = .seconds(300)) {
            self.kind = kind
            self.namespace = namespace
            self.name = name
            self.requestTimeout = requestTimeout
            self.watchSeconds = watchSeconds
            self.watchOpenTimeout = watchOpenTimeout
            self.bookmarkInterval = bookmarkInterval
            self.listRetryInterval = listRetryInterval
        }

        /// "configmap default/my-lock", for messages.
        public var describe: String { "\(kind.rawValue) \(namespace)/\(name)" }
        /// The LIST and WATCH selector of the lock.
        public var fieldSelector: String { "metadata.name=\(name)" }
    }

    // MARK: Inputs and commands

    /// A request to the API server. The driver builds the URL from the
    /// session's `Config` (resource of `kind`, `namespace`).
    public enum Request: Sendable, Equatable {
        /// LIST the lock's resource with `fieldSelector=metadata.name=NAME`.
        case list
        /// GET the lock object.
        case get
        /// GET a Pod (the owner of an original kube-leader's lock).
        case getPod(String)
        /// POST this object.
        case create(JSON)
        /// PUT this object (its `metadata.resourceVersion` is the precondition).
        case update(JSON)
        /// Open a watch (`watch=1`, `allowWatchBookmarks=true`, the field
        /// selector, `timeoutSeconds`) from `resourceVersion` (nil: from
        /// now, starting with the current object).
        case watch(resourceVersion: String?, timeoutSeconds: Int)
    }

    /// Why a request failed, as the driver saw it (no KubeError here: the
    /// pure layer gets a description, and decides by it alone).
    public struct Failure: Sendable, Equatable, Error {
        public enum Kind: Sendable, Equatable {
            /// The API server answered with this HTTP status (4xx, 5xx).
            case status(Int)
            /// No (complete) answer within the request's timeout.
            case timedOut
            /// The credentials cannot be used (an unreadable token file).
            case credentials
            /// The server's certificate was rejected, or the CA is unusable.
            case untrustedServer
            /// Anything else on the way: refused, reset, TLS, HTTP framing,
            /// a body that is not JSON, too large.
            case transport
        }
        public var kind: Kind
        /// For logs: what went wrong, with the request it was about.
        public var message: String

        public init(_ kind: Kind, _ message: String) {
            self.kind = kind
            self.message = message
        }
    }

    /// The result of a `.send`.
    public enum Answer: Sendable, Equatable {
        /// 2xx with this body (`.null` when empty; a watch's open: any).
        case ok(JSON)
        case failed(Failure)
    }

    /// The result of a `.readWatch`.
    public enum WatchRead: Sendable, Equatable {
        /// One line of the stream (one JSON event).
        case line(String)
        /// Nothing arrived before the read's deadline.
        case timedOut
        /// The server ended the stream.
        case ended
        /// The connection failed.
        case failed(Failure)
    }

    public enum Input: Sendable, Equatable {
        /// The first input.
        case start
        /// The answer to the last `.send`.
        case answer(Answer)
        /// The host's answer to `.beginAcquire`.
        case acquireAllowed(Bool)
        /// What the last `.readWatch` got.
        case watch(WatchRead)
        /// The last `.sleep` ended (its time came, or a release request woke
        /// it: tell the session with `noteReleaseRequested` first).
        case woke
        /// The host's answer to `.awaitRejoin`: true once the old child's
        /// whole group is gone and kube-leader stands by again; false when
        /// kube-leader is stopping instead (the session then ends `.lost`).
        case rejoin(Bool)
    }

    /// What the status surfaces are told (`SharedLeaderStatus`); the election
    /// never waits for them.
    public enum Report: Sendable, Equatable {
        /// A read returned the lock (nil: absent).
        case read(LockSnapshot?)
        /// A watch delivered the lock (nil: deleted).
        case watched(LockSnapshot?)
        /// A create or update was answered 2xx with this object.
        case wrote(LockSnapshot, sentAt: Instant)
        /// A create or update failed.
        case writeFailed
        /// A watch failed (it is replaced after a retry period).
        case watchFailed
    }

    public enum Outcome: Sendable, Equatable {
        /// We led and gave the lock back (or never led and were asked to stop).
        case released
        /// We led and lost the lock.
        case lost(reason: String)
        /// A configuration problem that retrying cannot fix (exit code 2).
        case configurationError(String)
    }

    public struct LogField: Sendable, Equatable {
        public var key: String
        public var value: JSON
        public init(_ key: String, _ value: JSON) {
            self.key = key
            self.value = value
        }
    }

    public enum Command: Sendable, Equatable {
        // Blocking: the next input is their result.
        /// Send `request` with this timeout; answer `.answer`.
        case send(Request, timeout: Duration)
        /// Read the next line of the open watch, waiting until `until` at
        /// most; answer `.watch`.
        case readWatch(until: Instant)
        /// Sleep until `until`; a release request may end it early (the
        /// leader's pause polls the wake-up pipe); answer `.woke`.
        case sleep(until: Instant)
        /// Ask the host whether an acquiring write may be sent (false once
        /// kube-leader is stopping); answer `.acquireAllowed`. A true answer
        /// marks the write in flight until `.endAcquire`.
        case beginAcquire
        /// `--on-loss standby`, after `.lostLeadership`: wait until the
        /// supervisor has stopped and reaped the old child's group and asks
        /// the election to stand by again; answer `.rejoin`. Nothing is sent
        /// to the API server meanwhile.
        case awaitRejoin
        /// The election is over.
        case done(Outcome)

        // Not blocking: perform and go on.
        /// Close the open watch (its connection).
        case closeWatch
        /// The acquiring write is over; `won` when it took the lock.
        case endAcquire(won: Bool)
        /// We hold the lock: start the child.
        case becameLeader
        /// We lost the lock: stop the child.
        case lostLeadership(reason: String)
        /// The lock asks us to hand over to `to` (its preferred holder
        /// changed while we led): stop the child as on release, then ask
        /// for the release. We go on renewing meanwhile.
        case handOver(to: String)
        /// The hand-over's release is done (or given up, the lease then
        /// expires by itself); `.awaitRejoin` follows: we stand by again.
        case handedOver
        /// A write that holds the lock succeeded; `sentAt` is when it was sent.
        case renewed(sentAt: Instant)
        case log(LogLevel, String, [LogField])
        case report(Report)

        /// Whether the session waits for this command's result.
        public var isBlocking: Bool {
            switch self {
            case .send, .readWatch, .sleep, .beginAcquire, .awaitRejoin, .done: true
            default: false
            }
        }
    }

    // MARK: State

    public let config: Config
    /// What a loss leads to: the end of the session (`.exit`), or, once the
    /// host answers `.awaitRejoin`, a new election in the same session.
    public let onLoss: OnLoss
    public private(set) var election: Election
    /// Leaderships lost so far (each one stopped the child).
    public private(set) var losses = 0
    /// Why the last leadership was lost (while waiting to rejoin).
    private var lostReason: String?
    /// The current term's hand-over was told to the host.
    private var handOverTold = false
    /// Hand-overs done so far (each released the lock and stood by again).
    public private(set) var handOvers = 0
    var timing: Election.Timing { election.timing }
    var retryPeriod: Duration { election.timing.retryPeriod }

    /// The host asked to give the lock up (child exited, or stopping).
    public private(set) var releaseRequested = false
    public private(set) var outcome: Outcome?

    // Runner bookkeeping.
    private var loggedHolder: String?
    private var failuresInARow = 0
    /// Conflicts in a row not explained by another holder.
    private var racesInARow = 0
    private var watchFailuresInARow = 0
    private var lastWriteSucceeded = false
    /// When the last read was started: after a watch failure, the next read
    /// is not sent sooner than a retry period later.
    private var lastReadAt: Instant?
    /// No watch (re)opened before this instant.
    private var watchNotBefore: Instant?
    private var fatalOutcome: Outcome?
    /// The kinds of request that were answered 2xx: their credentials and
    /// RBAC have worked, so a later 401/403 on them is an outage to ride out
    /// (an API server restart, an authorizer webhook timing out), not a
    /// configuration error. A kind that never worked (a Role without
    /// "create") still ends a standby with exit code 2.
    public private(set) var authorized: Set<Verb> = []

    public enum Verb: Sendable, Hashable { case read, create, update }

    // Reads.
    /// False after a LIST was forbidden, until `listRetryAt`.
    private var listAllowed = true
    private var listRetryAt: Instant?
    /// Pods whose lookup failed with something other than 404 (warned once).
    private var podWarned = false
    private var listForbiddenWarned = false
    /// A LIST was answered 2xx once.
    private var listWorked = false

    // The watch of a standby.
    public private(set) var watchOpen = false
    private var watchResourceVersion: String?
    private var watchOpenedAt: Instant?
    private var watchEvents = 0
    /// When the open watch must have ended by itself (`timeoutSeconds` plus
    /// a margin): past it the connection is presumed half-open.
    private var watchExpiry: Instant?
    /// When the watch last delivered a line (a bookmark counts).
    private var watchHeardAt: Instant?
    /// While leading: when the leader's watch last made the election act
    /// (at most once per retry period).
    private var leaderActedAt: Instant?
    /// When the last read as a standby went out (the rejoin's first read
    /// waits a retry period from it).
    private var standbyReadAt: Instant?

    /// What the session waits for.
    private enum Waiting: Sendable, Equatable {
        case nothing
        case read(Read)
        case acquirePermission(Write)
        case write(Write, sentAt: Instant)
        case sleep(Sleep)
        case watchOpen(timeout: Duration, until: Instant)
        case watchRead(until: Instant)
        /// Lost; waiting for the host's `.rejoin`.
        case rejoin
        case finished
    }

    /// Who asked for a read, and how far it has got.
    private enum Reader: Sendable, Equatable { case election, watchEvent }
    private struct Read: Sendable, Equatable {
        enum Step: Sendable, Equatable { case list, get, pod(LockSnapshot, String) }
        var step: Step
        var reader: Reader
        var deadline: Instant
        /// For a watch event: the wait's deadline to go on with.
        var until: Instant
    }
    private struct Write: Sendable, Equatable {
        enum What: String, Sendable { case create, acquire, renew, release }
        var what: What
        var request: Request
    }
    private enum Sleep: Sendable, Equatable {
        case leader, releasing
        case beforeWatch(until: Instant, notBefore: Instant)
        case afterWatchFailure
        /// A leader's pause until `until` (its renew) while no watch may be
        /// opened yet.
        case leaderBeforeWatch(until: Instant)
        /// Standing by again: the first read waits a retry period from the
        /// last standby read.
        case beforeRejoinRead
    }
    private var waiting: Waiting = .nothing
    private var out: [Command] = []
    private var now = Instant(nanoseconds: 0)
    private var wall = WallTime(seconds: 0, nanoseconds: 0)

    public init(election: Election, config: Config, onLoss: OnLoss = .exit) {
        self.election = election
        self.config = config
        self.onLoss = onLoss
    }

    /// The host asked for a release (it reads the flag at its decision
    /// points, as the blocking runner read the host's).
    public mutating func noteReleaseRequested() { releaseRequested = true }

    // MARK: Stepping

    /// Feeds one input at `now` (the election's monotonic clock; `wall` only
    /// dates records) and returns what to do, ending with one blocking command.
    public mutating func step(_ input: Input, now: Instant, wall: WallTime) -> [Command] {
        self.now = now
        self.wall = wall
        out = []
        let w = waiting
        waiting = .nothing
        switch (w, input) {
        case (.nothing, .start):
            perform(electionStep(.start))
        case (.read(let read), .answer(let answer)):
            readAnswered(read, answer)
        case (.acquirePermission(let write), .acquireAllowed(let allowed)):
            if allowed {
                send(write.request, timeout: timeout())
                waiting = .write(write, sentAt: now)
            } else {
                // Not sent: as if it failed; the next wait sees the release request.
                perform(electionStep(.requestFailed("kube-leader is stopping")))
            }
        case (.write(let write, let sentAt), .answer(let answer)):
            written(write, sentAt: sentAt, answer)
        case (.sleep(let sleep), .woke):
            woke(sleep)
        case (.watchOpen(let timeout, let until), .answer(let answer)):
            watchOpened(answer, timeout: timeout, until: until)
        case (.watchRead(let until), .watch(let read)):
            watchRead(read, until: until)
        case (.rejoin, .rejoin(let allowed)):
            rejoin(allowed)
        case (.finished, _):
            waiting = .finished
            out.append(.done(outcome ?? .released))
        default:
            // A driver bug: an input nobody asked for. Never crash; end.
            outcome = .configurationError("internal error: unexpected input \(input) while waiting for \(w)")
            waiting = .finished
            out.append(.log(.critical, "election session got an unexpected input", [LogField("input", .string("\(input)"))]))
            out.append(.done(outcome!))
        }
        return out
    }

    private mutating func electionStep(_ event: Election.Event) -> Election.Action {
        let before = election.lastRenew
        let action = election.step(event, now: now, wall: wall)
        // The supervisor keeps its own renew deadline from these send times.
        if election.role == .leading, let sentAt = election.lastRenew, sentAt != before {
            out.append(.renewed(sentAt: sentAt))
        }
        if !handOverTold, election.role == .leading, let to = election.handOverTo {
            handOverTold = true
            log(.notice, "the lock names another preferred holder; handing over", LogField("lock.preferred_holder", .string(to)))
            out.append(.handOver(to: to))
        }
        return action
    }

    private mutating func log(_ level: LogLevel, _ message: String, _ fields: LogField...) {
        out.append(.log(level, message, fields))
    }

    private mutating func send(_ request: Request, timeout: Duration) {
        out.append(.send(request, timeout: timeout))
    }

    private mutating func finish(_ outcome: Outcome) {
        closeWatch()
        self.outcome = outcome
        waiting = .finished
        out.append(.done(outcome))
    }

    /// Carries out election actions until one blocks.
    private mutating func perform(_ first: Election.Action) {
        var action = first
        while true {
            switch action {
            case .done:
                if fatalOutcome == nil, election.role == .released, election.handOverTo != nil {
                    // Handed over: released for the preferred holder;
                    // stand by again once the host says so.
                    closeWatch()
                    handOvers += 1
                    out.append(.handedOver)
                    waiting = .rejoin
                    out.append(.awaitRejoin)
                    return
                }
                finish(fatalOutcome ?? (election.role == .lost ? .lost(reason: "lost") : .released))
                return

            case .lostLeadership(let reason):
                log(.error, "leadership lost", LogField("reason", .string(reason)))
                out.append(.lostLeadership(reason: reason))
                losses += 1
                guard onLoss == .standby, fatalOutcome == nil else {
                    finish(.lost(reason: reason))
                    return
                }
                // Nothing more is sent until the old child's group is gone.
                closeWatch()
                lostReason = reason
                waiting = .rejoin
                out.append(.awaitRejoin)
                return

            case .becameLeader(let renewAt):
                closeWatch()
                log(.notice, "acquired lock", LogField("lock.holder", .string(election.identity)),
                    LogField("lock.transitions", JSON(election.observed?.record?.leaderTransitions ?? 0)))
                loggedHolder = election.identity
                out.append(.becameLeader)
                guard let next = pause(until: renewAt) else { return }
                action = next

            case .wait(let until):
                if election.role == .leading {
                    guard let next = pause(until: until) else { return }
                    action = next
                } else {
                    if releaseRequested { action = electionStep(.releaseRequested); continue }
                    guard let next = standbyWait(until: until) else { return }
                    action = next
                }

            case .get:
                lastReadAt = now
                if election.role == .standby { standbyReadAt = now }
                // A read the election asks for ends the watch (`--coordinated`
                // reads once per lease): the next watch still waits a retry
                // period from the last one opened (found by the random simulation).
                if let opened = watchOpenedAt, election.role == .standby {
                    watchNotBefore = max(watchNotBefore ?? opened, opened + retryPeriod)
                }
                startRead(reader: .election, timeout: timeout(), until: now)
                return

            case .create(let record):
                let object = LockCodec.newObject(config.kind, namespace: config.namespace, name: config.name, record: record)
                waiting = .acquirePermission(Write(what: .create, request: .create(object)))
                out.append(.beginAcquire)
                return

            case .update(let record, let base):
                let what: Write.What = record.isReleased ? .release : (election.role == .leading ? .renew : .acquire)
                let write = Write(what: what, request: .update(LockCodec.updatedObject(config.kind, base: base, record: record)))
                if what == .acquire {
                    waiting = .acquirePermission(write)
                    out.append(.beginAcquire)
                } else {
                    send(write.request, timeout: timeout())
                    waiting = .write(write, sentAt: now)
                }
                return
            }
        }
    }

    /// A request's timeout: the usual bound; while leading, at most half of
    /// what is left of the renew deadline (`Election.attemptTimeout`), so a
    /// renew stuck on a dead connection leaves room for another attempt.
    public func timeout() -> Duration {
        election.attemptTimeout(now: now, cap: config.requestTimeout)
    }

    // MARK: Standing by again

    /// The host's answer to `.awaitRejoin`: start a new election (a fresh
    /// standby's, first step `.start`: a read), or end as lost.
    private mutating func rejoin(_ allowed: Bool) {
        let reason = lostReason ?? "lost"
        let handedOver = election.role == .released && election.handOverTo != nil
        // The hand-over's own release request is over; a later one is new.
        if handedOver, allowed { releaseRequested = false }
        guard allowed, !releaseRequested, election.standByAgain() else {
            finish(handedOver ? .released : .lost(reason: reason))
            return
        }
        handOverTold = false
        lostReason = nil
        loggedHolder = nil
        failuresInARow = 0
        racesInARow = 0
        watchFailuresInARow = 0
        lastWriteSucceeded = false
        watchResourceVersion = nil
        leaderActedAt = nil
        if handedOver {
            log(.notice, "standing by again after handing over", LogField("hand_overs", JSON(handOvers)))
        } else {
            log(.notice, "standing by again after losing leadership", LogField("losses", JSON(losses)),
                LogField("reason", .string(reason)))
        }
        if let at = standbyReadAt, now < at + retryPeriod {
            // One read per retry period while standing by: a loss the
            // leader's watch saw at once may follow the read before the
            // acquire closely (found by the random simulation).
            if let action = sleep(until: at + retryPeriod, .beforeRejoinRead) { perform(action) }
            return
        }
        perform(electionStep(.start))
    }

    // MARK: Pauses

    /// A leader's pause until `until`. Nil: blocked in a sleep.
    private mutating func pause(until: Instant) -> Election.Action? {
        if election.isReleasing {
            // A release being retried: the request is known, sleep for real.
            return sleep(until: until, .releasing)
        }
        if releaseRequested { return electionStep(.releaseRequested) }
        if handOverTold {
            // Handing over: nothing more to learn from the lock until the
            // release; renew meanwhile.
            closeWatch()
            return sleep(until: until, .leader)
        }
        return leaderWait(until: until)
    }

    /// Between renews the leader watches the lock (the standby's
    /// watch: resourceVersion, expiry, silence, pacing), every read ending
    /// by `until`, its next renew. Nil: blocked.
    private mutating func leaderWait(until: Instant) -> Election.Action? {
        if !watchOpen, let notBefore = watchNotBefore, now < notBefore {
            // At most one watch opened per retry period.
            if notBefore >= until { return sleep(until: until, .leader) }
            return sleep(until: notBefore, .leaderBeforeWatch(until: until))
        }
        return openingWatch(until: until)
    }

    private mutating func sleep(until: Instant, _ purpose: Sleep) -> Election.Action? {
        if now >= until {
            // Nothing to sleep: as if the sleep ended at once.
            return sleepEnded(purpose)
        }
        waiting = .sleep(purpose)
        out.append(.sleep(until: until))
        return nil
    }

    private mutating func woke(_ purpose: Sleep) {
        if let action = sleepEnded(purpose) { perform(action) }
    }

    private mutating func sleepEnded(_ purpose: Sleep) -> Election.Action? {
        switch purpose {
        case .leader:
            return electionStep(releaseRequested ? .releaseRequested : .timer)
        case .releasing:
            return electionStep(.timer)
        case .afterWatchFailure:
            return releaseRequested ? electionStep(.releaseRequested) : .get
        case .beforeRejoinRead:
            return electionStep(releaseRequested ? .releaseRequested : .start)
        case .leaderBeforeWatch(let until):
            if releaseRequested { return electionStep(.releaseRequested) }
            return now < until ? leaderWait(until: until) : electionStep(.timer)
        case .beforeWatch(let until, let notBefore):
            if releaseRequested { return electionStep(.releaseRequested) }
            if now < notBefore { return electionStep(.timer) }
            return openingWatch(until: until)
        }
    }

    // MARK: Reads

    private mutating func startRead(reader: Reader, timeout: Duration, until: Instant) {
        // A read means the election needs a fresh view (start, lost race,
        // failed watch): the next watch starts from what this read returns.
        closeWatch()
        if !listAllowed, let at = listRetryAt, now >= at {
            listAllowed = true
            listRetryAt = nil
        }
        let read = Read(step: listAllowed ? .list : .get, reader: reader, deadline: now + timeout, until: until)
        send(read.step == .list ? .list : .get, timeout: timeout)
        waiting = .read(read)
    }

    private func left(_ deadline: Instant) -> Duration { max(.milliseconds(1), now.duration(to: deadline)) }

    private mutating func readAnswered(_ read: Read, _ answer: Answer) {
        switch (read.step, answer) {
        case (.list, .ok(let list)):
            authorized.insert(.read)
            listWorked = true
            switch parseList(list) {
            case .failure(let failure): readDone(read, .failure(failure))
            case .success(let (observation, rv)):
                watchResourceVersion = rv
                checkOwner(read, observation)
            }
        case (.list, .failed(let failure)):
            // A LIST that worked before and is now forbidden is an outage:
            // a failed read (retried after a retry period), not a Role
            // without "list".
            guard failure.kind == .status(403), !listWorked else { readDone(read, .failure(failure)); return }
            listAllowed = false
            listRetryAt = now + config.listRetryInterval
            if !listForbiddenWarned {
                listForbiddenWarned = true
                log(.warning, "cannot list the lock; reading it with GET instead (add \"list\" next to \"watch\" in the Role so watches can resume)",
                    LogField("error", .string(failure.message)))
            }
            var next = read
            next.step = .get
            send(.get, timeout: left(read.deadline))
            waiting = .read(next)
        case (.get, .ok(let object)):
            authorized.insert(.read)
            guard object.objectValue != nil, object[path: "metadata", "name"]?.stringValue == config.name else {
                readDone(read, .failure(Failure(.transport, "the API server answered the GET of \(config.describe) with something that is not that object")))
                return
            }
            watchResourceVersion = nil  // watch from the current state (no version): never 410
            checkOwner(read, .present(LockCodec.decode(config.kind, object: object)))
        case (.get, .failed(let failure)):
            if failure.kind == .status(404) { readDone(read, .success(.absent)); return }
            readDone(read, .failure(failure))
        case (.pod(var snapshot, let pod), let answer):
            if case .failed(let failure) = answer {
                if failure.kind == .status(404) {
                    snapshot.state = .ownerPod(pod, alive: false)
                    snapshot.fingerprint += ":gone"
                    log(.info, "the original kube-leader's pod is gone; its lock is free", LogField("pod", .string(pod)))
                } else if !podWarned {
                    podWarned = true
                    log(.warning, "cannot check the original kube-leader's pod; its lock stays held (grant \"get pods\")",
                        LogField("pod", .string(pod)), LogField("error", .string(failure.message)))
                }
            } else {
                authorized.insert(.read)
            }
            readDone(read, .success(.present(snapshot)))
        }
    }

    /// The lock from a LIST answer, and the list's resourceVersion.
    private func parseList(_ list: JSON) -> Result<(Election.Observation, String), Failure> {
        guard let items = list["items"]?.arrayValue, let rv = list[path: "metadata", "resourceVersion"]?.stringValue, !rv.isEmpty else {
            return .failure(Failure(.transport, "the API server answered the LIST of \(config.describe) without items or resourceVersion"))
        }
        let mine = items.filter { $0[path: "metadata", "name"]?.stringValue == config.name }
        guard mine.count <= 1, mine.count == items.count else {
            return .failure(Failure(.transport, "the API server answered the LIST of \(config.describe) with other objects (its fieldSelector was ignored)"))
        }
        guard let object = mine.first else { return .success((.absent, rv)) }
        return .success((.present(LockCodec.decode(config.kind, object: object)), rv))
    }

    /// An original kube-leader's lock is held while its owner Pod exists:
    /// GET the Pod; 404 frees the lock, any other answer keeps it held.
    private mutating func checkOwner(_ read: Read, _ observation: Election.Observation) {
        guard case .present(let snapshot) = observation, case .ownerPod(let pod, _) = snapshot.state else {
            readDone(read, .success(observation))
            return
        }
        var next = read
        next.step = .pod(snapshot, pod)
        send(.getPod(pod), timeout: left(read.deadline))
        waiting = .read(next)
    }

    private mutating func readDone(_ read: Read, _ result: Result<Election.Observation, Failure>) {
        switch read.reader {
        case .watchEvent:
            switch result {
            case .success(let observation): watchEnded(.observed(observation), until: read.until)
            case .failure(let failure): watchEnded(.failed(failure), until: read.until)
            }
        case .election:
            switch result {
            case .success(let observation):
                out.append(.report(.read(observation.snapshot)))
                failuresInARow = 0
                if election.role == .standby { noteHolder(observation) }
                perform(electionStep(.observed(observation)))
            case .failure(let failure):
                if isConfiguration(failure, .read), election.role == .standby {
                    finish(.configurationError(failure.message))
                    return
                }
                failuresInARow += 1
                if failuresInARow == 1 || isAuthorization(failure) {
                    log(.warning, isAuthorization(failure) ? "cannot read lock: the API refused us after it had accepted us; retrying" : "cannot read lock",
                        LogField("error", .string(failure.message)))
                }
                perform(electionStep(.requestFailed(failure.message)))
            }
        }
    }

    // MARK: Failure classification

    private func isAuthorization(_ failure: Failure) -> Bool {
        failure.kind == .status(401) || failure.kind == .status(403) || failure.kind == .credentials
    }

    /// A failure retrying cannot fix: a standby ends (exit code 2). 401/403
    /// and unusable credentials only while that kind of request has never
    /// worked (start-up, or a Role without the verb): after it worked they
    /// are an outage and are retried every retry period, with a warning.
    private func isConfiguration(_ failure: Failure, _ verb: Verb) -> Bool {
        switch failure.kind {
        case .untrustedServer: true
        case .status(401), .status(403), .credentials: !authorized.contains(verb)
        default: false
        }
    }

    private func isLostRace(_ failure: Failure) -> Bool {
        failure.kind == .status(409) || failure.kind == .status(404)
    }

    // MARK: Writes

    private mutating func written(_ write: Write, sentAt: Instant, _ answer: Answer) {
        let action = writeAnswered(write, sentAt: sentAt, answer)
        if write.what == .create || write.what == .acquire {
            out.append(.endAcquire(won: election.role == .leading))
        }
        if write.what == .release, election.role == .released {
            if lastWriteSucceeded {
                log(.info, "released lock")
            } else {
                log(.warning, "could not release the lock before the renew deadline; standbys take it when its lease runs out")
            }
        }
        perform(action)
    }

    private mutating func writeAnswered(_ write: Write, sentAt: Instant, _ answer: Answer) -> Election.Action {
        lastWriteSucceeded = false
        let what = write.what.rawValue
        switch answer {
        case .ok(let object):
            authorized.insert(write.what == .create ? .create : .update)
            let snapshot = LockCodec.decode(config.kind, object: object)
            out.append(.report(.wrote(snapshot, sentAt: sentAt)))
            lastWriteSucceeded = true
            let wasLeading = election.role == .leading
            let before = election.lastRenew
            let action = electionStep(.written(snapshot))
            if !wasLeading, election.role != .leading, !election.isReleasing {
                // "Success" with someone else's record (or none): not ours.
                failuresInARow += 1
                if failuresInARow == 1 {
                    log(.warning, "the API server answered our write with a record we did not write",
                        LogField("op", .string(what)), LogField("lock.holder", .string(snapshot.holderDescription)),
                        LogField("resource_version", .string(snapshot.resourceVersion)))
                }
            } else if write.what == .renew, election.role == .leading, election.lastRenew == before {
                // A no-op update (whole-second times on a ConfigMap): same
                // resourceVersion, no watch event, so it does not count.
                log(.debug, "renew did not change the lock; it does not count", LogField("resource_version", .string(snapshot.resourceVersion)))
            } else {
                failuresInARow = 0
            }
            return action
        case .failed(let failure):
            out.append(.report(.writeFailed))
            if write.what == .create, failure.kind == .status(404) {
                // A create cannot lose a race with 404: the namespace does not
                // exist, or the API URL's path is wrong. Retrying cannot help.
                let message = "cannot create \(config.describe): the API server answered 404 Not Found (\(failure.message)). "
                    + "Does namespace '\(config.namespace)' exist? Check --namespace / POD_NAMESPACE, and that --api-server has no extra path."
                fatalOutcome = .configurationError(message)
                return .done
            }
            if isLostRace(failure) {
                // Losing a race to another replica is normal; the same
                // conflict again and again (a lock nobody else holds) is not.
                racesInARow += 1
                if racesInARow == 3 {
                    log(.warning, "lock writes keep conflicting; retrying every retry period",
                        LogField("op", .string(what)), LogField("error", .string(failure.message)))
                } else {
                    log(.debug, "lost a write race", LogField("op", .string(what)), LogField("error", .string(failure.message)))
                }
                return electionStep(.lostRace)
            }
            if isConfiguration(failure, write.what == .create ? .create : .update), election.role == .standby {
                fatalOutcome = .configurationError(failure.message)
                return .done
            }
            failuresInARow += 1
            // One warning per run of failures, not one per retry; a leader
            // warns at each, and an authorization outage at each.
            if failuresInARow == 1 || election.role == .leading || isAuthorization(failure) {
                log(.warning, "lock request failed", LogField("op", .string(what)), LogField("error", .string(failure.message)))
            }
            if failure.kind == .timedOut { return electionStep(.timedOut(failure.message)) }
            return electionStep(.requestFailed(failure.message))
        }
    }

    /// Logs a standby's view of the holder once per change, never per event.
    private mutating func noteHolder(_ observation: Election.Observation) {
        let holder = observation.snapshot?.holderDescription ?? ""
        if !holder.isEmpty, holder != election.identity { racesInARow = 0 }
        guard holder != loggedHolder else { return }
        loggedHolder = holder
        log(.info, holder.isEmpty ? "lock is free" : "lock is held by another replica", LogField("lock.holder", .string(holder)))
    }

    // MARK: The standby's watch

    /// How a standby's wait for a change ended.
    private enum WatchEnd: Sendable, Equatable {
        case deadline
        /// The deadline came while a watch was still being opened: paced
        /// like a failure, but quietly (a slow open is not an error).
        case deadlineWhileOpening
        case observed(Election.Observation)
        case failed(Failure)
    }

    /// A standby waits until `until`, watching the lock. Nil: blocked.
    private mutating func standbyWait(until: Instant) -> Election.Action? {
        if !watchOpen, let notBefore = watchNotBefore, now < notBefore {
            // Within a retry period of the last watch opened (or of a failed
            // one): no new one yet. The standby's own deadline may come first;
            // then it decides on what it saw.
            return sleep(until: min(until, notBefore), .beforeWatch(until: until, notBefore: notBefore))
        }
        return openingWatch(until: until)
    }

    private mutating func openingWatch(until: Instant) -> Election.Action? {
        // One watch opened per retry period while standing by, whatever ends
        // it: a read, a failure, or an open still in flight at the deadline.
        if !watchOpen { watchNotBefore = now + retryPeriod }
        return watchLoop(until: until)
    }

    /// The wait's loop: open the watch if needed, read it, until a change,
    /// a failure or the deadline. Nil: blocked on a request or a read.
    private mutating func watchLoop(until: Instant) -> Election.Action? {
        while now < until {
            if let expiry = watchExpiry, now >= expiry {
                log(.debug, "watch outlived its server timeout; reopening")
                stopWatching(keepingVersion: true)
            }
            if !watchOpen {
                // The open is cut to the deadline; a server that does not
                // answer it in `watchOpenTimeout` before then is a failure.
                let timeout = min(config.watchOpenTimeout, left(until))
                // A leader watches from its last write (or the last event).
                let from = watchResourceVersion ?? (election.role == .leading ? election.observed?.resourceVersion : nil)
                send(.watch(resourceVersion: from, timeoutSeconds: config.watchSeconds), timeout: timeout)
                waiting = .watchOpen(timeout: timeout, until: until)
                return nil
            }
            var readUntil = min(until, watchExpiry ?? until)
            if let heard = watchHeardAt { readUntil = min(readUntil, heard + config.bookmarkInterval * 2) }
            out.append(.readWatch(until: readUntil))
            waiting = .watchRead(until: until)
            return nil
        }
        return watchResult(.deadline, until: until)
    }

    private mutating func watchOpened(_ answer: Answer, timeout: Duration, until: Instant) {
        switch answer {
        case .ok:
            authorized.insert(.read)
            watchOpen = true
            watchOpenedAt = now
            watchHeardAt = now
            watchEvents = 0
            watchExpiry = now + .seconds(config.watchSeconds + 30)
            if let action = watchLoop(until: until) { perform(action) }
        case .failed(let failure):
            if failure.kind == .timedOut, timeout < config.watchOpenTimeout {
                watchEnded(.deadlineWhileOpening, until: until)
            } else {
                watchEnded(.failed(failure), until: until)
            }
        }
    }

    private mutating func watchRead(_ read: WatchRead, until: Instant) {
        if election.role == .leading, releaseRequested {
            // The host's wake-up ended the leader's read: release now.
            perform(electionStep(.releaseRequested))
            return
        }
        switch read {
        case .timedOut:
            if let heard = watchHeardAt, now >= heard + config.bookmarkInterval * 2, now < until {
                // No bytes, not even a bookmark, for two bookmark intervals:
                // the connection is presumed dead (half-open). Replace it, paced.
                stopWatching(keepingVersion: true)
                watchEnded(.failed(Failure(.timedOut, "the watch of \(config.describe) was silent for \(DurationText.format(config.bookmarkInterval * 2)) (no event, no bookmark)")), until: until)
                return
            }
            if let action = watchLoop(until: until) { perform(action) }
        case .ended:
            // The server closed the watch (timeoutSeconds): reopen from where
            // we were. One that ends at once (an empty answer) is a failure.
            let early = watchOpenedAt.map { $0.duration(to: now) < retryPeriod } ?? true
            stopWatching(keepingVersion: true)
            if early {
                watchEnded(.failed(Failure(.transport, "the watch of \(config.describe) ended right after it started")), until: until)
            } else if let action = watchLoop(until: until) {
                perform(action)
            }
        case .failed(let failure):
            stopWatching(keepingVersion: false)
            watchEnded(.failed(failure), until: until)
        case .line(let line):
            watchHeardAt = now
            guard let event = try? JSON.parse(line), let type = event["type"]?.stringValue, let object = event["object"] else {
                stopWatching(keepingVersion: false)
                watchEnded(.failed(Failure(.transport, "a watch event is not a JSON object with type and object: \(Self.quoted(String(line.prefix(200))))")), until: until)
                return
            }
            watchEvents += 1
            if let opened = watchOpenedAt {
                let periods = Int(opened.duration(to: now) / max(retryPeriod, .milliseconds(1)))
                if watchEvents > 10 &* (periods &+ 1) {
                    stopWatching(keepingVersion: false)
                    watchEnded(.failed(Failure(.transport, "the watch of \(config.describe) sends events faster than 10 per retry period")), until: until)
                    return
                }
            }
            handleEvent(type: type, object: object, until: until)
        }
    }

    /// One watch event: a change, a bookmark (go on reading), or a failure.
    private mutating func handleEvent(type: String, object: JSON, until: Instant) {
        func fail(_ why: String) -> WatchEnd {
            .failed(Failure(.transport, "watch of \(config.describe): \(why)"))
        }
        switch type {
        case "ADDED", "MODIFIED", "DELETED":
            guard object[path: "metadata", "name"]?.stringValue == config.name else {
                stopWatching(keepingVersion: false)
                watchEnded(fail("a \(type) event for another object, or without metadata"), until: until)
                return
            }
            let snapshot = LockCodec.decode(config.kind, object: object)
            if !snapshot.resourceVersion.isEmpty { watchResourceVersion = snapshot.resourceVersion }
            if type == "DELETED" { watchEnded(.observed(.absent), until: until); return }
            // A leader needs no owner Pod: a record not ours is not ours.
            if election.role == .leading { watchEnded(.observed(.present(snapshot)), until: until); return }
            let read = Read(step: .get, reader: .watchEvent, deadline: now + min(.seconds(10), retryPeriod), until: until)
            checkOwner(read, .present(snapshot))
        case "BOOKMARK":
            if let rv = object[path: "metadata", "resourceVersion"]?.stringValue, !rv.isEmpty { watchResourceVersion = rv }
            if let action = watchLoop(until: until) { perform(action) }
        case "ERROR":
            // Typically 410 Expired: the version is too old. Read again (paced).
            let code = object["code"]?.intValue.map(String.init) ?? "?"
            stopWatching(keepingVersion: false)
            watchEnded(fail("error \(code): \(object["message"]?.stringValue ?? "(no message)")"), until: until)
        default:
            stopWatching(keepingVersion: false)
            watchEnded(fail("unknown event type \(Self.quoted(String(type.prefix(40))))"), until: until)
        }
    }

    private mutating func watchEnded(_ end: WatchEnd, until: Instant) {
        if let action = watchResult(end, until: until) { perform(action) }
    }

    /// What the election does after its wait: the runner's part.
    private mutating func watchResult(_ end: WatchEnd, until: Instant) -> Election.Action? {
        switch end {
        case .deadline:
            watchFailuresInARow = 0
            return electionStep(.timer)
        case .deadlineWhileOpening:
            watchNotBefore = now + retryPeriod
            return electionStep(.timer)
        case .observed(let observation):
            out.append(.report(.watched(observation.snapshot)))
            watchFailuresInARow = 0
            if election.role == .leading { return leaderSaw(observation, until: until) }
            noteHolder(observation)
            return electionStep(.observed(observation))
        case .failed(let failure):
            out.append(.report(.watchFailed))
            if election.role == .leading {
                // The renews go on as before the watch; watch again after a
                // retry period (no read: each renew refreshes our view).
                watchFailuresInARow += 1
                if watchFailuresInARow == 1 {
                    log(.warning, "the leader's watch failed; renewing as usual, watching again after a retry period",
                        LogField("error", .string(failure.message)))
                }
                watchNotBefore = now + retryPeriod
                return leaderWait(until: until)
            }
            if isConfiguration(failure, .read) {
                fatalOutcome = .configurationError(failure.message)
                return .done
            }
            // Counted apart from reads: the paced read after each failure
            // succeeds, and must not turn every failure into a new warning.
            watchFailuresInARow += 1
            if watchFailuresInARow == 1 {
                log(.warning, "watch failed; retrying", LogField("error", .string(failure.message)))
            }
            // Read again (and watch from there) after the retry period: at
            // most one read and one watch per retry period after any error.
            watchNotBefore = now + retryPeriod
            return sleep(until: Self.afterWatchFailure(until: until, now: now, retryPeriod: retryPeriod, lastRead: lastReadAt),
                         .afterWatchFailure)
        }
    }

    /// What the leader's watch showed. Our own writes, and edits that leave
    /// our record and name no new preferred holder, wait for the next renew
    /// (which meets them as it did before the watch). A deletion, another
    /// holder, or another preferred holder newly named go to the election at
    /// once (it loses, or hands over and renews on the new version), at most
    /// once per retry period; later ones meanwhile wait for the renew.
    private mutating func leaderSaw(_ observation: Election.Observation, until: Instant) -> Election.Action? {
        let known = election.observed
        if let s = observation.snapshot {
            let ours = s.record?.holderIdentity == election.identity
            let named = s.preferredHolder.map { $0 != election.identity && $0 != known?.preferredHolder } ?? false
            if s.resourceVersion == known?.resourceVersion || (ours && !named) { return leaderWait(until: until) }
        }
        if let at = leaderActedAt, now < at + retryPeriod { return leaderWait(until: until) }
        leaderActedAt = now
        log(.info, "the leader's watch saw the lock change; acting on it before the next renew",
            LogField("lock.holder", .string(observation.snapshot?.holderDescription ?? "(deleted)")),
            LogField("lock.preferred_holder", .string(observation.snapshot?.preferredHolder ?? "")))
        return electionStep(.observed(observation))
    }

    /// When the read after a failed watch may go out: the standby's deadline
    /// or a retry period after the failure, whichever is first, but never
    /// sooner than a retry period after the previous read.
    static func afterWatchFailure(until: Instant, now: Instant, retryPeriod: Duration, lastRead: Instant?) -> Instant {
        var at = min(until, now + retryPeriod)
        if let lastRead { at = max(at, lastRead + retryPeriod) }
        return at
    }

    static func quoted(_ s: String) -> String {
        let cut = s.count > 80 ? String(s.prefix(80)) + "…" : s
        return "\"" + cut + "\""
    }

    private mutating func closeWatch() { stopWatching(keepingVersion: false) }

    private mutating func stopWatching(keepingVersion: Bool) {
        if watchOpen { out.append(.closeWatch) }
        watchOpen = false
        watchExpiry = nil
        watchOpenedAt = nil
        watchHeardAt = nil
        if !keepingVersion { watchResourceVersion = nil }
    }
}

extension Election.Observation {
    /// The object, nil when the lock is absent.
    public var snapshot: LockSnapshot? {
        if case .present(let s) = self { return s }
        return nil
    }
}
