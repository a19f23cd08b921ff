import KLCore
import KLLeader
import KLProcess
import KLSystem
import Synchronization

/// The mailbox between the election thread and the main thread: the shared
/// state and its changes are `ElectionMailboxState` (KLCore, pure, driven by
/// the simulation too); this class holds it under a lock, carries send times
/// to the boot clock, and wakes the thread that waits.
final class ElectionMailbox: ElectionHost, @unchecked Sendable {
    private struct Shared {
        var state = ElectionMailboxState()
        /// Carries the election thread's monotonic send times to the boot
        /// clock (`BootTimeline`: never later than the truth), so
        /// `state.lastRenewSentAt` is on the boot clock.
        var timeline = BootTimeline()
    }

    private let shared = Mutex(Shared())
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

    func snapshot() -> ElectionMailboxState { shared.withLock { $0.state } }

    // Called by the main thread.
    func requestRelease() -> Bool {
        let busy = shared.withLock { $0.state.requestRelease() }
        wake.wake()
        return busy
    }

    func rejoin() {
        shared.withLock { $0.state.rejoin() }
        wake.wake()
    }

    // Called by the election thread.
    func awaitRejoin() -> Bool {
        while true {
            if let answer = shared.withLock({ $0.state.takeRejoin() }) { return answer }
            wake.wait(until: MonotonicClock.now.advanced(by: .seconds(1)))
        }
    }

    func finished(_ outcome: ElectionRunner.Outcome) {
        shared.withLock { $0.state.finished(outcome) }
        inbox.wake()
    }

    var releaseRequested: Bool { shared.withLock { $0.state.releaseRequested } }

    /// Waits on the real monotonic clock (the runner's default clock): the
    /// kernel's `poll` on the wake-up pipe needs real time.
    func pause(until: MonotonicClock.Instant) -> Bool {
        pause(until: until, orReadable: -1)   // poll(2) ignores a negative fd
    }

    /// `pause`, also ending when the watch's `fd` is readable (false).
    func pause(until: MonotonicClock.Instant, orReadable fd: Int32) -> Bool {
        // What the election sends next comes after this: sample the clocks' offset.
        defer {
            let (monotonic, boot) = (MonotonicClock.now, BootClock.now)
            shared.withLock { $0.timeline.beforeSend(monotonic: monotonic, boot: boot) }
        }
        while MonotonicClock.now < until {
            let (woke, readable) = wake.wait(until: until, orReadable: fd)
            if woke, releaseRequested { return true }
            if readable { return false }
        }
        return releaseRequested
    }

    func becameLeader() {
        shared.withLock { $0.state.becameLeader() }
        inbox.wake()
    }

    func lostLeadership(reason: String) {
        shared.withLock { $0.state.lostLeadership(reason: reason) }
        inbox.wake()
    }

    func handOver(to: String) {
        shared.withLock { $0.state.handOver(to: to) }
        inbox.wake()
    }

    func handedOver() {
        shared.withLock { $0.state.releasedForHandOver() }
        inbox.wake()
    }

    func beginAcquire() -> Bool {
        let (monotonic, boot) = (MonotonicClock.now, BootClock.now)
        return shared.withLock { s -> Bool in
            guard s.state.beginAcquire() else { return false }
            s.timeline.beforeSend(monotonic: monotonic, boot: boot)
            return true
        }
    }

    func endAcquire(won: Bool) {
        shared.withLock { $0.state.endAcquire(won: won) }
    }

    func renewed(sentAt: MonotonicClock.Instant) {
        let (monotonic, boot) = (MonotonicClock.now, BootClock.now)
        shared.withLock { s in
            s.state.renewed(sentAt: s.timeline.boot(sentAt, monotonicNow: monotonic, bootNow: boot))
        }
        inbox.wake()
    }
}
