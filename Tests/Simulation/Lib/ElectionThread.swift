import KLCore

/// What wakes the election thread.
enum RunnerInput {
    case response(request: Int, SimResponse)
    case watchItem(watch: Int)
    case timer(token: Int)
    /// The wake-up pipe: the main thread asked for a release.
    case wake
    /// The wake-up pipe: the main thread let the election stand by again.
    case rejoin
}

/// The election thread of one simulated kube-leader process: the REAL
/// `LockSession` (KLCore: `Election` and every decision around it), driven
/// like `Leader/ElectionRunner.swift` drives it, with the simulated world as
/// its I/O. This file decides nothing: it performs each command (a request
/// on the simulated network, a watch read, a sleep on the replica's clock, a
/// host callback) and feeds the result back. Where the real driver blocks,
/// this one records what it waits for and resumes on the matching
/// `RunnerInput`.
final class ElectionThread {
    unowned let world: World
    let replica: Int
    let incarnation: Int
    private(set) var session: LockSession
    var election: Election { session.election }
    private(set) var finished = false
    private var watch: WatchConnection?

    private enum Blocked {
        case none
        case request(id: Int, write: Bool, list: Bool)
        case sleep(token: Int)
        case watchRead(token: Int)
        /// `ElectionMailbox.awaitRejoin`: until the supervisor lets it go on.
        case rejoin
    }
    private var blocked: Blocked = .none

    init(world: World, replica: Int, incarnation: Int, election: Election, requestTimeout: Duration, onLoss: OnLoss = .exit) {
        self.world = world
        self.replica = replica
        self.incarnation = incarnation
        let server = world.server
        session = LockSession(election: election, config: LockSession.Config(
            kind: server.kind, namespace: server.namespace, name: server.name, requestTimeout: requestTimeout,
            watchSeconds: server.watchSeconds, bookmarkInterval: .nanoseconds(server.bookmarkInterval)), onLoss: onLoss)
    }

    var now: MonotonicInstant { world.localNow(replica) }
    private var host: ReplicaProcess { world.process(replica, incarnation)! }

    func start() { run(.start) }

    /// Steps the session with `input` and performs its commands until one
    /// blocks on the world.
    private func run(_ first: LockSession.Input) {
        var input = first
        next: while true {
            // The host's flag, read at each step as the real driver does.
            if host.mailbox.releaseRequested, !session.releaseRequested { session.noteReleaseRequested() }
            let commands = session.step(input, now: now, wall: world.wallNow(replica))
            world.trace(replica, "session \(Self.text(input)) -> \(commands.filter { if case .log = $0 { false } else { true } }.map(Self.text).joined(separator: ", ")) [\(session.election.role)]")
            for command in commands {
                switch command {
                case .send(let request, let timeout):
                    let simRequest = SimRequest(request)
                    if case .watch = request { closeWatch() }
                    let id = world.send(simRequest, from: replica, incarnation, timeout: timeout,
                                        standby: session.election.role == .standby)
                    blocked = .request(id: id, write: simRequest.isWrite, list: request == .list)
                    return
                case .readWatch(let until):
                    // ElectionMailbox.pause(until:orReadable:): a byte in the
                    // wake-up pipe with a release asked ends the read at once.
                    if host.wakePipe {
                        host.wakePipe = false
                        if host.mailbox.releaseRequested { input = .watch(.timedOut); continue next }
                    }
                    if let item = watch?.popArrived() {
                        input = .watch(item.read)
                        continue next
                    }
                    blocked = .watchRead(token: world.runnerTimer(replica, incarnation, at: until))
                    return
                case .sleep(let until):
                    // ElectionMailbox.pause: returns at once when the time has come,
                    // or when the wake-up pipe holds a byte and a release is asked.
                    if now >= until { input = .woke; continue next }
                    if host.wakePipe {
                        host.wakePipe = false
                        if host.mailbox.releaseRequested { input = .woke; continue next }
                    }
                    blocked = .sleep(token: world.runnerTimer(replica, incarnation, at: until))
                    return
                case .beginAcquire:
                    input = .acquireAllowed(world.hostBeginAcquire(replica, incarnation))
                    continue next
                case .awaitRejoin:
                    // ElectionMailbox.awaitRejoin: returns once the flag is set
                    // (false when a release was asked instead).
                    if let answer = rejoinAnswer() { input = .rejoin(answer); continue next }
                    blocked = .rejoin
                    return
                case .done(let outcome):
                    closeWatch()
                    finished = true
                    blocked = .none
                    world.hostFinished(replica, incarnation, outcome)
                    return
                case .closeWatch: closeWatch()
                case .endAcquire(let won): world.hostEndAcquire(replica, incarnation, won: won)
                case .becameLeader: world.hostBecameLeader(replica, incarnation)
                case .lostLeadership(let reason): world.hostLostLeadership(replica, incarnation, reason: reason)
                case .handOver(let to): world.hostHandOver(replica, incarnation, to: to)
                case .handedOver: world.hostHandedOver(replica, incarnation)
                case .renewed(let sentAt): world.hostRenewed(replica, incarnation, sentAt: sentAt)
                case .log(let level, let message, _):
                    if level >= .warning { world.trace(replica, "log \(level.name): \(message)") }
                case .report: break
                }
            }
            return  // unreachable: every step ends with a blocking command
        }
    }

