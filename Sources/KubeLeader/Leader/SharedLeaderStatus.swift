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
        updateAll { update(&$0).map { [$0] } ?? [] }
    }

    /// Applies `update` and reports the changes it caused, in order.
    private func updateAll(_ update: (inout LeaderStatus) -> [LeaderStatus.Change]) {
        let (changes, copy) = state.withLock { s -> ([LeaderStatus.Change], LeaderStatus) in
            let c = update(&s)
            return (c, s)
        }
        for change in changes { onChange(change, copy) }
    }

    /// The supervisor reports that the election gave leadership up.
    public func lost(reason: String? = nil) { updateAll { $0.lost(reason: reason) } }

    /// The supervisor reports that the election released the lock for the
    /// preferred holder `to` (a hand-over).
    public func handedOver(to: String) { updateAll { $0.handedOver(to: to) } }

    public func childExited(code: Int32) { update { $0.childExited(code: code); return nil } }
}
