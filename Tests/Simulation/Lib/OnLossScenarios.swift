import KLCore

/// `--on-loss standby` (docs/safety.md). Leaders lose the lock to API
/// outages; instead of exiting, each stops its child (the whole group,
/// reaped) and stands by again in the same process. No process exits, no
/// restart; after every outage a leader's child runs again within lease +
/// retry of its end; never two children.
extension Scenarios {
    nonisolated(unsafe) public static let onLoss: [Scenario] = [standbyOutages, standbyAlone, standbyCutOffLeader]

    static func standbyBase(_ kind: LockKind, replicas: Int) -> SimConfig {
        var c = base(kind, replicas: replicas)
        c.onLoss = [.standby]
        c.restartDelayMs = nil   // an exit would show: nobody restarts it
        return c
    }

    /// The API server is down for 30 s, three times, 60 s apart: answered
    /// 503 (errors) or not at all (every replica cut off).
    enum Outage: String { case errors503 = "503", dead }

    static func outage(_ how: Outage, at: SimTime, replicas: Int) -> [ScriptStep] {
        switch how {
        case .errors503: return [.errors(nil, for: 30 * s, probability: 1, processed: 0, code: 503)]
        case .dead: return (0..<replicas).map { .partition($0, for: 30 * s) }
        }
    }

    /// Checks common to the outage variants: nobody exited, the first leader
    /// stood by again, and after each outage's end a child started within
    /// lease + retry (+ 100 ms of network and scheduling).
    static func recovered(_ w: World, outageEnds: [SimTime], lease: SimTime, retry: SimTime) -> [String] {
        var f: [String] = []
        for r in w.replicas.indices {
            if !w.replicas[r].exits.isEmpty { f.append("replica-\(r) exited: \(w.replicas[r].exits)") }
            if w.replicas[r].starts != 1 { f.append("replica-\(r) started \(w.replicas[r].starts) times") }
        }
        if w.replicas.reduce(0, { $0 + $1.rejoins }) < outageEnds.count {
            f.append("fewer rejoins (\(w.replicas.map(\.rejoins))) than outages (\(outageEnds.count))")
        }
        for end in outageEnds {
            f += expectLeader(w, by: end + lease + retry + 100 * ms, after: end, "recovered within lease + retry of the outage's end")
        }
        return f
    }

    nonisolated(unsafe) static let standbyOutages = Scenario(name: "on-loss-standby-outages", title: "--on-loss standby: three 30 s API outages; no exit, recovery within lease + retry", variants:
        kinds.flatMap { kind in
            [Outage.errors503, .dead].map { how in
                let c = standbyBase(kind, replicas: 3)
                let starts: [SimTime] = [10 * s, 70 * s, 130 * s]
                return Scenario.Variant(label: "\(kind.rawValue)-\(how.rawValue)", config: c, duration: 190 * s, setup: { w in
                    startAll(w)
                    for t in starts { for step in outage(how, at: t, replicas: 3) { w.schedule(t, step) } }
                }, check: { w in
                    var f = recovered(w, outageEnds: starts.map { $0 + 30 * s }, lease: 4 * s, retry: 1 * s)
                    // Every outage cost the leader of the time its leadership.
                    if w.childStarts < 4 { f.append("only \(w.childStarts) children started over 3 outages") }
                    return f
                })
            }
        })

    /// A single replica: it loses, stops its child, stands by again and is
    /// the next leader itself (its own old record waited out for a lease).
    nonisolated(unsafe) static let standbyAlone = Scenario(name: "on-loss-standby-alone", title: "--on-loss standby, one replica: loses to an outage, leads again after it", variants:
        kinds.map { kind in
            var c = standbyBase(kind, replicas: 1)
            c.child.slowTermProbability = 1   // its child takes up to 1.5 × kill grace: SIGKILL
            return Scenario.Variant(label: kind.rawValue, config: c, duration: 60 * s, setup: { w in
                w.schedule(0, .start(0))
                for step in outage(.errors503, at: 10 * s, replicas: 1) { w.schedule(10 * s, step) }
            }, check: { w in
                var f = recovered(w, outageEnds: [40 * s], lease: 4 * s, retry: 1 * s)
                if w.childStarts(of: 0).count != 2 { f.append("replica-0 started \(w.childStarts(of: 0).count) children, not 2") }
                return f
            })
        })

    /// Only the leader is cut off (its child ignores SIGTERM: SIGKILL after
    /// the kill grace): a standby takes over after the lease; the old leader
    /// stands by again, and leads again when the new leader's child exits.
    nonisolated(unsafe) static let standbyCutOffLeader = Scenario(name: "on-loss-standby-cut-off-leader", title: "--on-loss standby: the leader alone is cut off, stands by again, and leads again later", variants:
        kinds.map { kind in
            var c = standbyBase(kind, replicas: 2)
            c.child.ignoresTermProbability = 1
            return Scenario.Variant(label: kind.rawValue, config: c, duration: 60 * s, setup: { w in
                startAll(w)
                w.schedule(10 * s, .partition(0, for: 15 * s))
                // Replica 1 leads from about 14 s; its child exits at 35 s:
                // kube-leader on replica 1 exits with it, and replica 0 (standing
                // by again since about 13 s) takes the released lock.
                w.schedule(35 * s, .childExit(code: 0))
            }, check: { w in
                var f: [String] = []
                if !w.replicas[0].exits.isEmpty { f.append("replica-0 exited: \(w.replicas[0].exits)") }
                if w.replicas[0].rejoins != 1 { f.append("replica-0 stood by again \(w.replicas[0].rejoins) times, not once") }
                if w.replicas[1].exits != [.childExited(0)] { f.append("replica-1 exits \(w.replicas[1].exits), not its child's 0") }
                let again = w.childStarts(of: 0).filter { $0 > 35 * s }
                if again.isEmpty || again[0] > 35 * s + 250 * ms { f.append("replica-0 did not lead again within 250 ms of the release: \(again)") }
                return f
            })
        })
}
