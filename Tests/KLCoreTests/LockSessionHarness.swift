import KLCore
import Testing

/// Drives a `LockSession` on a virtual clock against a script (client-go's
/// `leaderelection_test.go` style): each request must match the next
/// scripted expectation, anything else fails the test. Every answered call
/// takes `latency`; sleeps and watch waits move the clock to their end.
/// It decides nothing about the election: it plays the API server and the
/// host (release requests, `beginAcquire`).
final class SessionHarness {
    enum Call: CustomStringConvertible {
        /// A read (LIST; answered with a list holding the observation).
        case get(Result<Election.Observation, LockSession.Failure>)
        case create(Result<LockSnapshot, LockSession.Failure>)
        case update(check: (LeaderElectionRecord, String) -> Void, Result<LockSnapshot, LockSession.Failure>)
        /// A standby's wait: sees `observation` at `after` seconds since t0
        /// when that is before the wait's end (nil: nothing until then).
        case watch(after: Double?, Election.Observation?)
        /// The wait fails (410 Expired, junk, a reset).
        case watchFails(LockSession.Failure)
        /// The watch's open is still in flight when the wait's deadline comes.
        case watchOpenTimesOut

        var description: String {
            switch self {
            case .get: "get"
            case .create: "create"
            case .update: "update"
            case .watch, .watchFails, .watchOpenTimesOut: "watch"
            }
        }
    }

    let t0 = MonotonicInstant(nanoseconds: 1_000_000_000_000)
    private(set) var now: MonotonicInstant
    let wall = WallTime(seconds: 1_795_859_505, nanoseconds: 0)
    var session: LockSession
    var script: [Call]
    var calls: [String] = []
    var times: [Double] = []
    var watchOpens: [Double] = []
    /// What the supervisor is told: leader (with its time) and lost.
    var events: [String] = []
    /// Everything the host sees, in order (acquire, won, renewed, leader).
    var seam: [String] = []
    var logs: [String] = []
    var commands: [LockSession.Command] = []
    var latency: Duration = .milliseconds(50)
    /// A scripted timeout takes the request's whole timeout (else `latency`).
    var hangs = false
    /// The timeout of each update.
    var timeouts: [Duration] = []
    var releaseAt: MonotonicInstant?
    var releaseRequested = false
    /// Host: refuse acquiring writes (kube-leader stopping); after `stopAfter` allowed ones.
    var stopping = false
    var stopAfter = Int.max
    /// `--on-loss standby`: how long the supervisor takes to stop and reap
    /// the old child before it lets the election stand by again (nil: it
    /// answers false, kube-leader is stopping).
    var rejoinAfter: Duration? = .seconds(1)
    private var watchIsOpen = false
    /// The leader's watch between renews takes scripted `.watch`
    /// calls; false: it sees nothing (scripts written before it stay valid),
    /// and a release request wakes its read as the host's pause does.
    var leaderWatchScripted = false
    private var leaderWatchUnscripted: Bool { !leaderWatchScripted && session.election.role == .leading }

    init(_ timing: Election.Timing, kind: LockKind = .configMap, releaseAt: Double? = nil, onLoss: OnLoss = .exit, _ script: [Call]) {
        now = t0
        if let releaseAt { self.releaseAt = t0 + .milliseconds(Int64((releaseAt * 1000).rounded())) }
        session = LockSession(election: Election(identity: "me", timing: timing),
                              config: LockSession.Config(kind: kind, namespace: "ns", name: "lock", requestTimeout: timing.renewDeadline,
                                                         watchOpenTimeout: .seconds(60)), onLoss: onLoss)
        self.script = script
    }

    func seconds(_ s: Double) -> MonotonicInstant { t0 + .milliseconds(Int64((s * 1000).rounded())) }
    var elapsed: Double { Double(t0.duration(to: now).nanoseconds / 1_000_000) / 1000 }
    func advance(to instant: MonotonicInstant) { if instant > now { now = instant } }

    private func next(_ name: String) -> Call? {
        calls.append(name)
        times.append(elapsed)
        guard !script.isEmpty else {
            Issue.record("unexpected call \(name) after the script ended; calls: \(calls)")
            return nil
        }
        let call = script.removeFirst()
        if call.description != name {
            Issue.record("expected \(call.description), got \(name); calls: \(calls)")
            return nil
        }
        advance(to: now + latency)
        return call
    }

