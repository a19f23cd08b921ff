import KLCore
import Synchronization

/// One lifecycle action from the moment it is received until it is
/// completed: its queue messages (each with its newest receipt handle) and
/// its heartbeat times. The service's heartbeat loop keeps every ticket alive
/// (heartbeat + hidden message), whether its drain has started or not.
public final class ActionTicket: Sendable {
    public let action: LifecycleAction
    public let receivedAt: MonotonicClock.Instant

    struct State {
        /// One entry per SQS message id, holding the newest receipt handle:
        /// after a redelivery SQS only honours the most recent one.
        var messages: [SQSMessage]
        var lastHeartbeat: MonotonicClock.Instant?
        /// Auto Scaling answered "No active Lifecycle Action": completed
        /// elsewhere, or its timeout passed.
        var gone = false
        /// The drain is completing it: no more heartbeats.
        var done = false
        var heartbeats = 0
        /// `--heartbeat-until` passed: heartbeats stopped (logged once).
        var heartbeatsStopped = false
        var deleted = false
    }
    private let state: Mutex<State>

    /// Set when the message carries several actions (an AWS Health event
    /// naming several instances): it is deleted when the last one is done.
    public let shared: SharedMessage?

    public init(action: LifecycleAction, message: SQSMessage, now: MonotonicClock.Instant, shared: SharedMessage? = nil) {
        self.action = action
        self.shared = shared
        receivedAt = now
        state = Mutex(State(messages: [message]))
    }

    public var token: String { action.lifecycleActionToken }

    /// Records a copy of a message received again (same or another message
    /// id for this action): its receipt handle replaces the older one.
    public func received(_ message: SQSMessage) {
        state.withLock { s in
            if let i = s.messages.firstIndex(where: { $0.messageID == message.messageID }) {
                s.messages[i] = message
            } else {
                s.messages.append(message)
            }
        }
    }

    /// The action's messages, newest receipt handle each.
    public var messages: [SQSMessage] { state.withLock { $0.messages } }
    public var isGone: Bool { state.withLock { $0.gone } }
    public var isDone: Bool { state.withLock { $0.done } }
    public var lastHeartbeat: MonotonicClock.Instant? { state.withLock { $0.lastHeartbeat } }
    public var heartbeatCount: Int { state.withLock { $0.heartbeats } }

    /// True the first time only: the action's messages are deleted once.
    func markDeleted() -> Bool { state.withLock { s in defer { s.deleted = true }; return !s.deleted } }
    /// True the first time only (for the log line).
    func stopHeartbeats() -> Bool { state.withLock { s in defer { s.heartbeatsStopped = true }; return !s.heartbeatsStopped } }
    func markGone() { state.withLock { $0.gone = true } }
    func markDone() { state.withLock { $0.done = true } }
    func heartbeatSent(now: MonotonicClock.Instant) {
        state.withLock { $0.lastHeartbeat = now; $0.heartbeats += 1 }
    }

    /// When the next heartbeat is due (now when none was sent yet).
    public func nextHeartbeat(interval: Duration, now: MonotonicClock.Instant) -> MonotonicClock.Instant {
        state.withLock { s in s.lastHeartbeat.map { $0 + interval } ?? now }
    }
}

/// A queue message shared by several actions: the last one done deletes it.
public final class SharedMessage: Sendable {
    let remaining: Mutex<Int>
    public init(count: Int) { remaining = Mutex(count) }
    /// One action is done; true when it was the last.
    func release() -> Bool { remaining.withLock { $0 -= 1; return $0 == 0 } }
}
