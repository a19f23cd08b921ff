/// What the election thread and the main thread share, and every change to
/// it: the decisions of the mailbox between the two threads. Pure: production
/// (`Main/ElectionMailbox.swift`) holds it under a lock and wakes the threads
/// around each call; the simulation holds the same value in its replica
/// process and calls the same methods.
///
/// The methods are named after the `ElectionHost` callbacks (election thread)
/// and the supervisor's calls (main thread) they carry.
public struct ElectionMailboxState: Sendable, Equatable {
    /// The election took the lock and the supervisor may start the child.
    public private(set) var leading = false
    /// The election lost the lock (or cannot prove it holds it).
    public private(set) var lostReason: String?
    /// The supervisor wants the lock released and no new acquire sent.
    public private(set) var releaseRequested = false
    /// The election is over.
    public private(set) var outcome: LockSession.Outcome?
    /// Send time of the last write that held the lock (acquire or renew), on
    /// the clock the owner gives to `renewed` (production: the boot clock).
    public private(set) var lastRenewSentAt: MonotonicInstant?
    /// An acquiring write is in flight.
    public private(set) var acquiring = false
    /// An acquire succeeded: the lock is ours until the election ends.
    public private(set) var holding = false
    /// `--on-loss standby`: the supervisor let the election stand by again
    /// (taken by `takeRejoin`).
    public private(set) var rejoinGranted = false
    /// The lock asked for a hand-over to this identity.
    public private(set) var handOverTo: String?
    /// The hand-over's release is done: the release request was its own, and
    /// the election waits for the supervisor to stand by again despite it.
    public private(set) var handedOver = false

    public init() {}

    // MARK: Main thread

    /// Asks the election to give the lock up and send no new acquire.
    /// Returns whether it is busy: holding the lock or with an acquire in
    /// flight (its end then follows through `finished`). Together with
    /// `beginAcquire` under one lock, an acquire is either refused or waited for.
    public mutating func requestRelease() -> Bool {
        releaseRequested = true
        return outcome == nil && (acquiring || holding || leading)
    }

    /// `--on-loss standby`: the old child's group is gone; forget the old
    /// term (the election waits in `awaitRejoin` and wrote nothing since its
    /// loss) and let the election stand by again. A hand-over's own release
    /// request is forgotten with it; a stop's request is kept.
    public mutating func rejoin() {
        leading = false
        lostReason = nil
        lastRenewSentAt = nil
        acquiring = false
        holding = false
        if handedOver { releaseRequested = false }
        handOverTo = nil
        handedOver = false
        rejoinGranted = true
    }

    /// What the supervisor reads on each turn. `childEnvironment` is left
    /// empty (the owner knows it); `lastRenewSentAt` is on the owner's clock.
    public var report: ElectionReport {
        var report = ElectionReport(leading: leading, lostReason: lostReason, lastRenewSentAt: lastRenewSentAt)
        report.ended = outcome.map(Supervision.ElectionEnd.init)
        report.handOverTo = handOverTo
        report.handedOver = handedOver
        return report
    }

    // MARK: Election thread

    /// Before an acquiring write: may it be sent? False once a release was
    /// requested; true marks it in flight until `endAcquire`.
    public mutating func beginAcquire() -> Bool {
        if releaseRequested { return false }
        acquiring = true
        return true
    }

    /// The acquiring write is over; `won` when it took the lock.
    public mutating func endAcquire(won: Bool) {
        acquiring = false
        if won { holding = true }
    }

    public mutating func becameLeader() { leading = true }

    public mutating func lostLeadership(reason: String) { lostReason = reason }

    /// A write that holds the lock succeeded; `sentAt` on the owner's clock.
    public mutating func renewed(sentAt: MonotonicInstant) { lastRenewSentAt = sentAt }

    public mutating func handOver(to identity: String) { handOverTo = identity }

    /// The hand-over's release is over (`ElectionHost.handedOver`).
    public mutating func releasedForHandOver() { handedOver = true }

    public mutating func finished(_ outcome: LockSession.Outcome) { self.outcome = outcome }

    /// `awaitRejoin`'s check: true when the supervisor let the election stand
    /// by again (the grant is taken), false when it must stop instead (a
    /// release was requested that is not the hand-over's own, or came with
    /// the grant), nil while it must keep waiting.
    public mutating func takeRejoin() -> Bool? {
        if rejoinGranted {
            rejoinGranted = false
            return !releaseRequested
        }
        return releaseRequested && !handedOver ? false : nil
    }
}
