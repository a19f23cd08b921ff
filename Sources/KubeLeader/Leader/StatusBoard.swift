import KLCore
import KLKube
import KLSystem
import Synchronization

/// The shared `LeaderStatus` behind a mutex: the election thread writes it
/// (through `ObservedLockStore`), the supervisor reads it to start the child,
/// the status endpoint reads copies. Nobody holds the lock for longer than a
/// copy, so no reader can slow the election down.
public final class StatusBoard: Sendable {
    private let state: Mutex<LeaderStatus>
    /// Told about each acquisition and stop, outside the mutex (the label and
    /// Events worker queues work here; it must not block).
    private let onChange: @Sendable (LeaderStatus.Change, LeaderStatus) -> Void

    public init(_ initial: LeaderStatus, onChange: @escaping @Sendable (LeaderStatus.Change, LeaderStatus) -> Void = { _, _ in }) {
        state = Mutex(initial)
        self.onChange = onChange
    }

    public var snapshot: LeaderStatus { state.withLock { $0 } }

    /// Applies `update` and reports the change it caused, if any.
    public func update(_ update: (inout LeaderStatus) -> LeaderStatus.Change?) {
        let (change, copy) = state.withLock { s -> (LeaderStatus.Change?, LeaderStatus) in
            let c = update(&s)
            return (c, s)
        }
        if let change { onChange(change, copy) }
    }

    /// The supervisor reports that the election gave leadership up.
    public func lost(reason: String? = nil) { update { $0.lost(reason: reason) } }

    public func childExited(code: Int32) { update { $0.childExited(code: code); return nil } }
}

/// A `LockStore` that reports every read and write of the lock to a
/// `StatusBoard` and passes everything through unchanged: the election
/// neither knows nor waits for the surfaces built on the board.
public final class ObservedLockStore: LockStore {
    let inner: any LockStore
    let board: StatusBoard

    public init(_ inner: any LockStore, board: StatusBoard) {
        self.inner = inner
        self.board = board
    }

    public var lockConfig: LockSession.Config { inner.lockConfig }

    public func send(_ request: LockSession.Request, timeout: Duration) -> LockSession.Answer {
        inner.send(request, timeout: timeout)
    }

    public func readWatch(until: MonotonicClock.Instant) -> LockSession.WatchRead { inner.readWatch(until: until) }

    public func closeWatch() { inner.closeWatch() }

    public func report(_ report: LockSession.Report, now: MonotonicClock.Instant) {
        switch report {
        case .read(let snapshot): board.update { $0.observed(snapshot, duringLeadership: true) }
        case .watched(let snapshot): board.update { $0.observed(snapshot) }
        case .wrote(let snapshot, let sentAt): board.update { $0.wrote(snapshot, sentAt: sentAt, now: now) }
        case .writeFailed: board.update { $0.writeFailed(); return nil }
        case .watchFailed: board.update { $0.watchRestarted(); return nil }
        }
        inner.report(report, now: now)
    }
}
