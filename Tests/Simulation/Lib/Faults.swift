import KLCore

/// One scheduled step: a fault, or a scripted action of a scenario.
public struct ScriptStep {
    public let name: String
    let action: (World) -> Void

    public init(_ name: String, _ action: @escaping (World) -> Void) {
        self.name = name
        self.action = action
    }

    func apply(_ world: World) {
        world.trace("step: \(name)")
        action(world)
    }
}

/// The kinds of fault a random plan draws from.
public enum FaultKind: String, CaseIterable, Sendable {
    case partition, refuse, slow, errors, dropWatch = "drop-watch", flakyWatch = "flaky-watch", crash, sigterm
    case childExit = "child-exit", hang, delete, annotate, clearHolder = "clear-holder", apiRestart = "api-restart"
    /// Another writer changes the holder or the lease (also A→B→A,
    /// the lock recreated with another record, a mutating webhook).
    case otherWriter = "other-writer"
    /// Every request answered 403 for a while (after reads worked).
    case authOutage = "auth-outage"
    /// A replica's kept-alive connection goes silent.
    case silentConnection = "silent-connection"
    /// Not a storm fault: children that leave a background process in their
    /// process group (`sh -c 'worker & exit 0'`), one in ten.
    case backgroundChild = "background-child"
    /// Outside the documented guarantees (not drawn unless asked for): a
    /// kube-leader that is not PID 1 is SIGKILLed while its child's background
    /// process runs (that process survives: PR_SET_PDEATHSIG reaches only the
    /// direct child). Without it such a crash is skipped.
    case crashWithOrphans = "crash-with-orphans"
    /// Outside the documented guarantees: a kube-leader starts fresh within a
    /// lease after someone deleted the lock or cleared its holder (it cannot
    /// tell a deleted lock from a new one). Without it such a start waits.
    case freshStartAfterDelete = "fresh-start-after-delete"
    /// Not a fault: the seed's replicas run `--coordinated` (Lease lock,
    /// versions drawn) and the world's election controller names the holder
    /// (Coordination.swift). Not drawn unless asked for.
    case coordinated

    /// Every kind the documented guarantees cover: the default mix.
    public static let guaranteed: [FaultKind] = allCases.filter { $0 != .crashWithOrphans && $0 != .freshStartAfterDelete && $0 != .coordinated }

    /// Parses "all", "none", "guaranteed" or a comma-separated list.
    public static func parse(_ text: String) -> [FaultKind]? {
        switch text {
        case "all": return allCases
        case "none": return []
        case "guaranteed": return guaranteed
        default:
            var out: [FaultKind] = []
            for name in text.split(separator: ",") {
                if name == "guaranteed" { out += guaranteed.filter { !out.contains($0) }; continue }
                guard let k = FaultKind(rawValue: String(name)) else { return nil }
                if !out.contains(k) { out.append(k) }
            }
            return out
        }
    }
}

extension ScriptStep {
    /// kube-leader starts on replica `r`.
    public static func start(_ r: Int) -> ScriptStep {
        ScriptStep("start replica-\(r)") { $0.startReplica(r) }
    }

    /// Replica `r` cannot reach the API server for `duration`: packets are
    /// dropped (timeouts, half-open watches) or refused (fast errors, resets).
    public static func partition(_ r: Int, for duration: SimTime, refuse: Bool = false) -> ScriptStep {
        ScriptStep("partition replica-\(r) for \(duration.traceText)\(refuse ? " (refused)" : "")") { w in
            w.dropWatches(of: r, how: refuse ? .reset : .silent)
            w.replicas[r].net.partitionUntil = w.now + duration
            w.replicas[r].net.refuse = refuse
        }
    }

    /// Responses to (or requests from) replica `r` (nil: all) are slow.
    public static func slow(_ r: Int?, for duration: SimTime, extraMs: ClosedRange<Int64>, beforeServer: Bool) -> ScriptStep {
        ScriptStep("slow \(r.map { "replica-\($0)" } ?? "all") for \(duration.traceText) +\(extraMs)ms \(beforeServer ? "before" : "after") the server") { w in
            for i in w.replicaIndices(r) {
                w.replicas[i].net.slowUntil = w.now + duration
                w.replicas[i].net.slowMs = extraMs
                w.replicas[i].net.slowBeforeServer = beforeServer
            }
        }
    }

    /// The API server answers `code` to a share of requests; some of those
    /// were carried out anyway (a timeout behind a proxy after the write).
    public static func errors(_ r: Int?, for duration: SimTime, probability: Double, processed: Double, code: Int = 500) -> ScriptStep {
        ScriptStep("\(code) for \(r.map { "replica-\($0)" } ?? "all") for \(duration.traceText) p=\(probability)") { w in
            for i in w.replicaIndices(r) {
                w.replicas[i].net.errorUntil = w.now + duration
                w.replicas[i].net.errorProbability = probability
                w.replicas[i].net.errorProcessedProbability = processed
                w.replicas[i].net.errorCode = code
            }
        }
    }

