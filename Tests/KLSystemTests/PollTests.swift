import KLCore
import KLSystem
import Testing

/// The one wake-up pipe and poll loop, and the EINTR helper.
@Suite("platform layer: WakePipe, pollUntil, retryingEINTR", .timeLimit(.minutes(1)))
struct PollTests {
    @Test func manyWakes_areOneWakeUp_andDrainEmptiesThePipe() throws {
        let pipe = try WakePipe()
        #expect(!pipe.drain(), "a fresh pipe holds no wake-up")
        for _ in 0..<10_000 { pipe.wake() }   // more than the pipe holds: never blocks
        #expect(pipe.drain())
        #expect(!pipe.drain())
    }

    @Test func wait_returnsAtOnceWhenWoken_andFalseAtTheDeadline() throws {
        let pipe = try WakePipe()
        pipe.wake()
        #expect(pipe.wait(until: MonotonicClock.now + .seconds(30)), "a pending wake-up ends the wait at once")
        let start = MonotonicClock.now
        #expect(!pipe.wait(until: start + .milliseconds(30)))
        #expect(MonotonicClock.now - start >= .milliseconds(30), "returned before the deadline")
        #expect(!pipe.wait(until: start - .seconds(1)), "a passed deadline polls once and returns")
    }

    @Test func wake_fromAnotherThread_endsTheWait() throws {
        let pipe = try WakePipe()
        #expect(startDetachedThread { pipe.wake() } == 0)
        #expect(pipe.wait(until: nil))
    }

    @Test func pollUntil_reportsReadyDescriptors_andErrors() throws {
        let pipe = try WakePipe()
        var fds = [pollfd(fd: pipe.readFD, events: Int16(POLLIN), revents: 0)]
        #expect(pollUntil(&fds, deadline: MonotonicClock.now).ready == 0)
        pipe.wake()
        let (ready, error) = pollUntil(&fds, deadline: MonotonicClock.now + .seconds(30))
        #expect(ready == 1 && error == 0 && fds[0].revents & Int16(POLLIN) != 0)
        var bad = [pollfd(fd: -1, events: Int16(POLLIN), revents: 0)]
        #expect(pollUntil(&bad, deadline: MonotonicClock.now).ready == 0, "a negative fd is ignored by poll(2)")
    }

    @Test func retryingEINTR_returnsTheErrnoOfARealFailure() {
        let (result, error) = retryingEINTR { close(-1) }
        #expect(result == -1 && error == EBADF)
        let (ok, none) = retryingEINTR { getpid() }
        #expect(ok > 0 && none == 0)
    }
}
