import KLCore
import KLSystem
import Testing

/// The leader's wait between renews polls its watch's socket with
/// the wake-up pipe (`ElectionMailbox.pause(until:orReadable:)`): a release
/// request or bytes on the watch end it, whichever comes first.
@Suite("platform layer: WakePipe.wait(until:orReadable:)", .timeLimit(.minutes(1)))
struct WakePipeOrReadableTests {
    @Test func wakeOrReadable_endTheWait_elseTheDeadline() throws {
        let pipe = try WakePipe()
        let watch = try WakePipe()   // stands for the watch's socket: readable once written
        let start = MonotonicClock.now
        var r = pipe.wait(until: start + .milliseconds(30), orReadable: watch.readFD)
        #expect(!r.woke && !r.readable)
        #expect(MonotonicClock.now - start >= .milliseconds(30), "returned before the deadline")
        watch.wake()
        r = pipe.wait(until: MonotonicClock.now + .seconds(30), orReadable: watch.readFD)
        #expect(!r.woke && r.readable, "bytes on the watch end the wait at once")
        #expect(watch.drain())
        pipe.wake()
        r = pipe.wait(until: MonotonicClock.now + .seconds(30), orReadable: watch.readFD)
        #expect(r.woke && !r.readable, "a wake-up ends the wait at once")
        #expect(!pipe.drain(), "and drains the pipe: the next wait blocks again (no hot loop)")
        #expect(startDetachedThread { pipe.wake() } == 0)
        r = pipe.wait(until: MonotonicClock.now + .seconds(30), orReadable: watch.readFD)
        #expect(r.woke, "a wake-up from another thread")
    }
}
