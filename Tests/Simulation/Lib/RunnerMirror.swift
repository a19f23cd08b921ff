import KLCore

/// How an election thread ended (mirror of `ElectionRunner.Outcome`).
enum RunnerOutcome: Equatable {
    case released
    case lost(String)
    case configurationError(String)
}

/// What wakes the election thread.
enum RunnerInput {
    case response(request: Int, SimResponse)
    case watchItem(watch: Int)
    case timer(token: Int)
    /// The wake-up pipe: the main thread asked for a release.
    case wake
}

/// A failed lock operation (mirror of `LockError` + `KubeLockStore.classify`).
struct SimLockError: Error {
    enum Code { case lostRace, transient, configuration, timedOut }
    var code: Code
    var message: String

    /// `KubeLockStore.classify`: Conflict, AlreadyExists and NotFound are a
    /// lost race; 401/403 configuration; anything else transient.
    static func classify(_ r: SimResponse) -> SimLockError {
        switch r {
        case .status(let code, let reason):
            switch code {
            case 404, 409: return SimLockError(code: .lostRace, message: "\(code) \(reason)")
            case 401, 403: return SimLockError(code: .configuration, message: "\(code) \(reason)")
            default: return SimLockError(code: .transient, message: "\(code) \(reason)")
            }
        case .timedOut: return SimLockError(code: .timedOut, message: "timed out")
        case .transport(let m): return SimLockError(code: .transient, message: m)
        default: return SimLockError(code: .transient, message: "unexpected response")
        }
    }

    /// `LockError.code` as the runner sees it (timeouts are transient there).
    var runnerCode: Code { code == .timedOut ? .transient : code }
}

/// The election thread of one kube-leader process: the REAL `Election` state
/// machine (KLCore), driven exactly as `Kube/ElectionRunner.swift` drives it,
/// against a lock store that mirrors `Kube/KubeLock.swift` (`KubeLockStore`).
///
/// `ElectionRunner.run()` is a blocking loop; a simulation of many replicas on
/// one thread needs it as a state machine, so this file mirrors it case by
/// case: each place where the real loop blocks (a request, `host.pause`,
/// `watch.next`) is a `Blocked` state here, resumed by a `RunnerInput`. The
/// comments name the real function each part mirrors. When the runner or the
/// store change, this file must change with them (see docs/simulation.md).
final class RunnerMirror {
    unowned let world: World
    let replica: Int
    let incarnation: Int
    private(set) var election: Election
    let requestTimeout: Duration
    private var failuresInARow = 0
    private var fatalOutcome: RunnerOutcome?
    private(set) var finished = false

    // KubeLockStore state.
    private var watch: WatchConnection?
    private var watchResourceVersion: String?
    private var watchExpiry: MonotonicInstant?
    let watchSeconds = 300

    // waitForChange's locals while it blocks.
    private var wfcKnown: LockSnapshot?
    private var wfcDeadline = MonotonicInstant(nanoseconds: 0)
    /// `watch(until:)`'s argument while waitForChange runs.
    private var watchUntil = MonotonicInstant(nanoseconds: 0)

    private enum AfterRequest { case get, write(String), watchOpen, watchGet }
    private enum AfterPause { case leader, afterWatchError }
    private enum Blocked {
        case none
        case request(id: Int, then: AfterRequest)
        case pause(token: Int, then: AfterPause)
        case watchNext(token: Int)
    }
    private var blocked: Blocked = .none

    init(world: World, replica: Int, incarnation: Int, election: Election, requestTimeout: Duration) {
        self.world = world
        self.replica = replica
        self.incarnation = incarnation
        self.election = election
        self.requestTimeout = requestTimeout
    }

    var now: MonotonicInstant { world.localNow(replica) }
    private var host: ReplicaProcess { world.process(replica, incarnation)! }

    /// `ElectionRunner.run()`: the first step.
    func start() { perform(step(.start)) }

    /// ElectionRunner.step: the supervisor keeps its own renew deadline from
    /// the send times of successful renews.
    private func step(_ event: Election.Event) -> Election.Action {
        let before = election.lastRenew
        let action = election.step(event, now: now, wall: world.wallNow(replica))
        if election.role == .leading, let sentAt = election.lastRenew, sentAt != before {
            world.hostRenewed(replica, incarnation, sentAt: sentAt)
        }
        world.trace(replica, "election \(Self.text(event)) -> \(Self.text(action)) [\(election.role)]")
        return action
    }

    // MARK: ElectionRunner.run (the loop)