    // MARK: Inputs

    func receive(_ input: RunnerInput) {
        guard !finished else { return }
        switch (blocked, input) {
        case (.request(let id, let write, let list), .response(let rid, let response)) where id == rid:
            blocked = .none
            if case .watchOpened(let w) = response {
                guard let conn = world.watchConnection(w) else {
                    run(.answer(.failed(LockSession.Failure(.transport, "watch connection closed"))))
                    return
                }
                watch = conn
                run(.answer(.ok(.null)))
                return
            }
            // The request budget allows one read and one watch after a lost write.
            if write, case .status(let code, _) = response, code == 409 || code == 404 { world.noteLostWrite(replica, incarnation) }
            if list, case .status(403, _) = response { world.noteListForbidden(replica, incarnation) }
            run(.answer(response.answer))
        case (.sleep(let token), .timer(let t)) where token == t:
            blocked = .none
            run(.woke)
        case (.rejoin, .rejoin), (.rejoin, .wake):
            guard let answer = rejoinAnswer() else { return }
            blocked = .none
            run(.rejoin(answer))
        case (.sleep, .wake):
            // The byte in the wake-up pipe ends the poll.
            host.wakePipe = false
            blocked = .none
            run(.woke)
        case (.watchRead, .wake):
            // ElectionMailbox.pause(until:orReadable:) polls the wake-up pipe
            // with the watch: a release request ends the read early.
            host.wakePipe = false
            guard host.mailbox.releaseRequested else { return }
            blocked = .none
            run(.watch(.timedOut))
        case (.watchRead(let token), .timer(let t)) where token == t:
            blocked = .none
            run(.watch(.timedOut))
        case (.watchRead, .watchItem(let w)) where w == watch?.id:
            guard let item = watch?.popArrived() else { return }
            blocked = .none
            run(.watch(item.read))
        default:
            break  // stale (an earlier request's deadline, a closed watch)
        }
    }

    /// ElectionMailbox.awaitRejoin's check of the shared state: nil: keep waiting.
    private func rejoinAnswer() -> Bool? { host.mailbox.takeRejoin() }

    /// Closes the open watch (the session's `.closeWatch`, or the process ends).
    func closeWatch() {
        if let w = watch { world.closeWatch(w) }
        watch = nil
    }

    // MARK: Trace text

    static func text(_ input: LockSession.Input) -> String {
        switch input {
        case .start: "start"
        case .answer(.ok): "ok"
        case .answer(.failed(let f)): "failed(\(f.kind))"
        case .acquireAllowed(let a): "acquireAllowed(\(a))"
        case .watch(.line(let l)): "line(\(l.prefix(60))…)"
        case .watch(let r): "watch(\(r))"
        case .woke: "woke"
        case .rejoin(let a): "rejoin(\(a))"
        }
    }

    static func text(_ command: LockSession.Command) -> String {
        switch command {
        case .send(let r, let t): "send \(SimRequest(r).name) timeout \(t)"
        case .readWatch(let u): "readWatch(\(u.nanoseconds / 1_000_000)ms)"
        case .sleep(let u): "sleep(\(u.nanoseconds / 1_000_000)ms)"
        case .done(let o): "done(\(o))"
        case .log(_, let m, _): "log(\(m))"
        case .report: "report"
        default: "\(command)"
        }
    }
}
