/// Leader election as a pure state machine: events in, actions out.
///
/// A port of client-go's `tools/leaderelection` (`tryAcquireOrRenew`,
/// `renew`, `release`) without its I/O: the caller (the election loop in
/// `Main`) performs each `Action` against the lock and reports the outcome as
/// the next `Event`, passing the time. Tests drive it with made-up instants.
///
/// ## Guarantees
/// - A candidate only takes a lock that is absent, released (empty holder), or
///   whose record has not changed for its lease duration *by this process's
///   monotonic clock* since this process first saw that record. Timestamps in
///   the record are never trusted (clocks of other nodes may be skewed).
/// - Every write carries the `resourceVersion` it read, so of several
///   candidates racing for one record exactly one write succeeds.
/// - A leader reports `.lostLeadership` when `renewDeadline` has passed since
///   it *sent* its last successful renew. Another candidate cannot see the
///   lease expire before `leaseDuration` after it observed that renew, which is
///   later than the send. The supervisor kills the child by
///   `renewDeadline + killGrace < leaseDuration`.
///
/// ## Non-guarantees
/// - No fencing: a leader that is frozen (SIGSTOP, a VM pause) longer than the
///   lease can wake up still running its child while another leader runs.
/// - Clocks must run at the same *rate* on every node (skew of the absolute
///   time is harmless).
/// - A record held by our own identity that this process did not write is
///   treated as someone else's (it waits for it to expire), because two
///   replicas with the same identity would otherwise both lead.
public struct Election: Sendable {
    public typealias Instant = MonotonicClock.Instant

    public struct Timing: Sendable, Equatable {
        public var leaseDuration: Duration
        public var renewDeadline: Duration
        public var retryPeriod: Duration

        public init(leaseDuration: Duration, renewDeadline: Duration, retryPeriod: Duration) {
            self.leaseDuration = leaseDuration
            self.renewDeadline = renewDeadline
            self.retryPeriod = retryPeriod
        }
    }

    /// What the lock looked like: read by GET or delivered by a watch.
    public enum Observation: Sendable, Equatable {
        case absent
        case present(LockSnapshot)
    }

    public enum Event: Sendable, Equatable {
        /// The first step: nothing is known yet.
        case start
        /// The lock as read by a GET or delivered by a watch.
        case observed(Observation)
        /// Our create or update succeeded; the object the server returned.
        case written(LockSnapshot)
        /// Our create (AlreadyExists) or update (Conflict) lost to another writer.
        case lostRace
        /// The request failed for another reason (timeout, 5xx, connection).
        case requestFailed(String)
        /// The time of the last `.wait(until:)` has come.
        case timer
        /// The child has exited: give the lock up.
        case releaseRequested
    }

    public enum Action: Sendable, Equatable {
        /// Read the lock (GET).
        case get
        /// Create the lock object holding `record`.
        case create(LeaderElectionRecord)
        /// Write `record` into `base.object` with `base.resourceVersion`.
        case update(LeaderElectionRecord, base: LockSnapshot)
        /// Nothing to do until `until`, unless an observation arrives first
        /// (standbys watch the lock meanwhile; a leader just waits).
        case wait(until: Instant)
        /// We hold the lock now: start the child, then wait until `renewAt`.
        case becameLeader(renewAt: Instant)
        /// We no longer hold the lock (or cannot prove it): stop the child.
        case lostLeadership(reason: String)
        /// Released, or nothing was held: the election is over.
        case done
    }

    public enum Role: Sendable, Equatable {
        case standby, leading, released, lost
    }

    enum Pending: Sendable, Equatable {
        case acquire(sentAt: Instant)
        case renew(sentAt: Instant)
        case release
    }

    public let identity: String
    public let timing: Timing
    public private(set) var role: Role = .standby
    /// The last lock state we saw, and when this process first saw its record.
    public private(set) var observed: LockSnapshot?
    private var observedAt: Instant?
    /// Our own copy of the lock after our last successful write (leader).
    private var base: LockSnapshot?
    /// Send time of the last successful acquire or renew.
    public private(set) var lastRenew: Instant?
    private var pending: Pending?
    private var releaseAfterWrite = false

    public init(identity: String, timing: Timing) {
        self.identity = identity
        self.timing = timing
    }

    /// The holder of the lock as last seen ("" when released or unknown).
    public var observedHolder: String? { observed?.record?.holderIdentity }

    /// While leading: the instant by which a renew must have succeeded. Bound
    /// every request's timeout by it so the deadline is never missed.
    public var renewDeadline: Instant? {
        guard role == .leading, let lastRenew else { return nil }
        return lastRenew + timing.renewDeadline
    }

    /// Feeds one event and returns what to do next. `wall` is only written
    /// into records for people to read.
    public mutating func step(_ event: Event, now: Instant, wall: WallTime) -> Action {
        switch role {
        case .standby: return standby(event, now: now, wall: wall)
        case .leading: return leading(event, now: now, wall: wall)
        case .released, .lost: return .done
        }
    }

    // MARK: Standby

    private mutating func standby(_ event: Event, now: Instant, wall: WallTime) -> Action {
        switch event {
        case .start:
            return .get
        case .releaseRequested:
            // Nothing held; if an acquire is in flight, give it up as soon as it lands.
            if pending != nil { releaseAfterWrite = true; return .wait(until: now) }
            role = .released
            return .done
        case .observed(let observation):
            pending = nil
            note(observation, now: now)
            if releaseAfterWrite { role = .released; return .done }
            return decide(now: now, wall: wall)
        case .timer:
            return observed == nil && observedAt == nil ? .get : decide(now: now, wall: wall)
        case .lostRace:
            // Someone else wrote first: read what they wrote.
            pending = nil
            if releaseAfterWrite { role = .released; return .done }
            return .get
        case .requestFailed:
            pending = nil
            if releaseAfterWrite { role = .released; return .done }
            return .wait(until: now + timing.retryPeriod)
        case .written(let snapshot):
            guard case .acquire(let sentAt) = pending else { return decide(now: now, wall: wall) }
            pending = nil
            role = .leading
            lastRenew = sentAt
            base = snapshot
            note(.present(snapshot), now: now)
            if releaseAfterWrite { return release(now: now, wall: wall) }
            return .becameLeader(renewAt: sentAt + timing.retryPeriod)
        }
    }

