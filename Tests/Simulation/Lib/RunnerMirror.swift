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

/// A failed lock operation (mirror of `KubeError` and its `disposition`).
struct SimLockError: Error {
    enum Code { case lostRace, transient, configuration, timedOut }
    var code: Code
    var message: String

    /// `KubeError.disposition`: Conflict, AlreadyExists and NotFound are a
    /// lost race; 401/403 configuration; anything else transient. (A create's
    /// 404 is `.namespaceMissing` there, configuration; see `write`.)
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

    /// `KubeError.disposition` as the runner sees it (timeouts are transient there).
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
    private var fatalOutcome: RunnerOutcome?
    private(set) var finished = false

    // KubeLockStore state.
    private var watch: WatchConnection?
    private var watchResourceVersion: String?
    private var watchExpiry: MonotonicInstant?
    private var watchOpenedAt: MonotonicInstant?
    private var watchEvents = 0
    let watchSeconds = 300
    /// `KubeLockStore.retryPeriod` (main.swift passes `--retry-period`).
    var retryPeriod: Duration { election.timing.retryPeriod }

    // waitForChange's locals while it blocks.
    private var wfcDeadline = MonotonicInstant(nanoseconds: 0)
    /// `watch(until:)`'s argument while waitForChange runs.
    private var watchUntil = MonotonicInstant(nanoseconds: 0)
    /// ElectionRunner.lastReadAt, watchNotBefore.
    private var lastReadAt: MonotonicInstant?
    private var watchNotBefore: MonotonicInstant?

    /// Who asked for a read (`store.get`, or `checkOwner` of a watch event).
    private enum Reader { case runner, watchEvent }
    private enum AfterRequest {
        case list(Reader, deadline: MonotonicInstant)
        case ownerPod(LockSnapshot, String, Reader)
        case write(String)
        case watchOpen(timeout: Duration)
    }
    private enum AfterPause { case leader, releasing, afterWatchError, beforeWatch }
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
                if let next = pause(until: renewAt) { action = next; continue }
                return
            case .wait(let until):
                if election.role == .leading {
                    if let next = pause(until: until) { action = next; continue }
                    return
                }
                if host.releaseRequested { action = step(.releaseRequested); continue }
                // watch(until:) -> store.waitForChange(known:deadline:)
                watchUntil = until
                wfcDeadline = until
                // ElectionRunner.watch: a watch to open within a retry period of
                // the last one opened (or of a failed one): pause first.
                if watch == nil, let notBefore = watchNotBefore, now < notBefore {
                    if let next = hostPause(until: min(until, notBefore), then: .beforeWatch) { action = next; continue }
                    return
                }
                if let next = openingWatch() { action = next; continue }
                return
            case .get:
                // store.get(timeout:)
                let t = timeout()
                lastReadAt = now
                storeGet(timeout: t, for: .runner)
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

    // MARK: Pauses (ElectionRunner.pause, LeaderHost.pause)

    /// `ElectionRunner.pause(until:)`: a release being retried sleeps for real;
    /// otherwise a release request (asked before, or waking the pause) ends it.
    private func pause(until: MonotonicInstant) -> Election.Action? {
        if election.isReleasing { return hostPause(until: until, then: .releasing) }
        if host.releaseRequested { return step(.releaseRequested) }
        return hostPause(until: until, then: .leader)
    }

    /// `LeaderHost.pause(until:)`: returns `releaseRequested` when the time
    /// has come, or true at once when the wake-up pipe holds a byte.
    private func hostPause(until: MonotonicInstant, then: AfterPause) -> Election.Action? {
        if now >= until { return pauseEnded(then, released: host.releaseRequested) }
        if host.wakePipe {
            host.wakePipe = false
            if host.releaseRequested { return pauseEnded(then, released: true) }
        }
        let token = world.runnerTimer(replica, incarnation, at: until)
        blocked = .pause(token: token, then: then)
        return nil
    }

