import KLCore
import KLKube
import KLSystem

/// What the election loop needs from the rest of the process, besides the
/// time (the runner's injected clocks): a pause that a release request
/// ends, and the callbacks to the supervisor.
public protocol ElectionHost: AnyObject {
    /// A leader's pause until its next renew. Returns early, with true, when
    /// the supervisor asks to release (the child has exited).
    /// - Important: `until` is on the runner's clock; the host waits on the
    ///   same clock (the real host: the real monotonic clock, in a `poll` on
    ///   its wake-up pipe; tests: the virtual clock they give the runner).
    func pause(until: MonotonicClock.Instant) -> Bool
    /// The same pause, ending also when `fd` (the open watch) is readable
    /// (then false, unless a release was asked too). The default does not
    /// wait: the watch read blocks until its deadline.
    func pause(until: MonotonicClock.Instant, orReadable fd: Int32) -> Bool
    /// Whether the supervisor wants the lock released (child exited, or
    /// kube-leader is shutting down).
    var releaseRequested: Bool { get }
    /// We hold the lock: start the child.
    func becameLeader()
    /// We lost the lock: stop the child.
    func lostLeadership(reason: String)
    /// Before an acquiring write (create, or update as a standby): may it be
    /// sent? False once kube-leader is stopping; then nothing is sent. A true
    /// answer marks the write in flight until `endAcquire`, so a stopping
    /// supervisor waits for its outcome (and the release of a lock it took).
    func beginAcquire() -> Bool
    /// The acquiring write is over; `won` when it took the lock.
    func endAcquire(won: Bool)
    /// A write that holds the lock succeeded (the acquire, each counted renew);
    /// `sentAt` is when it was sent. The supervisor's own deadline runs from it.
    func renewed(sentAt: MonotonicClock.Instant)
    /// `--on-loss standby`, after `lostLeadership`: blocks until the
    /// supervisor has stopped and reaped the old child's group and lets the
    /// election stand by again (true), or kube-leader is stopping (false).
    func awaitRejoin() -> Bool
    /// The lock asks us to hand over to `to` (a preferred holder): the
    /// supervisor stops the child, then asks for the release.
    func handOver(to: String)
    /// The hand-over's release is over; `awaitRejoin` follows.
    func handedOver()
}

extension ElectionHost {
    public func pause(until: MonotonicClock.Instant, orReadable fd: Int32) -> Bool { false }
    public func beginAcquire() -> Bool { !releaseRequested }
    public func endAcquire(won: Bool) {}
    public func renewed(sentAt: MonotonicClock.Instant) {}
    public func awaitRejoin() -> Bool { false }
    public func handOver(to: String) {}
    public func handedOver() {}
}

/// The election thread's driver: performs each `LockSession.Command` with
/// blocking I/O (the lock store's sockets, the host's pause) and feeds the
/// result back, until the session is done. Every decision is in the session
/// (`Core/LockSession.swift`); the simulation drives the same session.
/// - Important: not thread-safe; once `run()` starts, only its thread touches it.
public final class ElectionRunner: @unchecked Sendable {
    public typealias Outcome = LockSession.Outcome

    public private(set) var session: LockSession
    public var election: Election { session.election }
    let store: any LockStore
    let host: any ElectionHost
    let logger: Logger
    /// The election's time: expiry, renew deadlines, pacing. The host's
    /// pause and the store's sockets wait on the real monotonic clock, so
    /// only tests that never reach them pass another clock.
    let clock: any BlockingClock<MonotonicInstant>
    /// Written into the record (`acquireTime`, `renewTime`) for humans only.
    let wallClock: any BlockingClock<WallTime>

    public init(election: Election, store: any LockStore, host: any ElectionHost, logger: Logger,
                requestTimeout: Duration = .seconds(10),
                onLoss: OnLoss = .exit,
                clock: any BlockingClock<MonotonicInstant> = MonotonicClock(),
                wallClock: any BlockingClock<WallTime> = WallClock()) {
        var config = store.lockConfig
        config.requestTimeout = requestTimeout
        session = LockSession(election: election, config: config, onLoss: onLoss)
        self.store = store
        self.host = host
        self.logger = logger
        self.clock = clock
        self.wallClock = wallClock
    }

    /// The loop. Returns when the election is over.
    public func run() -> Outcome {
        var input = LockSession.Input.start
        while true {
            // A hand-over's release request ends when the session stands by
            // again: a later one is told anew.
            if host.releaseRequested, !session.releaseRequested { session.noteReleaseRequested() }
            for command in session.step(input, now: clock.now, wall: wallClock.now) {
                switch command {
                case .send(let request, let timeout): input = .answer(store.send(request, timeout: timeout))
                case .readWatch(let until):
                    // A release request wakes the read (the leader's watch
                    // between renews): the session hears of it at once.
                    if let fd = store.watchWaitFD, host.pause(until: until, orReadable: fd) {
                        input = .watch(.timedOut)
                    } else {
                        input = .watch(store.readWatch(until: until))
                    }
                case .sleep(let until):
                    _ = host.pause(until: until)
                    input = .woke
                case .beginAcquire: input = .acquireAllowed(host.beginAcquire())
                case .awaitRejoin: input = .rejoin(host.awaitRejoin())
                case .done(let outcome):
                    store.closeWatch()
                    return outcome
                case .closeWatch: store.closeWatch()
                case .endAcquire(let won): host.endAcquire(won: won)
                case .becameLeader: host.becameLeader()
                case .lostLeadership(let reason): host.lostLeadership(reason: reason)
                case .handOver(let to): host.handOver(to: to)
                case .handedOver: host.handedOver()
                case .renewed(let sentAt): host.renewed(sentAt: sentAt)
                case .log(let level, let message, let fields): logger.log(level, message, fields.map { ($0.key, $0.value) })
                case .report(let report): store.report(report, now: clock.now)
                }
            }
        }
    }
}
