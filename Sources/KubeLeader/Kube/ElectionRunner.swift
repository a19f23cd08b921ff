import KLCore
import KLSupport

/// The lock object in the API server (client-go's `resourcelock.Interface`):
/// a ConfigMap or a Lease. Implementations do the I/O; the election decides.
/// Failures are `KubeError`s; what the runner does next is the error's
/// `disposition`, derived from its code.
public protocol LockStore: AnyObject {
    /// "configmap default/my-lock", for logs.
    var describe: String { get }
    func get(timeout: Duration) throws(KubeError) -> Election.Observation
    func create(_ record: LeaderElectionRecord, timeout: Duration) throws(KubeError) -> LockSnapshot
    func update(_ record: LeaderElectionRecord, base: LockSnapshot, timeout: Duration) throws(KubeError) -> LockSnapshot
    /// Standbys: blocks until the lock changes (a watch event) or `deadline`
    /// (on the runner's clock) passes. `known` is what we saw last (its resourceVersion is where a
    /// watch resumes). Throws when the watch fails.
    func waitForChange(known: LockSnapshot?, deadline: MonotonicClock.Instant) throws(KubeError) -> LockChange
    /// Ends any open watch (a leader does not watch).
    func stopWatching()
    /// Whether a watch is open: the next `waitForChange` continues it rather
    /// than opening one. (A read ends the watch: it restarts from the read.)
    var isWatching: Bool { get }
}

/// How a standby's wait for a change of the lock ended (`LockStore.waitForChange`).
public enum LockChange: Sendable, Equatable {
    /// The lock changed (a watch event, or a read after one).
    case observed(Election.Observation)
    /// The deadline came. An open watch stays open for the next wait.
    case deadline
    /// The deadline came while a watch was still being opened: no watch is
    /// open, and the next one must not follow this attempt within a retry
    /// period (the runner paces it as after a failed watch, but quietly: a
    /// slow open is not an error).
    case deadlineWhileOpening
}

/// What the election loop needs from the rest of the process, besides the
/// time (the runner's injected clocks): a pause that a release request
/// ends, and the callbacks to the supervisor.
public protocol ElectionHost: AnyObject {
    /// A leader's pause until its next renew. Returns early, with true, when
    /// the supervisor asks to release (the child has exited).
    /// - Important: `until` is on the runner's clock; the host waits on the
    ///   same clock (the real host: the real monotonic clock, in a `poll` on
    ///   its wake-up pipe; tests: the virtual clock they give the runner).
    func pause(until: MonotonicClock.Instant) -> Bool
    /// Whether the supervisor wants the lock released (child exited, or
    /// kube-leader is shutting down).
    var releaseRequested: Bool { get }
    /// We hold the lock: start the child.
    func becameLeader()
    /// We lost the lock: stop the child.
    func lostLeadership(reason: String)
    /// Before an acquiring write (create, or update as a standby): may it be
    /// sent? False once kube-leader is stopping; then nothing is sent. A true
    /// answer marks the write in flight until `endAcquire`, so a stopping
    /// supervisor waits for its outcome (and the release of a lock it took).
    func beginAcquire() -> Bool
    /// The acquiring write is over; `won` when it took the lock.
    func endAcquire(won: Bool)
    /// A write that holds the lock succeeded (the acquire, each counted renew);
    /// `sentAt` is when it was sent. The supervisor's own deadline runs from it.
    func renewed(sentAt: MonotonicClock.Instant)
}

extension ElectionHost {
    public func beginAcquire() -> Bool { !releaseRequested }
    public func endAcquire(won: Bool) {}
    public func renewed(sentAt: MonotonicClock.Instant) {}
}

/// Runs the election: carries out each `Election.Action` against the lock
/// and feeds the outcome back, until the election is over.
/// - Important: not thread-safe; once `run()` starts, only its thread touches it.
public final class ElectionRunner: @unchecked Sendable {
    public enum Outcome: Sendable, Equatable {
        /// We led and gave the lock back (or never led and were asked to stop).
        case released
        /// We led and lost the lock.
        case lost(reason: String)
        /// A configuration problem that retrying cannot fix (exit code 2).
        case configurationError(String)
    }

    public private(set) var election: Election
    let store: any LockStore
    let host: any ElectionHost
    let logger: Logger
    /// Upper bound of one request when no deadline is closer.
    let requestTimeout: Duration
    /// The election's time: expiry, renew deadlines, pacing.
    let clock: any BlockingClock<MonotonicInstant>
    /// Written into the record (`acquireTime`, `renewTime`) for humans only.
    let wallClock: any BlockingClock<WallTime>
    private var loggedHolder: String?
    private var failuresInARow = 0
    /// Conflicts in a row not explained by another holder (see `write`).
    private var racesInARow = 0
    private var watchFailuresInARow = 0
    private var lastWriteSucceeded = false
    /// When the last read (GET) was started: after a watch failure, the next
    /// read is not sent sooner than a retry period later.
    private var lastReadAt: MonotonicClock.Instant?
    /// After a watch failure: no watch (re)opened before this instant (the
    /// failed one was opened before the failure, maybe inside the store).
    private var watchNotBefore: MonotonicClock.Instant?
    /// Set when a standby meets an error retrying cannot fix; `run` returns it.
    private var fatalOutcome: Outcome?

