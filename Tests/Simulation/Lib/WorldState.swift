import KLCore

/// An invariant that did not hold.
public struct Violation: CustomStringConvertible {
    public enum Kind: String { case overlap, liveness, budget }
    public var kind: Kind
    public var time: SimTime
    public var message: String
    public var description: String { "\(kind.rawValue) at \(time.traceText): \(message)" }
}

/// One process started from a leader's command, or a foreign leader's work.
struct SimProcess {
    let id: Int
    /// Which leadership it belongs to: (replica, incarnation) of the
    /// kube-leader that started it, or a foreign leader. Processes of two
    /// different terms alive at once are an overlap.
    let term: Int
    let replica: Int
    let incarnation: Int
    let isGrandchild: Bool
    let group: Int
    var alive = true
    let bornAt: SimTime
    var diedAt: SimTime = 0
    /// Time from SIGTERM to exit; nil: ignores SIGTERM.
    let termDelay: SimTime?
    var exitScheduled = false
    var exitToken = 0
    var exitCode: Int32 = 0
}

/// One kube-leader process (an incarnation of a replica): the election
/// thread, the main thread, and what they share (`ElectionMailbox`).
final class ReplicaProcess {
    let incarnation: Int
    var runner: ElectionThread!
    var supervisor: SimSupervisor!
    /// The mailbox between its election thread and its main thread: the
    /// same value and transitions as production's `ElectionMailbox`.
    var mailbox = ElectionMailboxState()
    /// The election thread's wake-up pipe holds a byte (ElectionMailbox).
    var wakePipe = false
    /// Leaderships of this process so far: each is a term of its own.
    var leaderships = 0
    // The main thread's inbox (signalfd) and zombies to reap.
    private var inbox: [SimSignal] = []
    var zombies: [(Int, Int32)] = []
    var mainWakeScheduled = false
    var mainTimerToken = 0
    var runnerToken = 0
    /// The election thread is blocked (DNS, a stuck write) until then.
    var frozenUntil: SimTime = 0
    /// The election thread's one pending sleep, and the times of the timer
    /// events already in the queue for it (re-armed lazily: a standby moves
    /// its deadline on every watch event without a queue entry each time).
    var timerWanted: (token: Int, at: SimTime)?
    var timerArmed: [SimTime] = []
    var frozenInputs: [RunnerInput] = []
    // Request budget of a standby (local clock, ns).
    var lastReadAt: Int64?
    var lastWatchAt: Int64?
    var lastWriteAt: Int64?
    /// The last write lost a race: one read and one watch at once are
    /// allowed (who won? follow them).
    var lostWriteRead = false
    /// The last LIST was forbidden: the GET that falls back for it is part
    /// of the same read (a Role without "list").
    var fallbackRead = false
    var lostWriteWatch = false
    var child: Int?

    init(incarnation: Int) { self.incarnation = incarnation }

    func post(_ s: SimSignal) { inbox.append(s) }
    func drainInbox() -> [SimSignal] { defer { inbox.removeAll() }; return inbox }
    func reapAll() -> [(Int, Int32)] { defer { zombies.removeAll() }; return zombies }
}

/// Network conditions of one replica.
struct NetState {
    var partitionUntil: SimTime = -1
    var refuse = false
    var slowUntil: SimTime = -1
    var slowMs: ClosedRange<Int64> = 0...0
    /// The delay hits before the server acts (a write lands late) or after.
    var slowBeforeServer = false
    var errorUntil: SimTime = -1
    var errorProbability = 0.0
    var errorProcessedProbability = 0.0
    var errorCode = 500
    /// The kept-alive connection died without a FIN or RST (the API server
    /// behind the ClusterIP is gone; conntrack still sends there): the next
    /// request on it gets no answer at all. The client closes a connection
    /// whose request timed out, so the one after goes on a fresh connection.
    var deadConnection = false
}

final class Replica {
    let index: Int
    let identity: String
    let clock: ReplicaClock
    let pid1: Bool
    var process: ReplicaProcess?
    var incarnations = 0
    var net = NetState()
    var exits: [SimExit] = []
    var starts = 0
    /// `--on-loss standby`: times a process of it stood by again after a loss.
    var rejoins = 0
    /// Hand-overs asked of this replica's elections (hand-over when asked).
    var handOvers = 0
    /// Times its host was (or is) suspended (`Suspend.swift`).
    var suspensions: [(from: SimTime, until: SimTime)] = []

    init(index: Int, identity: String, clock: ReplicaClock, pid1: Bool) {
        self.index = index
        self.identity = identity
        self.clock = clock
        self.pid1 = pid1
    }
}

/// An in-flight request.
struct InFlight {
    let replica: Int
    let incarnation: Int
    var request: SimRequest?
    let kindName: String
    let sentAt: SimTime
    /// The client's deadline; its event is queued only once the response
    /// cannot come before it.
    var deadline: SimTime = 0
    var deadlineQueued = false
    var response: SimResponse?
    var done = false
    var reachedServer = false
}

/// How a watch is dropped.
public enum WatchDrop { case end, reset, silent }
