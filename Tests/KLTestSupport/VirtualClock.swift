import KLCore
import KLSystem
import Synchronization

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
