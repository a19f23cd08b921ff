/// A point on the monotonic clock (Linux CLOCK_MONOTONIC), in nanoseconds.
///
/// kube-leader's own instant type instead of `ContinuousClock.Instant`:
/// `ContinuousClock` lives in `_Concurrency`, and linking it pulls the
/// concurrency runtime and libdispatch (about 0.6 MB) into a binary that
/// never runs a task. `Duration` is core stdlib and is used as usual.
/// Pure: reading the clock (`MonotonicClock.now`, a system call) is in
/// KLSupport's Clocks.swift, with the clock's `BlockingClock` conformance.
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
/// conformance and `MonotonicClock.now` are in KLSupport), the default clock
/// of every loop that takes one. Spelled like the standard library's
/// `ContinuousClock` (`.now`, `MonotonicClock.Instant`) so code reads the same.
public struct MonotonicClock: Sendable {
    public typealias Instant = MonotonicInstant
    public init() {}
}