    public static func dropWatches(_ r: Int?, how: WatchDrop) -> ScriptStep {
        ScriptStep("drop watches of \(r.map { "replica-\($0)" } ?? "all") (\(how))") { $0.dropWatches(of: r, how: how) }
    }

    /// kube-leader on `r` is killed (SIGKILL, OOM): no release; its child
    /// dies by PR_SET_PDEATHSIG.
    public static func crash(_ r: Int) -> ScriptStep {
        ScriptStep("crash replica-\(r)") { $0.crash(r) }
    }

    /// SIGTERM to kube-leader on `r`; the kubelet kills it after `grace`.
    public static func sigterm(_ r: Int, grace: SimTime) -> ScriptStep {
        ScriptStep("SIGTERM replica-\(r)") { w in
            guard let p = w.replicas[r].process else { return }
            p.post(.terminate)
            w.wakeMain(r, p.incarnation)
            let inc = p.incarnation
            w.schedule(w.now + grace, ScriptStep("kubelet kills replica-\(r) after the grace period") { w in
                if w.process(r, inc) != nil { w.crash(r) }
            })
        }
    }

    /// The leader's child exits by itself.
    public static func childExit(code: Int32 = 1) -> ScriptStep {
        ScriptStep("the leader's child exits (\(code))") { w in
            if let c = w.leaderChild() { w.childExits(c, code: code) }
        }
    }

    /// The election thread of `r` is blocked (DNS, a stuck write) for `duration`.
    public static func hang(_ r: Int, for duration: SimTime) -> ScriptStep {
        ScriptStep("election thread of replica-\(r) blocked for \(duration.traceText)") { w in
            w.replicas[r].process?.frozenUntil = w.now + duration
        }
    }

    /// `kubectl delete` of the lock.
    /// `force`: also when a standby has not seen the hold (scenarios).
    public static func deleteLock(force: Bool = false) -> ScriptStep {
        ScriptStep("someone deletes the lock") { w in
            guard w.holdEndMayHappen(force: force) else { return }
            if w.server.delete(at: w.now, deliver: { c, i in w.deliver(c, i) }) { w.holdEndedByOthersAt = w.now }
        }
    }

    /// Someone adds an annotation (the resourceVersion changes, the record
    /// not). One in four names a preferred holder (a hand-over): a
    /// replica (one in eight) or a name nobody answers to.
    public static func annotate() -> ScriptStep {
        ScriptStep("someone annotates the lock") { w in
            let n = w.rng.int(0...1_000_000)
            let preferred: String? = n % 4 != 0 ? nil : n % 8 == 0 ? "replica-\((n / 8) % w.replicas.count)" : "nobody"
            if let preferred { w.trace("the annotation names \(preferred) as preferred holder") }
            _ = w.server.edit(at: w.now, deliver: { c, i in w.deliver(c, i) }) { o in
                if let preferred {
                    o[path: "metadata", "annotations", LockKind.preferredHolderAnnotation] = .string(preferred)
                } else {
                    o[path: "metadata", "annotations", "example.com/edited"] = .string("\(n)")
                }
            }
        }
    }

    /// Someone empties the holder (`kubectl edit`), keeping the rest.
    public static func clearHolder() -> ScriptStep {
        ScriptStep("someone clears the holder") { w in
            guard w.holdEndMayHappen() else { return }
            let kind = w.server.kind
            w.holdEndedByOthersAt = w.now
            _ = w.server.edit(at: w.now, deliver: { c, i in w.deliver(c, i) }) { o in
                let s = LockCodec.decode(kind, object: o)
                guard var record = s.record else { return }
                record.holderIdentity = ""
                o = LockCodec.updatedObject(kind, base: s, record: record)
            }
        }
    }

    /// The API server restarts: watches end, the history starts again.
    public static func apiServerRestart() -> ScriptStep {
        ScriptStep("the API server restarts") { w in
            w.server.restart(at: w.now, deliver: { c, i in w.deliver(c, i) })
        }
    }
}

extension World {
    func replicaIndices(_ r: Int?) -> [Int] { r.map { [$0] } ?? Array(0..<replicas.count) }
}

/// A random fault schedule drawn from the seed: storms of faults, each
/// followed by a quiet time with a liveness checkpoint.
public struct RandomPlan {
    public var kinds: [FaultKind] = FaultKind.guaranteed

    public init(kinds: [FaultKind] = FaultKind.guaranteed) { self.kinds = kinds }

    static let weights: [FaultKind: Int] = [
        .partition: 10, .refuse: 5, .slow: 8, .errors: 8, .dropWatch: 6, .flakyWatch: 3, .crash: 8, .sigterm: 5,
        .childExit: 6, .hang: 3, .delete: 3, .annotate: 4, .clearHolder: 2, .apiRestart: 3,
        .otherWriter: 3, .authOutage: 3, .silentConnection: 4,
    ]

    /// The longest a fault's effect outlasts its storm (kubelet grace 30 s +
    /// restart delay 10 s).
    static let maxAftermath: SimTime = 41 * SimTime.second

