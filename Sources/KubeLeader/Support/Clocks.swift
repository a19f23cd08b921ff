#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore
import Synchronization

/// The current wall-clock time (CLOCK_REALTIME).
public func wallNow() -> WallTime {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return WallTime(seconds: Int64(ts.tv_sec), nanoseconds: Int32(ts.tv_nsec))
}

extension MonotonicClock: BlockingClock {
    /// Now, on CLOCK_MONOTONIC. (`MonotonicClock` itself is pure and lives
    /// in KLCore; reading the clock is a system call, so it is here.)
    public static var now: MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MonotonicInstant(nanoseconds: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
    }

    public var now: MonotonicInstant { MonotonicClock.now }

    /// Blocks the calling thread until `deadline` (nanosleep, EINTR restarted).
    public func sleep(until deadline: MonotonicInstant) {
        blockingSleep(MonotonicClock.now.duration(to: deadline))
    }
}

extension MonotonicInstant {
    /// Now, on CLOCK_MONOTONIC.
    public static var now: MonotonicInstant { MonotonicClock.now }
}

/// The wall clock (CLOCK_REALTIME): for times people schedule, such as cron
/// fire times. Never for expiry or timeouts (use `MonotonicClock`).
public struct WallClock: BlockingClock {
    public init() {}
    public var now: WallTime { wallNow() }
    /// Blocks for the wall-clock time left until `deadline`, measured once
    /// (a clock step while asleep does not shorten or lengthen the sleep).
    public func sleep(until deadline: WallTime) {
        blockingSleep(wallNow().duration(to: deadline))
    }
}

/// A clock for tests: time moves only when a test advances it or when code
/// sleeps on it (`sleep(until:)` jumps to the deadline at once, records the
/// sleep, then calls `onSleep`, so a test can act "while" the code waits).
public final class VirtualClock<Instant: ClockInstant>: BlockingClock {
    private let state: Mutex<(now: Instant, sleeps: [Duration])>
    private let onSleep: @Sendable (Instant) -> Void

    public init(start: Instant, onSleep: @escaping @Sendable (Instant) -> Void = { _ in }) {
        state = Mutex((start, []))
        self.onSleep = onSleep
    }

    public var now: Instant { state.withLock { $0.now } }

    /// Moves time to `deadline` (never backwards) and records how long the
    /// caller asked to sleep.
    public func sleep(until deadline: Instant) {
        state.withLock { s in
            s.sleeps.append(s.now.duration(to: deadline))
            if deadline > s.now { s.now = deadline }
        }
        onSleep(deadline)
    }

    /// Moves time forward by `d`.
    public func advance(by d: Duration) {
        state.withLock { $0.now = $0.now.advanced(by: d) }
    }

    /// Every sleep so far, as the duration asked for (negative when the
    /// deadline had already passed).
    public var sleeps: [Duration] { state.withLock { $0.sleeps } }
}

extension VirtualClock where Instant == MonotonicInstant {
    /// A virtual monotonic clock starting at the real monotonic now.
    public convenience init(onSleep: @escaping @Sendable (MonotonicInstant) -> Void = { _ in }) {
        self.init(start: MonotonicClock.now, onSleep: onSleep)
    }
}

/// A virtual monotonic clock (deadlines, drains, timeouts in tests).
public typealias VirtualMonotonicClock = VirtualClock<MonotonicInstant>
/// A virtual wall clock (cron fire times in tests).
public typealias VirtualWallClock = VirtualClock<WallTime>
