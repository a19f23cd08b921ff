#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore

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

extension BootClock {
    /// Now, on CLOCK_BOOTTIME (counts time suspended; see `BootClock`).
    public static var now: MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_BOOTTIME, &ts)
        return MonotonicInstant(nanoseconds: Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec))
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
