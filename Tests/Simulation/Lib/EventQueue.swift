/// True (simulated) time in nanoseconds since the start of a run. Every
/// replica reads its own clock from it (see `ReplicaClock`).
public typealias SimTime = Int64

extension SimTime {
    static let ms: SimTime = 1_000_000
    static let second: SimTime = 1_000_000_000

    /// "12.345s", for traces.
    var traceText: String {
        let ms = self / 1_000_000
        let s = ms / 1000, frac = ms % 1000
        let f = String(frac)
        return "\(s).\(String(repeating: "0", count: 3 - f.count))\(f)s"
    }
}

/// Something that happens at an instant of true time.
enum SimEvent {
    /// A request reaches the API server.
    case serverReceives(request: Int)
    /// The response of a request reaches its replica.
    case clientReceives(request: Int)
    /// The client-side deadline of a request.
    case requestDeadline(request: Int)
    /// The next queued watch item reaches the replica.
    case watchArrival(watch: Int)
    /// The server ends a watch at its `timeoutSeconds`.
    case watchServerTimeout(watch: Int)
    /// The server sends a BOOKMARK on a watch (about once a minute).
    case watchBookmark(watch: Int)
    /// A sleep of the election thread ends (pause, watch deadline).
    case runnerTimer(replica: Int, incarnation: Int, token: Int)
    /// The main thread wakes up (a report from the election thread, a signal, SIGCHLD).
    case mainWake(replica: Int, incarnation: Int)
    /// The main thread's own timer (SIGKILL time, release give-up time).
    case mainTimer(replica: Int, incarnation: Int, token: Int)
    /// A process (child, grandchild, foreign leader) exits by itself.
    case processExit(process: Int, token: Int)
    /// A fault (or scripted step) begins.
    case fault(index: Int)
    /// A crashed or exited replica starts again.
    case restart(replica: Int)
    /// A liveness checkpoint after a storm of faults.
    case checkpoint(index: Int)
    /// A step of a foreign lock writer (scenarios).
    case foreign(token: Int)
    /// A pass of the coordinated-election controller (Coordination.swift).
    case electionController
}

/// A binary min-heap of events ordered by (time, insertion order), so events
/// at the same instant run in the order they were scheduled: deterministic.
struct EventQueue {
    private var times: [SimTime] = []
    private var seqs: [UInt64] = []
    private var events: [SimEvent] = []
    private var nextSeq: UInt64 = 0

    var isEmpty: Bool { times.isEmpty }
    var count: Int { times.count }
    var nextTime: SimTime? { times.first }

    init() {
        times.reserveCapacity(1024); seqs.reserveCapacity(1024); events.reserveCapacity(1024)
    }

    @inline(__always) private func less(_ i: Int, _ j: Int) -> Bool {
        times[i] < times[j] || (times[i] == times[j] && seqs[i] < seqs[j])
    }

    private mutating func swapAt(_ i: Int, _ j: Int) {
        times.swapAt(i, j); seqs.swapAt(i, j); events.swapAt(i, j)
    }

    mutating func push(_ time: SimTime, _ event: SimEvent) {
        times.append(time); seqs.append(nextSeq); events.append(event)
        nextSeq &+= 1
        var i = times.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !less(i, parent) { break }
            swapAt(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (SimTime, SimEvent)? {
        guard !times.isEmpty else { return nil }
        let top = (times[0], events[0])
        let last = times.count - 1
        swapAt(0, last)
        times.removeLast(); seqs.removeLast(); events.removeLast()
        var i = 0
        let n = times.count
        while true {
            let l = 2 * i + 1, r = l + 1
            var m = i
            if l < n && less(l, m) { m = l }
            if r < n && less(r, m) { m = r }
            if m == i { break }
            swapAt(i, m)
            i = m
        }
        return top
    }
}

/// A replica's clocks. Its monotonic clock runs at `1 + ppm/1e6` times true
/// time (|ppm| <= 1000: ±0.1 %) from an arbitrary offset; its wall clock is
/// the monotonic one shifted to a calendar date plus a skew (wall time only
/// goes into records for people, as in kube-leader).
struct ReplicaClock {
    let offset: Int64
    let ppm: Int64
    let wallEpochNanos: Int64

    /// Monotonic reading at true time `t`.
    @inline(__always) func local(_ t: SimTime) -> Int64 { offset &+ t &+ (t &* ppm) / 1_000_000 }

    func instant(_ t: SimTime) -> MonotonicInstantValue { local(t) }

    /// The earliest true time at which the local clock reads >= `l`.
    func trueTime(atLocal l: Int64) -> SimTime {
        let guess = Int64((Double(l &- offset) / (1.0 + Double(ppm) / 1e6)).rounded(.down))
        var t = max(0, guess - 2)
        while local(t) < l { t += 1 }
        while t > 0 && local(t - 1) >= l { t -= 1 }
        return t
    }

    func wallNanos(_ t: SimTime) -> Int64 { wallEpochNanos &+ local(t) &- offset }
}

typealias MonotonicInstantValue = Int64
