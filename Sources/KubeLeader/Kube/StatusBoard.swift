import KLCore
import KLSupport
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
    public func lost() { update { $0.lost() } }

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

    public var describe: String { inner.describe }

    public func get(timeout: Duration) throws(KubeError) -> Election.Observation {
        let observation = try inner.get(timeout: timeout)
        board.update { $0.observed(observation.snapshot, duringLeadership: true) }
        return observation
    }

    public func create(_ record: LeaderElectionRecord, timeout: Duration) throws(KubeError) -> LockSnapshot {
        try written(MonotonicClock.now) { () throws(KubeError) in try inner.create(record, timeout: timeout) }
    }

    public func update(_ record: LeaderElectionRecord, base: LockSnapshot, timeout: Duration) throws(KubeError) -> LockSnapshot {
        try written(MonotonicClock.now) { () throws(KubeError) in try inner.update(record, base: base, timeout: timeout) }
    }

    private func written(_ sentAt: MonotonicInstant, _ body: () throws(KubeError) -> LockSnapshot) throws(KubeError) -> LockSnapshot {
        do {
            let snapshot = try body()
            let now = MonotonicClock.now
            board.update { $0.wrote(snapshot, sentAt: sentAt, now: now) }
            return snapshot
        } catch {
            board.update { $0.writeFailed(); return nil }
            throw error
        }
    }

    public func waitForChange(known: LockSnapshot?, deadline: MonotonicClock.Instant) throws(KubeError) -> LockChange {
        do {
            let change = try inner.waitForChange(known: known, deadline: deadline)
            if case .observed(let observation) = change { board.update { $0.observed(observation.snapshot) } }
            return change
        } catch {
            board.update { $0.watchRestarted(); return nil }
            throw error
        }
    }

    public func stopWatching() { inner.stopWatching() }

    public var isWatching: Bool { inner.isWatching }
}

extension Election.Observation {
    /// The object, nil when the lock is absent.
    var snapshot: LockSnapshot? {
        if case .present(let s) = self { return s }
        return nil
    }
}