    /// Schedules starts, storms and checkpoints over `duration`.
    public func schedule(on world: World, duration: SimTime) {
        var rng = SimRandom(seed: world.config.seed ^ 0x5EED_FA17)
        let timing = world.config.timing
        let n = world.replicas.count
        for r in 0..<n { world.schedule(rng.millis(0...2000), .start(r)) }
        let lease = timing.leaseDuration.nanoseconds
        let retry = timing.retryPeriod.nanoseconds
        var settle = (lease + SimTime.second - 1) / SimTime.second * SimTime.second + retry + SimTime.second
        if world.coordinatedOn {
            // The controller names a holder only once the old lease has run
            // out by its clock (wall clocks ±2 s), after its 5 s ping round;
            // the named replica may wait a lease before it takes the offer.
            settle += 12 * SimTime.second + max(lease, 5 * SimTime.second)
        }
        let choices = kinds.filter { Self.weights[$0] != nil }.map { ($0, Self.weights[$0]!) }
        var t: SimTime = 5 * SimTime.second
        while t + 100 * SimTime.second < duration {
            let storm = rng.millis(10_000...90_000)
            let end = t + storm
            if !choices.isEmpty {
                for _ in 0..<rng.int(1...6) {
                    let at = t + rng.int(0...(storm - 1))
                    let left = end - at
                    let kind = rng.weighted(choices)
                    for (offset, step) in Self.steps(kind, at: at, left: left, replicas: n, lease: lease, rng: &rng) {
                        world.schedule(at + offset, step)
                    }
                }
            }
            let check = end + Self.maxAftermath + settle
            world.checkpoint(at: check, quietSince: end)
            t = check + rng.millis(0...60_000)
        }
    }

    static func steps(_ kind: FaultKind, at: SimTime, left: SimTime, replicas n: Int, lease: SimTime,
                      rng: inout SimRandom) -> [(SimTime, ScriptStep)] {
        let r = rng.int(0...(n - 1))
        let someone: Int? = rng.chance(0.3) ? nil : r
        func upTo(_ d: SimTime) -> SimTime { max(1, min(d, left)) }
        switch kind {
        case .partition:
            return [(0, .partition(r, for: upTo(rng.millis(500...30_000))))]
        case .refuse:
            return [(0, .partition(r, for: upTo(rng.millis(500...30_000)), refuse: true))]
        case .slow:
            let extra: ClosedRange<Int64> = rng.chance(0.5) ? 50...2_000 : 1_000...15_000
            return [(0, .slow(someone, for: upTo(rng.millis(1_000...60_000)), extraMs: extra, beforeServer: rng.chance(0.5)))]
        case .errors:
            return [(0, .errors(someone, for: upTo(rng.millis(1_000...60_000)), probability: 0.2 + 0.8 * rng.unit(),
                                processed: rng.chance(0.5) ? 0 : 0.3, code: rng.chance(0.5) ? 500 : 503))]
        case .dropWatch:
            let how: WatchDrop = rng.weighted([(.end, 2), (.reset, 1), (.silent, 1)])
            return [(0, .dropWatches(someone, how: how))]
        case .flakyWatch:
            let every = rng.millis(50...1_000)
            let span = upTo(rng.millis(2_000...20_000))
            var out: [(SimTime, ScriptStep)] = []
            var o: SimTime = 0
            while o < span { out.append((o, .dropWatches(someone, how: .end))); o += every }
            return out
        case .crash:
            return [(0, .crash(r))]
        case .sigterm:
            return [(0, .sigterm(r, grace: rng.millis(1_000...30_000)))]
        case .childExit:
            return [(0, .childExit(code: Int32(rng.int(0...2))))]
        case .hang:
            return [(0, .hang(r, for: upTo(rng.int((lease / 2)...(2 * lease)))))]
        case .delete:
            return [(0, .deleteLock())]
        case .annotate:
            return [(0, .annotate())]
        case .clearHolder:
            return [(0, .clearHolder())]
        case .apiRestart:
            return [(0, .apiServerRestart())]
        case .otherWriter:
            let lease = rng.chance(0.5) ? 1 : Int(rng.int(Int64(1)...Int64(60)))
            switch rng.int(0...4) {
            case 0: return [(0, .otherWriter(holder: "operator", leaseSeconds: lease))]
            case 1: return [(0, .otherWriter(holder: nil, leaseSeconds: lease))]
            case 2: return [(0, .handAwayAndBack(holder: "operator", after: rng.millis(10...3_000)))]
            case 3: return [(0, .recreate(holder: "operator", leaseSeconds: lease))]
            default: return [(0, .webhook(leaseSeconds: 1, for: upTo(rng.millis(1_000...20_000))))]
            }
        case .authOutage:
            return [(0, .authOutage(someone, for: upTo(rng.millis(500...20_000))))]
        case .silentConnection:
            return [(0, .silentConnection(r))]
        case .backgroundChild, .crashWithOrphans, .freshStartAfterDelete, .coordinated:
            return []
        }
    }
}
