import KLCore
import Testing

// What the suites that drive the pure machines by hand share: made-up
// instants on a virtual clock, the usual timings, lock records and the
// filters of the machines' outputs. A suite conforms and, where it needs
// other values, declares its own `t0` or `timing`.

/// Made-up instants, `t0` + seconds (to the millisecond): nothing sleeps.
protocol VirtualClock {
    var t0: MonotonicInstant { get }
}

extension VirtualClock {
    var t0: MonotonicInstant { MonotonicInstant(nanoseconds: 1_000_000_000_000) }

    func at(_ seconds: Double) -> MonotonicInstant { t0 + .milliseconds(Int64((seconds * 1000).rounded())) }
}

/// `Election` and `LockSession` scripts: lease 15 s, renew deadline 10 s,
/// retry period 2 s, a fixed wall clock, ConfigMap lock records.
protocol ElectionScript: VirtualClock {
    var timing: Election.Timing { get }
}

extension ElectionScript {
    var timing: Election.Timing { Election.Timing(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2)) }
    var wall: WallTime { WallTime(seconds: 1_795_859_505) }

    /// A ConfigMap record held by `holder` at `rv`; an empty holder is a
    /// holder's release (lease 1 s, as client-go writes it) unless `lease`
    /// says otherwise; `preferred` names a preferred holder (annotation).
    func snapshot(_ holder: String, rv: String, lease: Int? = nil, preferred: String? = nil) -> LockSnapshot {
        var o = LockCodec.newObject(.configMap, namespace: "ns", name: "lock", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: lease ?? (holder.isEmpty ? 1 : 15),
            acquireTime: nil, renewTime: nil, leaderTransitions: 0))
        o[path: "metadata", "resourceVersion"] = .string(rv)
        if let preferred { o[path: "metadata", "annotations", LockKind.preferredHolderAnnotation] = .string(preferred) }
        return LockCodec.decode(.configMap, object: o)
    }
}

/// `Supervision` scripts: renew deadline 2 s, kill grace 1 s (release
/// timeout 3 s, drain 5 s / 100 ms).
protocol SupervisionScript: VirtualClock {
    var timing: Supervision.Timing { get }
}

extension SupervisionScript {
    var timing: Supervision.Timing { Supervision.Timing(renewDeadline: .seconds(2), killGrace: .seconds(1), drainInterval: .milliseconds(100)) }

    /// The actions without the log lines.
    func acts(_ actions: [Supervision.Action]) -> [Supervision.Action] {
        actions.filter { if case .log = $0 { return false } else { return true } }
    }

    /// The messages of the log lines.
    func messages(_ actions: [Supervision.Action]) -> [String] {
        actions.compactMap { if case .log(let note) = $0 { return note.message } else { return nil } }
    }

    /// A machine that became leader at 0.1 s (the acquire sent at 0): its
    /// spawn is pending.
    func starting() -> Supervision {
        var s = Supervision(timing: timing)
        _ = s.step(.renewed(sentAt: at(0)), now: at(0))
        _ = s.step(.becameLeader(), now: at(0.1))
        return s
    }

    /// Brings `s` to a running child `pid`: the acquire sent at `t`, leading
    /// and spawned 0.1 s later.
    func running(_ s: inout Supervision, from t: Double = 0, pid: Int32 = 100) {
        _ = s.step(.renewed(sentAt: at(t)), now: at(t))
        #expect(acts(s.step(.becameLeader(), now: at(t + 0.1))) == [.spawn(environment: [:])])
        _ = s.step(.spawned(pid: pid), now: at(t + 0.1))
        #expect(s.phase == .running(pid: pid))
    }
}
