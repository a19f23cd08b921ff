/// An instant a `BlockingClock` reads: monotonic (`MonotonicInstant`) or
/// wall-clock (`WallTime`).
public protocol ClockInstant: Comparable, Sendable {
    /// This instant moved by `d` (earlier when `d` is negative).
    func advanced(by d: Duration) -> Self
    /// The time from here to `other` (negative when `other` is earlier).
    func duration(to other: Self) -> Duration
}

/// The one clock protocol of kube-leader and its companions: read the time,
/// block the calling thread until a deadline.
///
/// Loops take a clock instead of reading the system clock, so tests run them
/// on `VirtualClock` (KLTestSupport), whose `sleep(until:)` jumps forward and
/// never blocks. Real clocks: `MonotonicClock` (deadlines, timeouts) and
/// `WallClock` (cron fire times) in KLSystem. kube-leader links no
/// `_Concurrency`, so this is not the standard library's `Clock`: sleeping
/// blocks a thread, which is what its loops and the companions' worker
/// threads want.
public protocol BlockingClock<Instant>: Sendable {
    associatedtype Instant: ClockInstant
    /// The current time on this clock.
    var now: Instant { get }
    /// Blocks until `deadline` (returns at once when it has passed). A
    /// virtual clock moves its time to `deadline` instead.
    func sleep(until deadline: Instant)
}

extension BlockingClock {
    /// Blocks for `duration` (nothing for zero or less).
    public func sleep(for duration: Duration) {
        sleep(until: now.advanced(by: duration))
    }
}

extension MonotonicInstant: ClockInstant {}

extension WallTime: ClockInstant {
    public func advanced(by d: Duration) -> WallTime { adding(d) }
    public func duration(to other: WallTime) -> Duration { other.duration(since: self) }
}
