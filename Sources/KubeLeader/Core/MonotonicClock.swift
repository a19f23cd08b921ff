/// A point on the monotonic clock (Linux CLOCK_MONOTONIC), in nanoseconds;
/// also used for the boot clock (CLOCK_BOOTTIME, `BootClock`), which never
/// goes back either. Never compare instants of the two clocks.
///
/// kube-leader's own instant type instead of `ContinuousClock.Instant`:
/// `ContinuousClock` lives in `_Concurrency`, and linking it pulls the
/// concurrency runtime and libdispatch (about 0.6 MB) into a binary that
/// never runs a task. `Duration` is core stdlib and is used as usual.
/// Pure: reading the clock (`MonotonicClock.now`, a system call) is in
/// KLSystem's Clocks.swift, with the clock's `BlockingClock` conformance.
public struct MonotonicInstant: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var nanoseconds: Int64

    public init(nanoseconds: Int64) { self.nanoseconds = nanoseconds }

    public static func < (a: Self, b: Self) -> Bool { a.nanoseconds < b.nanoseconds }

    public static func + (a: Self, d: Duration) -> Self { Self(nanoseconds: a.nanoseconds &+ d.nanoseconds) }
    public static func - (a: Self, d: Duration) -> Self { Self(nanoseconds: a.nanoseconds &- d.nanoseconds) }
    public static func += (a: inout Self, d: Duration) { a = a + d }
    /// The time from `b` to `a`.
    public static func - (a: Self, b: Self) -> Duration { .nanoseconds(a.nanoseconds &- b.nanoseconds) }

    /// The time from here to `other` (negative when `other` is earlier).
    public func duration(to other: Self) -> Duration { other - self }
    public func advanced(by d: Duration) -> Self { self + d }

    public var description: String { "\(Double(nanoseconds) / 1e9)s (monotonic)" }
}

/// The real monotonic clock: a `BlockingClock<MonotonicInstant>` (the
/// conformance and `MonotonicClock.now` are in KLSystem), the default clock
/// of every loop that takes one. Spelled like the standard library's
/// `ContinuousClock` (`.now`, `MonotonicClock.Instant`) so code reads the same.
public struct MonotonicClock: Sendable {
    public typealias Instant = MonotonicInstant
    public init() {}
}

/// The boot clock (Linux CLOCK_BOOTTIME): like CLOCK_MONOTONIC, but it keeps
/// counting while the system is suspended (or the VM is paused, when the
/// hypervisor advances it). On a suspend, **the leader's own deadlines**
/// (the supervisor's renew deadline, kill grace) run on it, so a leader
/// resumed after a suspend longer than its deadline stops its child at once;
/// **a standby's expiry** stays on CLOCK_MONOTONIC, which does not count a
/// suspend: it waits longer. Both err on the safe side.
///
/// Its instants are `MonotonicInstant`s on the boot timeline (`now` is in
/// KLSystem's Clocks.swift). A send time on the monotonic clock is carried
/// over with `BootTimeline`.
public struct BootClock: Sendable {
    public typealias Instant = MonotonicInstant
    public init() {}
}

/// Carries instants of the election thread's CLOCK_MONOTONIC over to
/// CLOCK_BOOTTIME, never later than they were (a suspend in between only
/// makes them earlier).
///
/// The two clocks differ by the time spent suspended, an offset that only
/// grows. A renew's send time `sentAt` (monotonic) on the boot clock is
/// `sentAt + offset at the send`. The offset at the send is not known when the
/// answer arrives (a suspend may have come in between, making today's offset
/// too large and the deadline too late); an offset sampled *before* the send
/// is never larger, so the carried-over instant is never later than the
/// truth: the deadline may come early (after a suspend during the request),
/// never late.
public struct BootTimeline: Sendable, Equatable {
    /// boot − monotonic, sampled before the next send (`beforeSend`).
    public private(set) var offset: Duration?

    public init() {}

    /// Records the offset at a point that comes before any request the
    /// election sends next (the end of a pause, the start of an acquire).
    public mutating func beforeSend(monotonic: MonotonicInstant, boot: MonotonicInstant) {
        offset = boot - monotonic
    }

    /// `sentAt` (monotonic) on the boot clock, given both clocks read now.
    public func boot(_ sentAt: MonotonicInstant, monotonicNow: MonotonicInstant, bootNow: MonotonicInstant) -> MonotonicInstant {
        let now = bootNow - monotonicNow
        return sentAt + min(offset ?? now, now)
    }
}