    private func perform(_ first: Election.Action) {
        var action = first
        while true {
            switch action {
            case .done:
                stopWatching()
                finish(fatalOutcome ?? (election.role == .lost ? .lost("lost") : .released))
                return
            case .lostLeadership(let reason):
                world.hostLostLeadership(replica, incarnation, reason: reason)
                stopWatching()
                finish(.lost(reason))
                return
            case .becameLeader(let renewAt):
                stopWatching()
                world.hostBecameLeader(replica, incarnation)
                if let next = pause(until: renewAt, then: .leader) { action = next; continue }
                return
            case .wait(let until):
                if election.role == .leading {
                    if let next = pause(until: until, then: .leader) { action = next; continue }
                    return
                }
                if host.releaseRequested { action = step(.releaseRequested); continue }
                // watch(until:) -> store.waitForChange(known:deadline:)
                watchUntil = until
                wfcKnown = election.observed
                wfcDeadline = until
                if let next = waitForChangeLoop() { action = next; continue }
                return
            case .get:
                // store.get: a GET means a fresh view; the next watch starts from it.
                stopWatching()
                send(.get, timeout: timeout(), then: .get)
                return
            case .create(let record):
                // Not sent: as if it failed; the next wait sees the release request.
                guard world.hostBeginAcquire(replica, incarnation) else {
                    action = step(.requestFailed("kube-leader is stopping")); continue
                }
                let object = LockCodec.newObject(world.server.kind, namespace: world.server.namespace,
                                                 name: world.server.name, record: record)
                send(.create(object), timeout: timeout(), then: .write("create"))
                return
            case .update(let record, let base):
                let what = record.isReleased ? "release" : (election.role == .leading ? "renew" : "acquire")
                if what == "acquire", !world.hostBeginAcquire(replica, incarnation) {
                    action = step(.requestFailed("kube-leader is stopping")); continue
                }
                let object = LockCodec.updatedObject(world.server.kind, base: base, record: record)
                send(.update(object), timeout: timeout(), then: .write(what))
                return
            }
        }
    }

    private func finish(_ outcome: RunnerOutcome) {
        finished = true
        blocked = .none
        world.hostFinished(replica, incarnation, outcome)
    }

    /// `ElectionRunner.timeout()`: the usual bound, cut to the renew deadline.
    private func timeout() -> Duration {
        guard let deadline = election.renewDeadline else { return requestTimeout }
        let left = now.duration(to: deadline)
        return max(.milliseconds(1), min(requestTimeout, left))
    }

    private func send(_ request: SimRequest, timeout: Duration, then: AfterRequest) {
        let id = world.send(request, from: replica, incarnation, timeout: timeout, standby: election.role == .standby)
        blocked = .request(id: id, then: then)
    }

    /// `ElectionRunner.pause(until:)` + `LeaderHost.pause`: returns the next
    /// action at once when a release is already requested, else blocks.
    private func pause(until: MonotonicInstant, then: AfterPause) -> Election.Action? {
        if host.releaseRequested { return then == .leader ? step(.releaseRequested) : .get }
        if now >= until { return pauseEnded(then: then) }
        let token = world.runnerTimer(replica, incarnation, at: until)
        blocked = .pause(token: token, then: then)
        return nil
    }

    private func pauseEnded(then: AfterPause) -> Election.Action {
        switch then {
        case .leader: return step(host.releaseRequested ? .releaseRequested : .timer)
        case .afterWatchError: return .get  // ElectionRunner.watch: `_ = host.pause(...)`, then `.get`
        }
    }

    // MARK: Inputs

    func receive(_ input: RunnerInput) {
        guard !finished else { return }
        switch (blocked, input) {
        case (.request(let id, let then), .response(let rid, let response)) where id == rid:
            blocked = .none
            if let next = completed(then, response) { perform(next) }
        case (.pause(let token, let then), .timer(let t)) where token == t:
            blocked = .none
            perform(pauseEnded(then: then))
        case (.pause(_, let then), .wake):
            // LeaderHost.pause returns early (true) when a release is requested.
            blocked = .none
            perform(then == .leader ? step(.releaseRequested) : .get)
        case (.watchNext(let token), .timer(let t)) where token == t:
            blocked = .none
            if let next = waitForChangeLoop() { perform(next) }
        case (.watchNext, .watchItem(let w)) where w == watch?.id:
            blocked = .none
            if let next = waitForChangeLoop() { perform(next) }
        default:
            break  // stale (an earlier request's deadline, a closed watch)
        }
    }

    /// What the loop does when a request completes.
    private func completed(_ then: AfterRequest, _ response: SimResponse) -> Election.Action? {
        switch then {
        case .get:
            // ElectionRunner `.get` case.
            switch observation(response) {
            case .success(let observation):
                failuresInARow = 0
                return step(.observed(observation))
            case .failure(let error):
                if error.runnerCode == .configuration, election.role == .standby {
                    finish(.configurationError(error.message)); return nil
                }
                failuresInARow += 1
                return step(.requestFailed(error.message))
            }
        case .write(let what):
            let action = write(response)
            // `host.endAcquire(won:)` after an acquiring write (create, or update as a standby).
            if what == "create" || what == "acquire" { world.hostEndAcquire(replica, incarnation, won: election.role == .leading) }
            return action
        case .watchOpen:
            // KubeLockStore.waitForChange: client.watch(...)
            if case .watchOpened(let id) = response, let conn = world.watchConnection(id) {
                watch = conn
                watchExpiry = now + .seconds(watchSeconds + 30)
                return waitForChangeLoop()
            }
            let error = SimLockError.classify(response)
            if error.code == .timedOut { return watchReturned(.success(nil)) }
            return watchReturned(.failure(error))
        case .watchGet:
            // The `get` after a watch ERROR (410): its result is waitForChange's.
            switch observation(response) {
            case .success(let o): return watchReturned(.success(o))
            case .failure(let e): return watchReturned(.failure(e))
            }
        }
    }