    /// `clock`: where the election reads the time (default: the real
    /// monotonic clock; tests pass a `VirtualClock`). The store's and the
    /// host's waits must run on the same clock. `wallClock` only dates the
    /// record.
    public init(election: Election, store: any LockStore, host: any ElectionHost, logger: Logger,
                requestTimeout: Duration = .seconds(10),
                clock: any BlockingClock<MonotonicInstant> = MonotonicClock(),
                wallClock: any BlockingClock<WallTime> = WallClock()) {
        self.election = election
        self.store = store
        self.host = host
        self.logger = logger
        self.requestTimeout = requestTimeout
        self.clock = clock
        self.wallClock = wallClock
    }

    /// The loop. Returns when the election is over.
    public func run() -> Outcome {
        var action = step(.start)
        while true {
            switch action {
            case .done:
                store.stopWatching()
                if let fatalOutcome { return fatalOutcome }
                return election.role == .lost ? .lost(reason: "lost") : .released

            case .lostLeadership(let reason):
                logger.error("leadership lost", ("reason", .string(reason)))
                host.lostLeadership(reason: reason)
                store.stopWatching()
                return .lost(reason: reason)

            case .becameLeader(let renewAt):
                store.stopWatching()
                logger.notice("acquired lock",
                              ("lock.holder", .string(election.identity)),
                              ("lock.transitions", JSON(election.observed?.record?.leaderTransitions ?? 0)))
                loggedHolder = election.identity
                host.becameLeader()
                action = pause(until: renewAt)

            case .wait(let until):
                if election.role == .leading {
                    action = pause(until: until)
                } else {
                    if host.releaseRequested { action = step(.releaseRequested); continue }
                    action = watch(until: until)
                }

            case .get:
                let timeout = self.timeout()
                lastReadAt = clock.now
                do {
                    let observation = try store.get(timeout: timeout)
                    failuresInARow = 0
                    if election.role == .standby { noteHolder(observation) }
                    action = step(.observed(observation))
                } catch {
                    if let outcome = readFailed(error) { return outcome }
                    action = step(.requestFailed(error.description))
                }

            case .create(let record):
                // Not sent: as if it failed; the next wait sees the release request.
                guard host.beginAcquire() else { action = step(.requestFailed("kube-leader is stopping")); continue }
                action = write("create") { (t) throws(KubeError) in try store.create(record, timeout: t) }
                host.endAcquire(won: election.role == .leading)

            case .update(let record, let base):
                let what = record.isReleased ? "release" : (election.role == .leading ? "renew" : "acquire")
                if what == "acquire", !host.beginAcquire() { action = step(.requestFailed("kube-leader is stopping")); continue }
                action = write(what) { (t) throws(KubeError) in try store.update(record, base: base, timeout: t) }
                if what == "acquire" { host.endAcquire(won: election.role == .leading) }
                if what == "release", election.role == .released {
                    if lastWriteSucceeded {
                        logger.info("released lock")
                    } else {
                        logger.warning("could not release the lock before the renew deadline; standbys take it when its lease runs out")
                    }
                }
            }
        }
    }

    private func step(_ event: Election.Event) -> Election.Action {
        let before = election.lastRenew
        let action = election.step(event, now: clock.now, wall: wallClock.now)
        // The supervisor keeps its own renew deadline from these send times.
        if election.role == .leading, let sentAt = election.lastRenew, sentAt != before {
            host.renewed(sentAt: sentAt)
        }
        return action
    }

    /// A request's timeout: the usual bound, cut to the renew deadline.
    private func timeout() -> Duration {
        guard let deadline = election.renewDeadline else { return requestTimeout }
        let left = clock.now.duration(to: deadline)
        return max(.milliseconds(1), min(requestTimeout, left))
    }

    private func write(_ what: String, _ body: (Duration) throws(KubeError) -> LockSnapshot) -> Election.Action {
        lastWriteSucceeded = false
        do {
            let snapshot = try body(timeout())
            lastWriteSucceeded = true
            let wasLeading = election.role == .leading
            let before = election.lastRenew
            let action = step(.written(snapshot))
            if !wasLeading, election.role != .leading, !election.isReleasing {
                // "Success" with someone else's record (or none): not ours.
                failuresInARow += 1
                if failuresInARow == 1 {
                    logger.warning("the API server answered our write with a record we did not write",
                                   ("op", .string(what)), ("lock.holder", .string(snapshot.holderDescription)),
                                   ("resource_version", .string(snapshot.resourceVersion)))
                }
            } else if what == "renew", election.role == .leading, election.lastRenew == before {
                // A no-op update (whole-second times on a ConfigMap): same
                // resourceVersion, no watch event, so it does not count.
                logger.debug("renew did not change the lock; it does not count", ("resource_version", .string(snapshot.resourceVersion)))
            } else {
                failuresInARow = 0
            }
            return action
        } catch {
            switch error.disposition {
            case .lostRace:
                // Losing a race to another replica is normal; the same
                // conflict again and again (a lock nobody else holds) is not.
                racesInARow += 1
                if racesInARow == 3 {
                    logger.warning("lock writes keep conflicting; retrying every retry period",
                                   ("op", .string(what)), ("error", .string(error.description)))
                } else {
                    logger.debug("lost a write race", ("op", .string(what)), ("error", .string(error.description)))
                }
                return step(.lostRace)
            case .configuration where election.role == .standby:
                fatalOutcome = .configurationError(error.description)
                return .done
            case .configuration, .transient:
                failuresInARow += 1
                // One warning per run of failures, not one per retry.
                if failuresInARow == 1 || election.role == .leading {
                    logger.warning("lock request failed",
                                   ("op", .string(what)), ("error", .string(error.description)))
                }
                return step(.requestFailed(error.description))
            }
        }
    }