    private func pauseEnded(_ then: AfterPause, released: Bool) -> Election.Action? {
        switch then {
        case .leader: return step(released ? .releaseRequested : .timer)
        case .releasing: return step(.timer)  // `_ = host.pause(until:)`
        // ElectionRunner.watch: `if host.pause(...) { return step(.releaseRequested) }`, then `.get`.
        case .afterWatchError: return released ? step(.releaseRequested) : .get
        // ElectionRunner.watch's pause before a watch: the deadline came
        // first (`.timer`), or the watch may go out now.
        case .beforeWatch:
            if released { return step(.releaseRequested) }
            if let notBefore = watchNotBefore, now < notBefore { return step(.timer) }
            return openingWatch()  // nil: blocked in the watch
        }
    }

    /// ElectionRunner.watch: one watch opened per retry period while standing
    /// by (`watchNotBefore` from each open), then `store.waitForChange`.
    private func openingWatch() -> Election.Action? {
        if watch == nil { watchNotBefore = now + election.timing.retryPeriod }
        return waitForChangeLoop()
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
            if let next = pauseEnded(then, released: host.releaseRequested) { perform(next) }
        case (.pause(_, let then), .wake):
            // The byte in the wake-up pipe ends the poll; `releaseRequested` is set.
            host.wakePipe = false
            blocked = .none
            if let next = pauseEnded(then, released: true) { perform(next) }
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
        case .list(let reader, let deadline):
            // KubeLockStore.get: the LIST and its resourceVersion.
            switch response {
            case .list(let snapshot, let rv):
                watchResourceVersion = rv
                return checkOwner(snapshot.map { .present($0) } ?? .absent, deadline: deadline, for: reader)
            default:
                return readDone(.failure(SimLockError.classify(response)), for: reader)
            }
        case .ownerPod(var snapshot, let pod, let reader):
            // KubeLockStore.checkOwner: 404 frees the lock, anything else keeps it held.
            if case .status(404, _) = response {
                snapshot.state = .ownerPod(pod, alive: false)
                snapshot.fingerprint += ":gone"
            }
            return readDone(.success(.present(snapshot)), for: reader)
        case .write(let what):
            let action = write(response, create: what == "create")
            // `host.endAcquire(won:)` after an acquiring write (create, or update as a standby).
            if what == "create" || what == "acquire" { world.hostEndAcquire(replica, incarnation, won: election.role == .leading) }
            return action
        case .watchOpen(let openTimeout):
            // KubeLockStore.waitForChange: client.watch(...)
            if case .watchOpened(let id) = response, let conn = world.watchConnection(id) {
                watch = conn
                watchOpenedAt = now
                watchEvents = 0
                watchExpiry = now + .seconds(watchSeconds + 30)
                return waitForChangeLoop()
            }
            let error = SimLockError.classify(response)
            // Timed out at the deadline: `.deadlineWhileOpening` (paced, quiet).
            if error.code == .timedOut, openTimeout < .seconds(10) { return watchReturned(.deadlineWhileOpening) }
            return watchReturned(.failure(error))
        }
    }

    /// KubeLockStore.get: LIST, remembering the list's resourceVersion for
    /// the next watch; then `checkOwner`.
    private func storeGet(timeout: Duration, for reader: Reader) {
        stopWatching()
        send(.list, timeout: timeout, then: .list(reader, deadline: now + timeout))
    }

    /// KubeLockStore.checkOwner: an original kube-leader's lock is held while
    /// its owner Pod exists (GET the Pod).
    private func checkOwner(_ observation: Election.Observation, deadline: MonotonicInstant, for reader: Reader) -> Election.Action? {
        guard case .present(let snapshot) = observation, case .ownerPod(let pod, _) = snapshot.state else {
            return readDone(.success(observation), for: reader)
        }
        send(.getPod(pod), timeout: max(.milliseconds(1), now.duration(to: deadline)), then: .ownerPod(snapshot, pod, reader))
        return nil
    }

    /// A read is over: for the runner's `.get`, or as waitForChange's result.
    private func readDone(_ result: Result<Election.Observation, SimLockError>, for reader: Reader) -> Election.Action? {
        switch reader {
        case .watchEvent:
            switch result {
            case .success(let o): return watchReturned(.observed(o))
            case .failure(let e): return watchReturned(.failure(e))
            }
        case .runner:
            // ElectionRunner `.get` case.
            switch result {
            case .success(let observation):
                return step(.observed(observation))
            case .failure(let error):
                if error.runnerCode == .configuration, election.role == .standby {
                    finish(.configurationError(error.message)); return nil
                }
                return step(.requestFailed(error.message))
            }
        }
    }

    /// ElectionRunner.write, after the request (KubeLockStore.create maps 404
    /// to `.namespaceMissing`, a configuration error: the namespace does not exist).
    private func write(_ response: SimResponse, create: Bool) -> Election.Action {
        if case .object(let snapshot) = response {
            return step(.written(snapshot))
        }
        var error = SimLockError.classify(response)
        if create, case .status(404, _) = response { error = SimLockError(code: .configuration, message: "404 on create") }
        switch error.runnerCode {
        case .lostRace:
            world.noteLostWrite(replica, incarnation)
            return step(.lostRace)
        case .configuration where election.role == .standby:
            fatalOutcome = .configurationError(error.message)
            return .done
        default:
            return step(.requestFailed(error.message))
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
                let timeout = min(.seconds(10), max(.milliseconds(1), now.duration(to: wfcDeadline)))
                send(.watch(from: watchResourceVersion), timeout: timeout, then: .watchOpen(timeout: timeout))
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
                // One that ends at once (within a retry period) is a failure.
                let early = watchOpenedAt.map { $0.duration(to: now) < retryPeriod } ?? true
                stopWatching(keepingVersion: true)
                if early { return watchReturned(.failure(SimLockError(code: .transient, message: "watch ended right after it started"))) }
            case .broken:
                stopWatching()
                return watchReturned(.failure(SimLockError(code: .transient, message: "connection reset")))
            case .added, .modified, .deleted, .expired:
                watchEvents += 1
                if let opened = watchOpenedAt {
                    let periods = Int(opened.duration(to: now) / max(retryPeriod, .milliseconds(1)))
                    if watchEvents > 10 * (periods + 1) {
                        stopWatching()
                        return watchReturned(.failure(SimLockError(code: .transient, message: "watch events faster than 10 per retry period")))
                    }
                }
                // KubeLockStore.handle(event)
                switch item {
                case .added(let b), .modified(let b):
                    if !b.snapshot.resourceVersion.isEmpty { watchResourceVersion = b.snapshot.resourceVersion }
                    return checkOwner(.present(b.snapshot), deadline: now + min(.seconds(10), retryPeriod), for: .watchEvent)
                case .deleted(let rv):
                    watchResourceVersion = rv
                    return watchReturned(.observed(.absent))
                default:
                    // ERROR (410 Expired): thrown; the runner paces the next read.
                    stopWatching()
                    return watchReturned(.failure(SimLockError(code: .transient, message: "watch error 410")))
                }
            }
        }
        return watchReturned(.deadline)
    }

    /// What waitForChange returned (`LockChange`, in KLKube) or threw.
    private enum WatchResult {
        case deadline
        case deadlineWhileOpening
        case observed(Election.Observation)
        case failure(SimLockError)
    }

    /// ElectionRunner.watch(until:) after waitForChange returned or threw.
    private func watchReturned(_ result: WatchResult) -> Election.Action? {
        switch result {
        case .deadline:
            return step(.timer)
        case .deadlineWhileOpening:
            // Paced like a failed watch, quietly.
            watchNotBefore = now + election.timing.retryPeriod
            return step(.timer)
        case .observed(let observation):
            return step(.observed(observation))
        case .failure(let error):
            if error.runnerCode == .configuration {
                fatalOutcome = .configurationError(error.message)
                return .done
            }
            // Read again after the retry period (a release request ends the pause).
            // ElectionRunner.afterWatchFailure: the deadline or a retry
            // period, whichever is first, but never within a retry period of
            // the previous read; no watch for a retry period.
            let retry = election.timing.retryPeriod
            watchNotBefore = now + retry
            var at = min(watchUntil, now + retry)
            if let lastReadAt { at = max(at, lastReadAt + retry) }
            return hostPause(until: at, then: .afterWatchError)
        }
    }

    /// KubeLockStore.stopWatching.
    func stopWatching(keepingVersion: Bool = false) {
        if let w = watch { world.closeWatch(w) }
        watch = nil
        watchExpiry = nil
        watchOpenedAt = nil
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