    /// ElectionRunner.write, after the request.
    private func write(_ response: SimResponse) -> Election.Action {
        if case .object(let snapshot) = response {
            failuresInARow = 0
            return step(.written(snapshot))
        }
        let error = SimLockError.classify(response)
        switch error.runnerCode {
        case .lostRace:
            world.noteLostWrite(replica, incarnation)
            return step(.lostRace)
        case .configuration where election.role == .standby:
            fatalOutcome = .configurationError(error.message)
            return .done
        default:
            failuresInARow += 1
            return step(.requestFailed(error.message))
        }
    }

    /// KubeLockStore.get: 404 is an absent lock.
    private func observation(_ response: SimResponse) -> Result<Election.Observation, SimLockError> {
        switch response {
        case .object(let s): return .success(.present(s))
        case .status(404, _): return .success(.absent)
        default: return .failure(SimLockError.classify(response))
        }
    }

    // MARK: KubeLockStore.waitForChange, ElectionRunner.watch

    /// Runs the store's loop until it blocks (nil) or returns.
    private func waitForChangeLoop() -> Election.Action? {
        while now < wfcDeadline {
            if let expiry = watchExpiry, now >= expiry {
                stopWatching(keepingVersion: true)
            }
            if watch == nil {
                let from = watchResourceVersion ?? wfcKnown?.resourceVersion
                let timeout = min(.seconds(10), max(.milliseconds(1), now.duration(to: wfcDeadline)))
                send(.watch(from: from), timeout: timeout, then: .watchOpen)
                return nil
            }
            let conn = watch!
            guard let item = conn.popArrived() else {
                // watch.next(deadline:) blocks until an item or the deadline.
                let deadline = min(wfcDeadline, watchExpiry ?? wfcDeadline)
                let token = world.runnerTimer(replica, incarnation, at: deadline)
                blocked = .watchNext(token: token)
                return nil
            }
            switch item {
            case .ended:
                stopWatching(keepingVersion: true)
            case .broken:
                stopWatching()
                return watchReturned(.failure(SimLockError(code: .transient, message: "connection reset")))
            case .added(let b), .modified(let b):
                watchResourceVersion = b.snapshot.resourceVersion
                return watchReturned(.success(.present(b.snapshot)))
            case .deleted(let rv):
                watchResourceVersion = rv
                return watchReturned(.success(.absent))
            case .expired:
                stopWatching()
                let remaining = now.duration(to: wfcDeadline)
                // `try get(timeout:)`: stopWatching() again, then GET.
                send(.get, timeout: max(.milliseconds(1), min(.seconds(10), remaining)), then: .watchGet)
                return nil
            }
        }
        return watchReturned(.success(nil))
    }

    /// ElectionRunner.watch(until:) after waitForChange returned or threw.
    private func watchReturned(_ result: Result<Election.Observation?, SimLockError>) -> Election.Action? {
        switch result {
        case .success(nil):
            return step(.timer)
        case .success(let observation?):
            failuresInARow = 0
            return step(.observed(observation))
        case .failure(let error):
            if error.runnerCode == .configuration {
                fatalOutcome = .configurationError(error.message)
                return .done
            }
            failuresInARow += 1
            // `_ = host.pause(until: min(until, host.now + retryPeriod))`, then `.get`.
            return pause(until: min(watchUntil, now + election.timing.retryPeriod), then: .afterWatchError)
        }
    }

    /// KubeLockStore.stopWatching.
    func stopWatching(keepingVersion: Bool = false) {
        if let w = watch { world.closeWatch(w) }
        watch = nil
        watchExpiry = nil
        if !keepingVersion { watchResourceVersion = nil }
    }

    // MARK: Trace text

    static func text(_ e: Election.Event) -> String {
        switch e {
        case .start: "start"
        case .observed(.absent): "observed(absent)"
        case .observed(.present(let s)): "observed(rv=\(s.resourceVersion) holder=\(s.record?.holderIdentity ?? "?"))"
        case .written(let s): "written(rv=\(s.resourceVersion))"
        case .lostRace: "lostRace"
        case .requestFailed(let m): "requestFailed(\(m))"
        case .timer: "timer"
        case .releaseRequested: "releaseRequested"
        }
    }

    static func text(_ a: Election.Action) -> String {
        switch a {
        case .get: "get"
        case .create: "create"
        case .update(let r, let b): "update(holder=\(r.holderIdentity) base=\(b.resourceVersion))"
        case .wait(let u): "wait(\(u.nanoseconds / 1_000_000)ms)"
        case .becameLeader: "becameLeader"
        case .lostLeadership(let r): "lostLeadership(\(r))"
        case .done: "done"
        }
    }
}