    /// A failed GET. Configuration errors end a standby at once (nothing is
    /// held); anything else is logged once per run of failures and retried
    /// (a leader keeps retrying until its renew deadline).
    private func readFailed(_ error: KubeError) -> Outcome? {
        if error.disposition == .configuration, election.role == .standby { return .configurationError(error.description) }
        failuresInARow += 1
        if failuresInARow == 1 {
            logger.warning("cannot read lock", ("error", .string(error.description)))
        }
        return nil
    }

    private func pause(until: MonotonicClock.Instant) -> Election.Action {
        if election.isReleasing {
            // A release being retried: the request is known, sleep for real.
            _ = host.pause(until: until)
            return step(.timer)
        }
        if host.releaseRequested || host.pause(until: until) {
            return step(.releaseRequested)
        }
        return step(.timer)
    }

    /// Logs a standby's view of the holder once per change, never per event.
    private func noteHolder(_ observation: Election.Observation) {
        let holder: String
        switch observation {
        case .absent: holder = ""
        case .present(let s): holder = s.holderDescription
        }
        if !holder.isEmpty, holder != election.identity { racesInARow = 0 }
        guard holder != loggedHolder else { return }
        loggedHolder = holder
        logger.info(holder.isEmpty ? "lock is free" : "lock is held by another replica", ("lock.holder", .string(holder)))
    }

    /// Standby: watch the lock until `until`; log each change of holder once.
    private func watch(until: MonotonicClock.Instant) -> Election.Action {
        let opens = !store.isWatching
        if opens, let notBefore = watchNotBefore, clock.now < notBefore {
            // Within a retry period of the last watch opened (or of a failed
            // one): no new one yet. The standby's own deadline may come first;
            // then it decides on what it saw (an acquiring write at expiry is
            // in its budget).
            if host.pause(until: min(until, notBefore)) { return step(.releaseRequested) }
            if clock.now < notBefore { return step(.timer) }
        }
        // One watch opened per retry period while standing by, whatever ends
        // it: a read (which restarts the watch from its version), a failure,
        // or an open still in flight at the deadline.
        if opens { watchNotBefore = clock.now + election.timing.retryPeriod }
        do {
            switch try store.waitForChange(known: election.observed, deadline: until) {
            case .deadline:
                watchFailuresInARow = 0
                return step(.timer)
            case .deadlineWhileOpening:
                // Not a failure, but the next watch is paced like one (from
                // now, not from when this one was sent).
                watchNotBefore = clock.now + election.timing.retryPeriod
                return step(.timer)
            case .observed(let observation):
                watchFailuresInARow = 0
                noteHolder(observation)
                return step(.observed(observation))
            }
        } catch {
            if error.disposition == .configuration { fatalOutcome = .configurationError(error.description); return .done }
            // Counted apart from reads: the paced read after each failure
            // succeeds, and must not turn every failure into a new warning.
            watchFailuresInARow += 1
            if watchFailuresInARow == 1 {
                logger.warning("watch failed; retrying", ("error", .string(error.description)))
            }
            // Read again (and watch from there) after the retry period: at
            // most one read and one watch per retry period after any error.
            // The standby's own deadline (`until`) may come sooner, but not
            // the next read and watch: never within a retry period of the
            // previous ones (the acquiring write at expiry follows that read).
            watchNotBefore = clock.now + election.timing.retryPeriod
            if host.pause(until: Self.afterWatchFailure(until: until, now: clock.now, retryPeriod: election.timing.retryPeriod,
                                                       lastRead: lastReadAt)) {
                return step(.releaseRequested)
            }
            return .get
        }
    }

    /// When the read after a failed watch may go out: the standby's deadline
    /// or a retry period after the failure, whichever is first, but never
    /// sooner than a retry period after the previous read. (The next watch
    /// waits for `watchNotBefore`.)
    static func afterWatchFailure(until: MonotonicClock.Instant, now: MonotonicClock.Instant, retryPeriod: Duration,
                                  lastRead: MonotonicClock.Instant?) -> MonotonicClock.Instant {
        var at = min(until, now + retryPeriod)
        if let lastRead { at = max(at, lastRead + retryPeriod) }
        return at
    }
}
