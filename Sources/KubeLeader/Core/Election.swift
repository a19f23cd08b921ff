/// Leader election as a pure state machine: events in, actions out.
///
/// A port of client-go's `tools/leaderelection` (`tryAcquireOrRenew`,
/// `renew`, `release`) without its I/O: the caller (`ElectionRunner`)
/// performs each `Action` against the lock and reports the outcome as the
/// next `Event`, passing the time. Tests drive it with made-up instants.
///
/// ## Guarantees
/// - A candidate only takes a lock that is absent, released (empty holder), or
///   whose record has not changed for its lease duration *by this process's
///   monotonic clock* since this process first saw that record. Timestamps in
///   the record are never trusted (clocks of other nodes may be skewed).
/// - **A hold ended by anyone but its holder is waited out.** When a lock this
///   process saw held is deleted, loses its record, or has its holder cleared
///   by a record that is not a holder's release (client-go's release record:
///   empty holder, `leaseDurationSeconds` 1, transitions kept), it stays held
///   until one lease (the held record's) after this process saw that change.
///   The old leader may still run its child that long: it learns of the
///   change only at its next renew.
/// - **Another writer never shortens a wait** (docs/safety.md, "Other writers"). A change
///   of the record that names another holder, or a shorter lease for the same
///   holder (`kubectl edit`, an operator tool, a mutating webhook), counts as
///   held until the lease of the hold this process saw before it, counted
///   from the change (`heldUntil`), even when that hold had expired by our
///   clock (we may have been cut off from its renews) or was a lost race. A
///   leader whose write is answered with another holder or a shorter lease
///   than it wrote has lost (stop the child at once).
/// - An unreadable or absurd record (lease beyond `LockBounds`, a holder or
///   spec of the wrong type) is held, never free; counters are clamped.
/// - A lock of the original kube-leader (ConfigMap owned by its leader Pod,
///   `LockRecordState.ownerPod`) is held while that Pod exists, re-checked
///   once per lease.
/// - Every write carries the `resourceVersion` it read, so of several
///   candidates racing for one record exactly one write succeeds; a write is
///   a success only if the server answered with *our* record.
/// - A leader reports `.lostLeadership` when `renewDeadline` has passed since
///   it *sent* its last successful renew. A renew is successful only if the
///   server answered with our record under a **new** resourceVersion (a no-op
///   update keeps the version and sends no watch event: nobody saw it).
///   Another candidate cannot see the lease expire before `leaseDuration`
///   after it observed that renew, which is later than the send. The
///   supervisor kills the child by `renewDeadline + killGrace < leaseDuration`.
/// - **A lost race is a hold seen.** An acquiring write that loses (409, 404)
///   proves someone else wrote the lock; if the re-read then finds it
///   deleted or cleared (not a holder's release), it is waited out for one
///   lease like any hold this process saw.
/// - Pacing: after a failed or lost write, the next write waits at least one
///   retry period (one immediate read is allowed, to learn who won). One
///   exception: a leader whose renew conflicted and whose re-read shows its
///   record as it wrote it under a new resourceVersion (someone edited
///   another field: an annotation, the preferred holder) renews again at
///   once, at most once per retry period.
/// - A release that fails (5xx, timeout) or conflicts (re-read first) is
///   retried every retry period until the renew deadline.
///
/// - **Hand-over when asked** (docs/safety.md, "Hand over when asked"). A leader that sees the
///   lock's preferred holder (`LockSnapshot.preferredHolder`: Lease
///   `spec.preferredHolder`, or the ConfigMap annotation
///   `kube-leader.io/preferred-holder`) change, while it leads, to another
///   identity sets `handOverTo`; it goes on renewing until the supervisor,
///   once the child's group is gone, asks for the release (which keeps every
///   field it does not own, `strategy` and `preferredHolder` included). A
///   name that was already there when it took the lock, or that it saw
///   before, never makes it yield again (no ping-pong when the named replica
///   does not exist). A standby that is not the named one waits one lease
///   (ours) after it first saw a released record naming another preferred
///   holder before it takes it; the named one takes it at once. Waiting
///   longer never makes two holders: the safety of a release is unchanged.
///
/// ## Non-guarantees
/// - No fencing: a leader that is frozen (SIGSTOP, a VM pause) longer than the
///   lease can wake up still running its child while another leader runs.
/// - Clocks must run at the same *rate* on every node (skew of the absolute
///   time is harmless).
/// - A replica that never saw the lock held cannot tell a deleted lock from a
///   new one: it creates it at once (the old leader stops at its next renew).
/// - Someone who writes a release record by hand is taken for the holder.
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

    /// What the lock looked like: read (a LIST, or a GET) or delivered by a watch.
    public enum Observation: Sendable, Equatable {
        case absent
        indirect case present(LockSnapshot)
    }

    public enum Event: Sendable, Equatable {
        /// The first step: nothing is known yet.
        case start
        /// The lock as read (a LIST, or a GET) or delivered by a watch.
        indirect case observed(Observation)
        /// Our create or update was answered 2xx with this object. It counts
        /// only if it holds our record (and, for a renew, a new
        /// resourceVersion); anything else is taken as what the server showed.
        indirect case written(LockSnapshot)
        /// Our create (AlreadyExists) or update (Conflict, NotFound) lost to
        /// another writer: read at once, write again after a retry period.
        case lostRace
        /// The request failed for another reason (timeout, 5xx, connection).
        case requestFailed(String)
        /// The request got no answer within its timeout (a dead kept-alive
        /// connection, a server that hangs). A leader's renew is tried again
        /// at once, on a fresh connection (its timeout left room for it);
        /// anything else is paced like `requestFailed`.
        case timedOut(String)
        /// The time of the last `.wait(until:)` has come.
        case timer
        /// The child has exited: give the lock up.
        case releaseRequested
    }

    public enum Action: Sendable, Equatable {
        /// Read the lock (`LockSession` sends a LIST, or a GET while LIST is
        /// forbidden).
        case get
        /// Create the lock object holding `record`.
        indirect case create(LeaderElectionRecord)
        /// Write `record` into `base.object` with `base.resourceVersion`.
        indirect case update(LeaderElectionRecord, base: LockSnapshot)
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

    /// While leading: the time a renew attempt may take. Half of what is
    /// left of the renew deadline (at least a quarter of a second, never
    /// past the deadline), so an attempt that hangs on a dead connection
    /// leaves room for another on a fresh one.
    public func attemptTimeout(now: Instant, cap: Duration) -> Duration {
        guard let deadline = renewDeadline else { return cap }
        let left = now.duration(to: deadline)
        if isReleasing { return max(.milliseconds(1), min(cap, left)) }
        return max(.milliseconds(1), min(cap, left, max(left / 2, .milliseconds(250))))
    }

    /// A hold this process saw: what a clear must wait out, and what a
    /// holder's release must look like.
    struct Hold: Sendable, Equatable {
        var lease: Duration
        var transitions: Int
        /// Who held it (nil: unknown, e.g. an unreadable record or a lost race).
        var holder: String? = nil
    }

    public let identity: String
    public let timing: Timing
    public private(set) var role: Role = .standby
    /// The last lock state we saw, and when this process first saw its record.
    public private(set) var observed: LockSnapshot? {
        get { observedBox?.value }
        set { observedBox = newValue.map(HeapBox.init) }
    }
    private var observedAt: Instant?
    /// Our own copy of the lock after our last successful write (leader).
    private var base: LockSnapshot? {
        get { baseBox?.value }
        set { baseBox = newValue.map(HeapBox.init) }
    }
    // The two snapshots live on the heap, one reference each, so copying an
    // `Election` (and the `LockSession` holding it) copies a few words, not
    // two objects' worth of fields: smaller value witnesses, a smaller binary.
    private var observedBox: HeapBox<LockSnapshot>?
    private var baseBox: HeapBox<LockSnapshot>?
    /// Send time of the last successful acquire or renew.
    public private(set) var lastRenew: Instant?
    private var pending: Pending?
    private var releaseAfterWrite = false
    /// The leader was asked to release and keeps trying until the deadline.
    public private(set) var isReleasing = false
    /// The last observation was held (nil: free, absent, or nothing seen yet).
    private var lastHold: Hold?
    /// A hold we saw was ended by someone else (deleted, cleared): the lock
    /// counts as held until this instant whatever we see meanwhile.
    public private(set) var heldUntil: Instant?
    /// After a failed or lost write: no write before this instant.
    private var notBefore: Instant?
    /// The next timer re-reads the lock instead of deciding on what we saw
    /// (an original kube-leader's lock: is its Pod still there?).
    private var readOnTimer = false
    /// While leading: when a write last went out at once after a conflict
    /// that a re-read showed was an edit of another field.
    private var lastQuickWrite: Instant?
    /// While leading: the preferred holder the lock named when we last saw
    /// it (at the acquire, then at each renew or read).
    private var lastPreferred: String?
    /// While leading: the identity the lock asked us to hand over to (its
    /// preferred holder changed to another name while we led). Set once per
    /// term; the supervisor stops the child, then asks for the release.
    public private(set) var handOverTo: String?

    public init(identity: String, timing: Timing) {
        self.identity = identity
        self.timing = timing
    }

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
            if readOnTimer {
                readOnTimer = false
                return .get
            }
            return observed == nil && observedAt == nil ? .get : decide(now: now, wall: wall)
        case .lostRace:
            // Someone else wrote first: read what they wrote (at once), but
            // write again only after a retry period.
            pending = nil
            notBefore = now + timing.retryPeriod
            if releaseAfterWrite { role = .released; return .done }
            noteLostRace()
            return .get
        case .requestFailed, .timedOut:
            pending = nil
            notBefore = now + timing.retryPeriod
            if releaseAfterWrite { role = .released; return .done }
            return .wait(until: now + timing.retryPeriod)
        case .written(let snapshot):
            guard case .acquire(let sentAt) = pending else { return decide(now: now, wall: wall) }
            pending = nil
            guard isOurs(snapshot) else {
                // The server answered with someone else's record (or none): not
                // ours, whatever the status said. Go on from what it showed.
                notBefore = now + timing.retryPeriod
                note(.present(snapshot), now: now)
                if releaseAfterWrite { role = .released; return .done }
                return decide(now: now, wall: wall)
            }
            role = .leading
            lastRenew = sentAt
            base = snapshot
            lastPreferred = snapshot.preferredHolder
            note(.present(snapshot), now: now)
            if releaseAfterWrite { return release(now: now, wall: wall) }
            return .becameLeader(renewAt: sentAt + timing.retryPeriod)
        }
    }

    /// Whether a write's answer holds our record under a usable version.
    /// Our identity, a usable version, and at least the lease we wrote: an
    /// answer with a shorter lease (a webhook, another writer) is not ours,
    /// since standbys would count that shorter lease.
    private func isOurs(_ snapshot: LockSnapshot) -> Bool {
        guard let record = snapshot.record else { return false }
        return record.holderIdentity == identity && !snapshot.resourceVersion.isEmpty && record.leaseDurationSeconds >= leaseSeconds
    }

    /// The lease a held record claims (ours when it names none), bounded.
    private func lease(of record: LeaderElectionRecord) -> Duration {
        record.leaseDurationSeconds > 0
            ? .seconds(min(record.leaseDurationSeconds, LockBounds.maxLeaseSeconds)) : timing.leaseDuration
    }

    /// Remembers an observation; a changed record restarts its expiry clock.
    /// A hold we saw that ends other than by a holder's release starts the
    /// `heldUntil` wait (a deletion while held: row 1 of docs/simulation.md's table).
    private mutating func note(_ observation: Observation, now: Instant) {
        let previous = lastHold
        let hadSeen = observedAt != nil, heldBefore = heldUntil   // coordinated election (--coordinated)
        var hold: Hold?
        var isRelease = false
        var changed = true
        switch observation {
        case .absent:
            observed = nil
            observedAt = now
        case .present(let snapshot):
            changed = observed?.fingerprint != snapshot.fingerprint
            if observed?.fingerprint != snapshot.fingerprint || observedAt == nil || observed == nil {
                observedAt = now
            }
            observed = snapshot
            switch snapshot.state {
            case .none: break
            case .unreadable: hold = Hold(lease: timing.leaseDuration, transitions: previous?.transitions ?? 0)
            case .ownerPod(let pod, let alive):
                if alive { hold = Hold(lease: timing.leaseDuration, transitions: 0, holder: "pod/" + pod) } else { isRelease = true }
            case .readable(let record):
                if !record.isReleased {
                    hold = Hold(lease: lease(of: record), transitions: record.leaderTransitions, holder: record.holderIdentity)
                } else if let previous {
                    // client-go's release: empty holder, a one-second lease, transitions kept.
                    isRelease = record.leaseDurationSeconds == 1 && record.leaderTransitions >= previous.transitions
                }
            }
        }
        if let hold {
            // Other writers: a change that is not the holder's own renew
            // (another holder, or a shorter lease: `kubectl edit`, an
            // operator tool, a mutating webhook) never shortens our wait: the
            // hold we saw is waited out for its lease, counted from the
            // change, even when it had expired by our clock: a standby that
            // could not read for a while (a partition) has not seen the
            // holder's renews (found by the random simulation).
            if let previous, changed, hold.holder == nil || hold.holder != previous.holder || hold.lease < previous.lease {
                heldUntil = max(heldUntil ?? now, now + previous.lease)
            }
            // A wait the new hold's own lease covers is no longer needed.
            if let until = heldUntil, until <= (observedAt ?? now) + hold.lease { heldUntil = nil }
        } else if let previous, !isRelease {
            heldUntil = max(heldUntil ?? now, now + previous.lease)
        }
        lastHold = hold
        if coordinated { noteOffer(observation, previous: previous, hadSeen: hadSeen, changed: changed, heldBefore: heldBefore, now: now) }
    }

    /// A lost race (409 AlreadyExists/Conflict, 404 on an acquiring write) is
    /// proof that someone else wrote the lock since we read it: most likely a
    /// winner holding it now, whose record we may never see (the re-read can
    /// find the lock already deleted or cleared). Count it as a hold seen now,
    /// so a deletion or clear observed next is waited out for one lease
    /// (scenario `lost-race-then-deleted`). A
    /// holder's release seen next is still free at once (graceful hand-over).
    private mutating func noteLostRace() {
        // The winner's lease is unknown: ours (replicas share their timing),
        // or the longer lease of the hold we raced for.
        let lease = max(timing.leaseDuration, lastHold?.lease ?? .zero)
        // A winner takes over with the record's transitions + 1 (0 on create):
        // its release keeps that count.
        let seen = observed?.record.map { min($0.leaderTransitions, LockBounds.maxTransitions - 1) + 1 } ?? 0
        lastHold = Hold(lease: lease, transitions: min(seen, lastHold?.transitions ?? seen), holder: nil)
    }

    /// client-go `tryAcquireOrRenew` steps 1–3 for a standby.
    private mutating func decide(now: Instant, wall: WallTime) -> Action {
        readOnTimer = false
        // A hold we saw was deleted or cleared by someone else: wait it out.
        if let until = heldUntil, now < until { return .wait(until: until) }
        if coordinated { return coordinatedDecide(now: now, wall: wall) }   // --coordinated: never create or take
        // 1. No lock object: create it.
        guard let snapshot = observed else {
            guard observedAt != nil else { return .get }
            // After a failed or lost write, the next waits a retry period.
            if let until = notBefore, now < until { return .wait(until: until) }
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
        case .ownerPod(_, alive: true):
            // The original kube-leader's Pod holds it for life: look again
            // (the Pod may be gone) once per lease.
            observedAt = now
            readOnTimer = true
            return .wait(until: now + timing.leaseDuration)
        case .ownerPod(_, alive: false):
            break  // its Pod is gone: free
        case .readable(let record):
            previousTransitions = record.leaderTransitions
            if !record.isReleased {
                let expiry = seenAt + lease(of: record)
                if now < expiry { return .wait(until: expiry) }
            } else if let preferred = snapshot.preferredHolder, preferred != identity {
                // Released for a named preferred holder (a hand-over):
                // leave it one lease to take the lock, then anyone may.
                let expiry = seenAt + timing.leaseDuration
                if now < expiry { return .wait(until: expiry) }
            }
        }
        // No resourceVersion: an update could not be conditional. Never write
        // on it; read again after a lease.
        if snapshot.resourceVersion.isEmpty {
            observedAt = now
            readOnTimer = true
            return .wait(until: now + timing.leaseDuration)
        }
        if let until = notBefore, now < until { return .wait(until: until) }
        // 3. Absent holder or expired: take it over with the resourceVersion we read.
        var record = snapshot.record ?? LeaderElectionRecord(
            holderIdentity: "", leaseDurationSeconds: 0, acquireTime: nil, renewTime: nil, leaderTransitions: 0)
        record.holderIdentity = identity
        record.leaseDurationSeconds = leaseSeconds
        record.acquireTime = wall
        record.renewTime = wall
        record.leaderTransitions = snapshot.record == nil ? 0 : min(previousTransitions, LockBounds.maxTransitions - 1) + 1
        pending = .acquire(sentAt: now)
        return .update(record, base: snapshot)
    }

    private var leaseSeconds: Int {
        min(LockBounds.maxLeaseSeconds, max(1, Int((timing.leaseDuration.seconds).rounded(.up))))
    }

    // MARK: Coordinated election (`--coordinated`, docs/coordinated.md)

    /// With `--coordinated` (KEP-4355) a standby never creates or takes the
    /// lock: the cluster's election controller names the holder in the Lease
    /// (`holderIdentity` = our LeaseCandidate's name). A record naming us that
    /// we did not write is an *offer*; it is taken (a conditional update, as
    /// any acquire, so a leader is only ever one that wrote the record) once
    /// nobody else can still run a child:
    /// - at once when this process saw it follow a free lock (a holder's
    ///   release, or a lock absent or empty; a deletion or clear of a hold is
    ///   waited out by `heldUntil` first, as always);
    /// - otherwise (the first record this process read, or one that replaced
    ///   another holder's) one lease after first seeing it, the longest of
    ///   ours, its own and the replaced hold's: the replaced holder's renews
    ///   fail from the change on, so it stops its child within its renew
    ///   deadline + kill grace, less than its lease.
    /// Offers renewed by the controller (ours again) keep the first wait.
    /// Everything else (held by others, free, absent) is waited on: standbys
    /// watch the lock meanwhile and read it once per lease. A leader renews and releases as usual;
    /// yielding to `preferredHolder` is the usual hand-over when asked.
    /// - Note: set before the first step; an election started over after a
    ///   loss must keep it.
    public var coordinated = false
    /// When the offer in the lock (a record naming us) may be taken; nil
    /// while the lock offers us nothing.
    public private(set) var offerSafeAt: Instant?

    /// `heldBefore`: a wait for a hold ended by others (`heldUntil`) as it
    /// stood before this observation. An offer never shortens it: `note`
    /// drops such a wait when the new hold's own lease covers it, which an
    /// offer to us does not (we take it without waiting out its lease).
    private mutating func noteOffer(_ observation: Observation, previous: Hold?, hadSeen: Bool, changed: Bool,
                                    heldBefore: Instant?, now: Instant) {
        guard case .present(let snapshot) = observation, case .readable(let record) = snapshot.state,
              !record.isReleased, record.holderIdentity == identity else {
            offerSafeAt = nil
            return
        }
        var safeAt: Instant
        if let kept = offerSafeAt, !changed || previous?.holder == identity {
            safeAt = kept   // the same offer, or renewed to us
        } else if hadSeen, previous == nil {
            safeAt = now   // it followed a free lock
        } else {
            safeAt = now + max(timing.leaseDuration, lease(of: record), previous?.lease ?? .zero)
        }
        if let heldBefore, heldBefore > safeAt { safeAt = heldBefore }
        offerSafeAt = safeAt
    }

    /// A standby's decision with `coordinated`: wait, or take the offer.
    private mutating func coordinatedDecide(now: Instant, wall: WallTime) -> Action {
        guard let snapshot = observed, let record = snapshot.record, !record.isReleased, record.holderIdentity == identity,
              !snapshot.resourceVersion.isEmpty, let safeAt = offerSafeAt else {
            // The controller decides; we watch, and read again once per lease
            // (a watch that silently lost the offer must not keep us blind).
            readOnTimer = true
            return .wait(until: now + timing.leaseDuration)
        }
        if now < safeAt { return .wait(until: safeAt) }
        if let until = notBefore, now < until { return .wait(until: until) }
        var taken = record
        taken.leaseDurationSeconds = leaseSeconds
        taken.acquireTime = wall
        taken.renewTime = wall
        taken.leaderTransitions = min(record.leaderTransitions, LockBounds.maxTransitions - 1) + 1
        pending = .acquire(sentAt: now)
        return .update(taken, base: snapshot)
    }

    // MARK: Leading

    private mutating func leading(_ event: Event, now: Instant, wall: WallTime) -> Action {
        let deadline = renewDeadline!
        switch event {
        case .releaseRequested:
            isReleasing = true
            return release(now: now, wall: wall)
        case .written(let snapshot):
            let was = pending
            pending = nil
            if was == .release { role = .released; return .done }
            guard case .renew(let sentAt) = was else { return .wait(until: min(now + timing.retryPeriod, deadline)) }
            guard isOurs(snapshot) else {
                let holder = snapshot.holderDescription
                if snapshot.record?.holderIdentity == identity, !snapshot.resourceVersion.isEmpty {
                    // Someone (a mutating webhook, an operator tool) rewrote
                    // our lease shorter: standbys may take the lock sooner
                    // than our renew deadline allows for. Stop at once.
                    return lose("the API server answered our renew with a lease of \(snapshot.record?.leaseDurationSeconds ?? 0)s, shorter than the \(leaseSeconds)s we wrote (something rewrites the lock)")
                }
                return lose("the API server answered our renew with a record held by \(holder.isEmpty ? "nobody" : holder)")
            }
            let counted = snapshot.resourceVersion != base?.resourceVersion
            base = snapshot
            observed = snapshot
            notePreferred(snapshot)
            if counted {
                lastRenew = sentAt
                return .wait(until: sentAt + timing.retryPeriod)
            }
            // A no-op update (same resourceVersion, no watch event): nobody saw
            // it, so it does not move the deadline. Try again next period.
            if now >= deadline { return lose("could not renew within \(DurationText.format(timing.renewDeadline)): renews did not change the lock") }
            return .wait(until: min(now + timing.retryPeriod, deadline))
        case .lostRace:
            let wasRelease = pending == .release
            pending = nil
            notBefore = now + timing.retryPeriod
            if wasRelease { return now >= deadline ? released() : .get }  // re-read, then release on the new version
            return now >= deadline ? lose("renew deadline passed") : .get
        case .timedOut(let reason) where pending.isRenew && !isReleasing:
            pending = nil
            if now >= deadline { return lose("could not renew within \(DurationText.format(timing.renewDeadline)): \(reason)") }
            return renew(now: now, wall: wall)
        case .requestFailed(let reason), .timedOut(let reason):
            let wasRelease = pending == .release
            pending = nil
            notBefore = now + timing.retryPeriod
            if wasRelease || isReleasing {
                return now >= deadline ? released() : .wait(until: min(now + timing.retryPeriod, deadline))
            }
            if now >= deadline { return lose("could not renew within \(DurationText.format(timing.renewDeadline)): \(reason)") }
            return .wait(until: min(now + timing.retryPeriod, deadline))
        case .observed(.absent):
            if isReleasing { return released() }  // nothing left to release
            return lose("the lock object was deleted")
        case .observed(.present(let snapshot)):
            pending = nil
            guard let record = snapshot.record, record.holderIdentity == identity, !snapshot.resourceVersion.isEmpty else {
                if isReleasing { return released() }  // no longer ours: nothing to release
                let holder = snapshot.holderDescription
                return lose("the lock is now held by \(holder.isEmpty ? "nobody (released)" : holder)")
            }
            // Still ours (someone else changed another field: `kubectl
            // annotate`, a preferred holder): write on the new version.
            let recordKept = Self.sameRecord(snapshot.record, base?.record) && snapshot.resourceVersion != base?.resourceVersion
            base = snapshot
            observed = snapshot
            notePreferred(snapshot)
            if now >= deadline { return isReleasing ? released() : lose("renew deadline passed") }
            if let until = notBefore, now < until {
                // A conflict the re-read explains by an edit of another field
                // (our record as we wrote it) lost no race: write again at
                // once, once per retry period (else two such edits could cost
                // the renew deadline). An edit of the record itself is paced.
                guard recordKept, !isReleasing, lastQuickWrite.map({ now >= $0 + timing.retryPeriod }) ?? true else { return .wait(until: min(until, deadline)) }
                lastQuickWrite = now
                notBefore = nil
            }
            if isReleasing { return release(now: now, wall: wall) }
            return renew(now: now, wall: wall)
        case .timer, .start:
            if isReleasing { return release(now: now, wall: wall) }
            if now >= deadline { return lose("could not renew within \(DurationText.format(timing.renewDeadline))") }
            if let until = notBefore, now < until { return .wait(until: min(until, deadline)) }
            return renew(now: now, wall: wall)
        }
    }

    /// The same record but for the fields we do not own.
    private static func sameRecord(_ a: LeaderElectionRecord?, _ b: LeaderElectionRecord?) -> Bool {
        guard var a, var b else { return false }
        a.otherFields = JSONObject()
        b.otherFields = JSONObject()
        return a == b
    }

    /// A leader's view of the preferred holder: a change to another name
    /// asks for a hand-over (once per term).
    private mutating func notePreferred(_ snapshot: LockSnapshot) {
        let preferred = snapshot.preferredHolder
        defer { lastPreferred = preferred }
        guard handOverTo == nil, !isReleasing, let preferred, preferred != identity, preferred != lastPreferred else { return }
        handOverTo = preferred
    }

    private mutating func renew(now: Instant, wall: WallTime) -> Action {
        guard let base, var record = base.record else { return lose("our own record is unreadable") }
        record.renewTime = wall
        record.leaseDurationSeconds = leaseSeconds
        pending = .renew(sentAt: now)
        return .update(record, base: base)
    }

    /// client-go `release`: empty holder, lease of one second, so standbys take
    /// over at once instead of waiting for the lease to expire. Retried every
    /// retry period until the renew deadline; after it, nothing is written
    /// (the lease expires by itself).
    private mutating func release(now: Instant, wall: WallTime) -> Action {
        guard let base, var record = base.record, let deadline = renewDeadline, now < deadline else {
            return released()
        }
        if let until = notBefore, now < until { return .wait(until: min(until, deadline)) }
        record.holderIdentity = ""
        record.leaseDurationSeconds = 1
        record.acquireTime = wall
        record.renewTime = wall
        pending = .release
        return .update(record, base: base)
    }

    private mutating func released() -> Action {
        role = .released
        pending = nil
        return .done
    }

    private mutating func lose(_ reason: String) -> Action {
        role = .lost
        pending = nil
        return .lostLeadership(reason: reason)
    }

    // MARK: Standing by again

    /// `--on-loss standby`: after a loss, once the supervisor has stopped
    /// and reaped the old child's whole group, the election starts over as
    /// a standby: first step `.start` (a read), nothing held, nothing
    /// pending. Our own record, if still in the lock, is then someone
    /// else's (waited out for its lease from the first read), as for a
    /// restarted container. Unlike a restarted container it keeps the hold
    /// it saw last (ours, or the one it lost to) and any wait for a hold
    /// ended by others: a lock deleted or cleared while it stopped its child
    /// is waited out for one lease, not created at once.
    /// Only after a loss (`role == .lost`); otherwise it does nothing and
    /// returns false.
    /// After a hand-over (`handOverTo` set, then released) it stands by
    /// again the same way.
    @discardableResult
    public mutating func standByAgain() -> Bool {
        guard role == .lost || (role == .released && handOverTo != nil) else { return false }
        let hold = lastHold ?? base?.record.map { Hold(lease: lease(of: $0), transitions: $0.leaderTransitions, holder: $0.holderIdentity) }
        let until = heldUntil, wasCoordinated = coordinated
        self = Election(identity: identity, timing: timing)
        coordinated = wasCoordinated   // configuration, not state: it outlives the lost term
        lastHold = hold
        heldUntil = until
        return true
    }
}

extension Optional where Wrapped == Election.Pending {
    var isRenew: Bool { if case .renew? = self { return true }; return false }
}