    /// Runs the session to its end (or `maxSteps` inputs: a hot loop fails).
    func run(maxSteps: Int = 10_000) -> LockSession.Outcome? {
        var input = LockSession.Input.start
        for _ in 0..<maxSteps {
            if releaseRequested, !session.releaseRequested { session.noteReleaseRequested() }
            let out = session.step(input, now: now, wall: wall)
            commands += out
            #expect(out.filter(\.isBlocking).count == 1 && out.last?.isBlocking == true, "one blocking command, last: \(out)")
            for command in out {
                switch command {
                case .send(let request, let timeout): input = .answer(answer(request, timeout: timeout))
                case .readWatch(let until): input = .watch(readWatch(until: until))
                case .sleep(let until):
                    pause(until: until)
                    input = .woke
                case .beginAcquire:
                    if stopAfter <= 0 { stopping = true }
                    stopAfter -= 1
                    seam.append(stopping ? "acquire refused" : "acquire")
                    if stopping { releaseRequested = true }
                    input = .acquireAllowed(!stopping && !releaseRequested)
                case .awaitRejoin:
                    seam.append("await rejoin")
                    if let delay = rejoinAfter { advance(to: now + delay) }
                    input = .rejoin(rejoinAfter != nil)
                case .done(let outcome): return outcome
                case .closeWatch: watchIsOpen = false
                case .endAcquire(let won): seam.append(won ? "won" : "not won")
                case .becameLeader:
                    events.append("leader@\(t0.duration(to: now))")
                    seam.append("leader")
                case .lostLeadership(let reason):
                    events.append("lost: \(reason)")
                    seam.append("lost")
                case .renewed(let sentAt): seam.append("renewed@\(t0.duration(to: sentAt))")
                case .handOver(let to):
                    events.append("hand over to \(to)")
                    seam.append("hand over")
                case .handedOver: seam.append("handed over")
                case .log(let level, let message, let fields):
                    logs.append("\(level.name) \(message) \(fields.map { "\($0.key)=\($0.value)" }.joined(separator: " "))")
                case .report: break
                }
            }
        }
        Issue.record("the session did not end within \(maxSteps) steps: \(calls)")
        return nil
    }

    private func pause(until: MonotonicInstant) {
        if let r = releaseAt, !releaseRequested, r <= until {
            advance(to: r)
            releaseRequested = true
            session.noteReleaseRequested()
            return
        }
        advance(to: until)
    }

    static func listBody(_ o: Election.Observation, rv: String = "900") -> JSON {
        .object(["kind": .string("ConfigMapList"), "metadata": .object(["resourceVersion": .string(rv)]),
                 "items": .array(o.snapshot.map { [$0.object] } ?? [])])
    }

    private func answer(_ request: LockSession.Request, timeout: Duration) -> LockSession.Answer {
        switch request {
        case .list, .get:
            guard case .get(let result)? = next("get") else { return .failed(.init(.status(403), "script")) }
            watchIsOpen = false
            switch result {
            case .success(let o): return .ok(Self.listBody(o))
            case .failure(let f): return .failed(f)
            }
        case .getPod:
            Issue.record("unexpected pod lookup")
            return .failed(.init(.status(404), "no pod"))
        case .create:
            guard case .create(let result)? = next("create") else { return .failed(.init(.status(403), "script")) }
            switch result {
            case .success(let s): return .ok(s.object)
            case .failure(let f): return .failed(f)
            }
        case .update(let object):
            guard case .update(let check, let result)? = next("update") else { return .failed(.init(.status(403), "script")) }
            let sent = LockCodec.decode(.configMap, object: object)
            check(sent.record!, sent.resourceVersion)
            timeouts.append(timeout)
            switch result {
            case .success(let s): return .ok(s.object)
            case .failure(let f):
                // A request that hangs takes its whole timeout.
                if f.kind == .timedOut, hangs { advance(to: now + timeout - latency) }
                return .failed(f)
            }
        case .watch:
            if leaderWatchUnscripted {
                watchIsOpen = true
                return .ok(.null)
            }
            if case .watchOpenTimesOut? = script.first {
                watchOpens.append(elapsed)
                _ = next("watch")
                advance(to: now + timeout)
                return .failed(.init(.timedOut, "watch open timed out"))
            }
            watchOpens.append(elapsed)
            watchIsOpen = true
            return .ok(.null)
        }
    }

    private func readWatch(until: MonotonicInstant) -> LockSession.WatchRead {
        #expect(watchIsOpen, "read of a watch that is not open")
        if leaderWatchUnscripted {
            pause(until: until)
            return .timedOut
        }
        let call = next("watch")
        if case .watchFails(let f)? = call {
            watchIsOpen = false
            return .failed(f)
        }
        guard case .watch(let after, let observation)? = call else { return .failed(.init(.transport, "script")) }
        if let after, let observation, seconds(after) < until {
            advance(to: seconds(after))
            switch observation {
            case .absent:
                return .line(#"{"type":"DELETED","object":{"metadata":{"name":"lock","resourceVersion":"999"}}}"#)
            case .present(let s):
                return .line(JSON.object(["type": .string("MODIFIED"), "object": s.object]).serialized())
            }
        }
        advance(to: until)
        return .timedOut
    }
}

extension LockSession.Failure {
    static func status(_ code: Int, _ message: String) -> Self { Self(.status(code), message) }
}
