#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore
import KLSupport

/// Wall-clock time and waiting, injected so the scheduler and the 429 waits
/// can be tested without sleeping (tests pass a manual clock).
public protocol PagerClock: Sendable {
    /// The current wall-clock time (cron fire times are wall-clock times).
    func now() -> WallTime
    /// Waits `duration` (a manual clock just advances).
    func sleep(for duration: Duration)
}

/// The real clock: CLOCK_REALTIME and nanosleep.
public struct SystemClock: PagerClock {
    public init() {}
    public func now() -> WallTime { wallNow() }
    public func sleep(for duration: Duration) {
        let nanos = max(0, duration.nanoseconds)
        var request = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
        var remaining = timespec()
        while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
    }
}
