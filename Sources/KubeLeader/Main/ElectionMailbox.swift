import KLCore
import KLLeader
import KLProcess
import KLSystem
import Synchronization

/// What the election thread and the main thread share.
final class ElectionMailbox: ElectionHost, @unchecked Sendable {
    struct State: Sendable {
        var leading = false
        var lostReason: String?
        var releaseRequested = false
        var outcome: ElectionRunner.Outcome?
        /// Send time of the last write that held the lock (acquire or renew),
        /// on the boot clock (`BootTimeline`: never later than the truth).
        var lastRenewBootSentAt: BootClock.Instant?
        /// Carries the election thread's monotonic send times to the boot clock.
        var timeline = BootTimeline()
        /// An acquiring write is in flight.
        var acquiring = false
        /// An acquire succeeded: the lock is ours until the election ends.
        var holding = false
        /// Extra environment for the child, known when we became leader.
        var childEnvironment: [String: String] = [:]
        /// `--on-loss standby`: the supervisor let the election stand by again.
        var rejoinGranted = false
        /// The lock asked for a hand-over to this identity (issue 22 part 2).
        var handOverTo: String?
        /// The hand-over's release is done: the release request was its own,
        /// and `awaitRejoin` waits for the supervisor despite it.
        var handedOver = false
    }

    private let state = Mutex(State())
    private let inbox: SignalInbox
    /// Wakes the election thread's pause between renews (release requests).
    private let wake: WakePipe

    init(inbox: SignalInbox) throws(ProcessError) {
        self.inbox = inbox
        do {
            wake = try WakePipe()
        } catch {
            throw ProcessError(.ioFailed, errno: error.errno, context: "Cannot create the election wake-up pipe")
        }
    }

    func snapshot() -> State { state.withLock { $0 } }

    // Called by the main thread.
    /// Asks the election thread to give the lock up and send no new acquire.
    /// Returns whether it is busy: holding the lock or with an acquire in
    /// flight (its end then follows through `finished`). Under one lock with
    /// `beginAcquire`, so an acquire is either refused or waited for.
    func requestRelease() -> Bool {
        let busy = state.withLock { s -> Bool in
            s.releaseRequested = true
            return s.outcome == nil && (s.acquiring || s.holding || s.leading)
        }
        wake.wake()
        return busy
    }

    /// `--on-loss standby`: the old child's group is gone; forget the old
    /// term (the election is blocked in `awaitRejoin` and wrote nothing
    /// since its loss) and let the election stand by again.
    func rejoin() {
        state.withLock { s in
            s.leading = false
            s.lostReason = nil
            s.lastRenewBootSentAt = nil
            s.acquiring = false
            s.holding = false
            if s.handedOver { s.releaseRequested = false }   // the hand-over's own request
            s.handOverTo = nil
            s.handedOver = false
            s.rejoinGranted = true
        }
        wake.wake()
    }

    // Called by the election thread.
    func awaitRejoin() -> Bool {
        while true {
            let (granted, release) = state.withLock { s -> (Bool, Bool) in
                defer { s.rejoinGranted = false }
                return (s.rejoinGranted, s.releaseRequested)
            }
            if granted { return !release }
            if release, !state.withLock({ $0.handedOver }) { return false }
            wake.wait(until: MonotonicClock.now.advanced(by: .seconds(1)))
        }
    }

    func finished(_ outcome: ElectionRunner.Outcome) {
        state.withLock { $0.outcome = outcome }
        inbox.wake()
    }

    var releaseRequested: Bool { state.withLock { $0.releaseRequested } }

    /// Waits on the real monotonic clock (the runner's default clock): the
    /// kernel's `poll` on the wake-up pipe needs real time.
    func pause(until: MonotonicClock.Instant) -> Bool {
        // What the election sends next comes after this: sample the clocks' offset.
        defer {
            let (monotonic, boot) = (MonotonicClock.now, BootClock.now)
            state.withLock { $0.timeline.beforeSend(monotonic: monotonic, boot: boot) }
        }
        while true {
            let left = MonotonicClock.now.duration(to: until)
            if left <= .zero { return releaseRequested }
            if wake.wait(until: until), releaseRequested { return true }
        }
    }

    /// `pause`, also ending when the watch's `fd` is readable (false).
    func pause(until: MonotonicClock.Instant, orReadable fd: Int32) -> Bool {
        defer {
            let (monotonic, boot) = (MonotonicClock.now, BootClock.now)
            state.withLock { $0.timeline.beforeSend(monotonic: monotonic, boot: boot) }
        }
        while MonotonicClock.now < until {
            let (woke, readable) = wake.wait(until: until, orReadable: fd)
            if woke, releaseRequested { return true }
            if readable { return false }
        }
        return releaseRequested
    }

    func becameLeader() {
        state.withLock { $0.leading = true }
        inbox.wake()
    }

    func lostLeadership(reason: String) {
        state.withLock { $0.lostReason = reason }
        inbox.wake()
    }

    func handOver(to: String) {
        state.withLock { $0.handOverTo = to }
        inbox.wake()
    }

    func handedOver() {
        state.withLock { $0.handedOver = true }
        inbox.wake()
    }

    func beginAcquire() -> Bool {
        let (monotonic, boot) = (MonotonicClock.now, BootClock.now)
        return state.withLock { s -> Bool in
            if s.releaseRequested { return false }
            s.acquiring = true
            s.timeline.beforeSend(monotonic: monotonic, boot: boot)
            return true
        }
    }

    func endAcquire(won: Bool) {
        state.withLock { s in
            s.acquiring = false
            if won { s.holding = true }
        }
    }

    func renewed(sentAt: MonotonicClock.Instant) {
        let (monotonic, boot) = (MonotonicClock.now, BootClock.now)
        state.withLock { s in
            s.lastRenewBootSentAt = s.timeline.boot(sentAt, monotonicNow: monotonic, bootNow: boot)
        }
        inbox.wake()
    }
}
