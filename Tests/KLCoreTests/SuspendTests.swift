import KLCore
import Testing

/// Suspend and resume: the host is suspended (or the VM paused) and resumes.
/// CLOCK_MONOTONIC stops meanwhile, CLOCK_BOOTTIME does not. The leader's
/// own deadlines run on the boot clock; the election thread's send times
/// (monotonic) are carried over by `BootTimeline`, never later than they were.
/// Two virtual clocks, made-up instants: nothing sleeps.
@Suite struct SuspendTests {
    /// A host's two clocks: `run` advances both, `suspend` only the boot clock.
    struct Host {
        var monotonic = MonotonicInstant(nanoseconds: 5_000_000_000)
        var boot = MonotonicInstant(nanoseconds: 9_000_000_000)   // booted, suspended 4 s before
        mutating func run(_ d: Duration) { monotonic += d; boot += d }
        mutating func suspend(_ d: Duration) { boot += d }
    }

    let timing = Supervision.Timing(renewDeadline: .seconds(10), killGrace: .seconds(4))

    @Test func withoutSuspend_theSendTimeKeepsItsPlaceOnTheBootClock() {
        var host = Host()
        var timeline = BootTimeline()
        timeline.beforeSend(monotonic: host.monotonic, boot: host.boot)
        let sentAt = host.monotonic
        host.run(.milliseconds(30))   // the request
        #expect(timeline.boot(sentAt, monotonicNow: host.monotonic, bootNow: host.boot) == host.boot - .milliseconds(30))
    }

    /// Suspended while the renew was in flight: the answer arrives after the
    /// resume. Today's offset would put the send 60 s late (and the deadline
    /// with it); the offset sampled before the send does not.
    @Test func suspendDuringTheRequest_neverMovesTheSendTimeLater() {
        var host = Host()
        var timeline = BootTimeline()
        timeline.beforeSend(monotonic: host.monotonic, boot: host.boot)
        let bootAtSend = host.boot
        let sentAt = host.monotonic
        host.run(.milliseconds(10))
        host.suspend(.seconds(60))
        host.run(.milliseconds(10))
        let carried = timeline.boot(sentAt, monotonicNow: host.monotonic, bootNow: host.boot)
        #expect(carried <= bootAtSend)
        #expect(carried == bootAtSend, "no suspend between the sample and the send: exact")
    }

    /// Suspended between the sample and the send: the carried instant is
    /// earlier than the truth by the suspend, so the deadline comes early.
    @Test func suspendBetweenSampleAndSend_errsEarly() {
        var host = Host()
        var timeline = BootTimeline()
        timeline.beforeSend(monotonic: host.monotonic, boot: host.boot)
        host.suspend(.seconds(5))
        let bootAtSend = host.boot
        let sentAt = host.monotonic
        host.run(.milliseconds(20))
        #expect(timeline.boot(sentAt, monotonicNow: host.monotonic, bootNow: host.boot) == bootAtSend - .seconds(5))
    }

    /// The leader's host sleeps 30 s with the child running; on resume the
    /// boot clock has jumped past renew deadline + kill grace while the
    /// monotonic clock has not moved: the first tick stops the child at
    /// once, SIGTERM and SIGKILL together, before any renew could tell.
    @Test func leaderResumedAfterASuspend_stopsItsChildAtOnce() {
        var host = Host()
        var timeline = BootTimeline()
        var s = Supervision(timing: timing)
        timeline.beforeSend(monotonic: host.monotonic, boot: host.boot)
        let sentAt = host.monotonic
        host.run(.milliseconds(20))
        _ = s.step(.renewed(sentAt: timeline.boot(sentAt, monotonicNow: host.monotonic, bootNow: host.boot)), now: host.boot)
        _ = s.step(.becameLeader(), now: host.boot)
        _ = s.step(.spawned(pid: 42), now: host.boot)
        host.run(.seconds(2))
        #expect(s.step(.tick, now: host.boot).isEmpty)
        let monotonicBefore = host.monotonic
        host.suspend(.seconds(30))
        #expect(host.monotonic == monotonicBefore, "CLOCK_MONOTONIC did not move")
        let actions = s.step(.tick, now: host.boot).filter { if case .log = $0 { return false } else { return true } }
        #expect(actions == [.signalGroup(.terminate), .killAll])
        if case .stopping(_, _, let killed, _) = s.phase { #expect(killed) } else { Issue.record("\(s.phase)") }
    }

    /// The same suspend read on CLOCK_MONOTONIC (the old supervisor): the
    /// deadline has not passed and the child keeps running. This is what
    /// the boot clock fixes.
    @Test func onTheMonotonicClock_theSameSuspendGoesUnnoticed() {
        var host = Host()
        var s = Supervision(timing: timing)
        _ = s.step(.renewed(sentAt: host.monotonic), now: host.monotonic)
        _ = s.step(.becameLeader(), now: host.monotonic)
        _ = s.step(.spawned(pid: 42), now: host.monotonic)
        host.run(.seconds(2))
        host.suspend(.seconds(30))
        #expect(s.step(.tick, now: host.monotonic).isEmpty)
        #expect(s.phase == .running(pid: 42))
    }
}
