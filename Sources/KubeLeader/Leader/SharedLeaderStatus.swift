import KLCore
import KLKube
import KLSystem
import Synchronization

/// The shared `LeaderStatus` behind a mutex: the election thread writes it
/// (through `StatusReportingLockStore`), the supervisor reads it to start the child,
/// the status endpoint reads copies. Nobody holds the lock for longer than a
/// copy, so no reader can slow the election down.
public final class SharedLeaderStatus: Sendable {
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