    /// Remembers an observation; a changed record restarts its expiry clock.
    private mutating func note(_ observation: Observation, now: Instant) {
        switch observation {
        case .absent:
            observed = nil
            observedAt = now
        case .present(let snapshot):
            if observed?.fingerprint != snapshot.fingerprint || observedAt == nil || observed == nil {
                observedAt = now
            }
            observed = snapshot
        }
    }

    /// client-go `tryAcquireOrRenew` steps 1–3 for a standby.
    private mutating func decide(now: Instant, wall: WallTime) -> Action {
        // 1. No lock object: create it.
        guard let snapshot = observed else {
            guard observedAt != nil else { return .get }
            pending = .acquire(sentAt: now)
            return .create(LeaderElectionRecord(
                holderIdentity: identity, leaseDurationSeconds: leaseSeconds,
                acquireTime: wall, renewTime: wall, leaderTransitions: 0))
        }
        let seenAt = observedAt ?? now
        // 2. Held and not yet expired by our clock: wait for it to expire.
        var previousTransitions = 0
        switch snapshot.state {
        case .none:
            break  // nobody holds it
        case .unreadable:
            // Treat as held until it has not changed for our lease duration.
            let expiry = seenAt + timing.leaseDuration
            if now < expiry { return .wait(until: expiry) }
        case .readable(let record):
            previousTransitions = record.leaderTransitions
            if !record.isReleased {
                let seconds = record.leaseDurationSeconds > 0 ? Duration.seconds(record.leaseDurationSeconds) : timing.leaseDuration
                let expiry = seenAt + seconds
                if now < expiry { return .wait(until: expiry) }
            }
        }
        // 3. Absent holder or expired: take it over with the resourceVersion we read.
        var record = snapshot.record ?? LeaderElectionRecord(
            holderIdentity: "", leaseDurationSeconds: 0, acquireTime: nil, renewTime: nil, leaderTransitions: 0)
        record.holderIdentity = identity
        record.leaseDurationSeconds = leaseSeconds
        record.acquireTime = wall
        record.renewTime = wall
        record.leaderTransitions = snapshot.record == nil ? 0 : previousTransitions + 1
        pending = .acquire(sentAt: now)
        return .update(record, base: snapshot)
    }

    private var leaseSeconds: Int { max(1, Int((timing.leaseDuration.seconds).rounded(.up))) }

    // MARK: Leading

    private mutating func leading(_ event: Event, now: Instant, wall: WallTime) -> Action {
        let deadline = renewDeadline!
        switch event {
        case .releaseRequested:
            return release(now: now, wall: wall)
        case .written(let snapshot):
            let wasRelease = pending == .release
            if case .renew(let sentAt) = pending { lastRenew = sentAt }
            pending = nil
            base = snapshot
            observed = snapshot
            if wasRelease { role = .released; return .done }
            return .wait(until: lastRenew! + timing.retryPeriod)
        case .lostRace:
            if pending == .release { pending = nil; role = .released; return .done }
            pending = nil
            return now >= deadline ? lose("renew deadline passed") : .get
        case .requestFailed(let reason):
            if pending == .release { pending = nil; role = .released; return .done }
            pending = nil
            if now >= deadline { return lose("could not renew within \(DurationText.format(timing.renewDeadline)): \(reason)") }
            return .wait(until: min(now + timing.retryPeriod, deadline))
        case .observed(.absent):
            return lose("the lock object was deleted")
        case .observed(.present(let snapshot)):
            pending = nil
            guard let record = snapshot.record, record.holderIdentity == identity else {
                let holder = snapshot.record?.holderIdentity ?? "an unreadable record"
                return lose("the lock is now held by \(holder.isEmpty ? "nobody (released)" : holder)")
            }
            // Still ours (someone else changed another field): renew on the new version.
            base = snapshot
            observed = snapshot
            return now >= deadline ? lose("renew deadline passed") : renew(now: now, wall: wall)
        case .timer, .start:
            if now >= deadline { return lose("could not renew within \(DurationText.format(timing.renewDeadline))") }
            return renew(now: now, wall: wall)
        }
    }

    private mutating func renew(now: Instant, wall: WallTime) -> Action {
        guard let base, var record = base.record else { return lose("our own record is unreadable") }
        record.renewTime = wall
        record.leaseDurationSeconds = leaseSeconds
        pending = .renew(sentAt: now)
        return .update(record, base: base)
    }

    /// client-go `release`: empty holder, lease of one second, so standbys take
    /// over at once instead of waiting for the lease to expire.
    private mutating func release(now: Instant, wall: WallTime) -> Action {
        guard let base, var record = base.record, let deadline = renewDeadline, now < deadline else {
            role = .released
            return .done
        }
        record.holderIdentity = ""
        record.leaseDurationSeconds = 1
        record.acquireTime = wall
        record.renewTime = wall
        pending = .release
        return .update(record, base: base)
    }

    private mutating func lose(_ reason: String) -> Action {
        role = .lost
        pending = nil
        return .lostLeadership(reason: reason)
    }
}
