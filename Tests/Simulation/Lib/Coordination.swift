import KLCore

// Coordinated leader election in the simulated world (docs/coordinated.md): the
// LeaseCandidates the replicas keep, and the cluster's election controller
// (kube-controller-manager, KEP-4355) writing the Lease. A model of the
// world, not of kube-leader: replicas with `SimConfig.coordinatedVersions`
// run the real `Election` with `coordinated` on; a live kube-leader keeps
// its candidate and answers pings (within its poll interval), a clean exit
// deletes it, a crash leaves it unanswered.

/// One LeaseCandidate as the API server holds it (true time, ns).
struct SimCandidate {
    var replica: Int
    var version: [Int]
    var createdAt: SimTime
    /// Last `renewTime` the candidate wrote (true time).
    var renewAt: SimTime
    var pingAt: SimTime?
    var name: String
}

/// The controller's state and the candidates.
struct SimCoordination {
    var candidates: [Int: SimCandidate] = [:]
    var ticking = false
    /// Controller writes of the Lease (holder, preferredHolder), for reports.
    var elections: [(at: SimTime, holder: String)] = []
    var preferred: [(at: SimTime, holder: String)] = []
    /// How long the controller waits for pinged candidates, and the lease it writes.
    static let electionDuration: SimTime = 5 * SimTime.second
    static let leaseSeconds = 5
    static let tick: SimTime = 100 * SimTime.ms
}

extension World {
    var coordinatedOn: Bool { config.coordinatedVersions != nil }

    /// kube-leader on `r` starts with `--coordinated`: its candidate exists
    /// (created before it waits for the lock; a leftover is taken over).
    func coordinatedStart(_ r: Int, election: inout Election) {
        guard let versions = config.coordinatedVersions else { return }
        election.coordinated = true
        let text = versions[r % versions.count]
        coordination.candidates[r] = SimCandidate(replica: r, version: text.split(separator: ".").map { Int($0) ?? 0 },
                                                  createdAt: coordination.candidates[r]?.createdAt ?? now, renewAt: now,
                                                  pingAt: nil, name: replicas[r].identity)
        trace(r, "LeaseCandidate \(replicas[r].identity) (\(text)) created")
        if !coordination.ticking {
            coordination.ticking = true
            queue.push(now + SimCoordination.tick, .electionController)
        }
    }

    /// kube-leader on `r` ends: a clean exit deletes its candidate.
    func coordinatedExit(_ r: Int, clean: Bool) {
        guard coordinatedOn, clean, coordination.candidates[r] != nil else { return }
        coordination.candidates[r] = nil
        trace(r, "LeaseCandidate deleted")
    }

    /// The server's wall clock (true time on the epoch the replicas' wall clocks scatter around).
    var serverWall: WallTime {
        let ns = Int64(1_795_000_000) * SimTime.second + now
        return WallTime(seconds: ns / 1_000_000_000, nanoseconds: Int32(ns % 1_000_000_000))
    }

    /// One pass of the election controller, then the next one a tick later.
    func electionControllerTick() {
        defer { queue.push(now + SimCoordination.tick, .electionController) }
        let window = SimCoordination.electionDuration
        // Candidates answer pings: a live kube-leader reads its candidate
        // every second and writes renewTime (a request's latency later).
        for (r, var c) in coordination.candidates {
            if let ping = c.pingAt, c.renewAt < ping, replicas[r].process != nil,
               replicas[r].net.partitionUntil <= now, now >= ping + answerDelay(r, ping) {
                c.renewAt = now
                coordination.candidates[r] = c
            }
        }
        let candidates = coordination.candidates.values.sorted { $0.replica < $1.replica }
        guard !candidates.isEmpty else { return }
        let record = server.snapshot?.record
        let holder = record?.holderIdentity ?? ""
        let held: Bool = {
            guard let record, !holder.isEmpty, let renew = record.renewTime else { return false }
            return serverWall < renew.adding(.seconds(min(max(record.leaseDurationSeconds, 0), 86_400)))
        }()
        func better(_ a: SimCandidate, _ b: SimCandidate) -> Bool {
            if a.version != b.version { return a.version.lexicographicallyPrecedes(b.version) }
            if a.createdAt != b.createdAt { return a.createdAt < b.createdAt }
            return a.name < b.name
        }
        // Candidates pinged long ago that never answered are out of the running.
        let contenders = candidates.filter { c in !(c.pingAt.map { now >= $0 + window && c.renewAt < $0 } ?? false) }
        if held {
            guard let best = contenders.min(by: better), best.name != holder,
                  record?.otherFields["preferredHolder"]?.stringValue != best.name else { return }
        }
        var waiting = false
        for c in candidates {
            if let ping = c.pingAt, now < ping + window, c.renewAt < ping { waiting = true; continue }
            if now < c.renewAt + window { continue }
            if c.pingAt.map({ c.renewAt >= $0 }) ?? true {
                coordination.candidates[c.replica]?.pingAt = now
                trace("election controller pings \(c.name)")
                waiting = true
            }
        }
        if waiting { return }
        let eligible = coordination.candidates.values.filter { now < $0.renewAt + window }.sorted { $0.replica < $1.replica }
        guard let best = eligible.min(by: better) else { return }
        let deliverTo: (WatchConnection, WatchItem) -> Void = { c, i in self.deliver(c, i) }
        if held {
            guard best.name != holder, record?.otherFields["preferredHolder"]?.stringValue != best.name else { return }
            _ = server.edit(at: now, deliver: deliverTo) { o in o[path: "spec", "preferredHolder"] = .string(best.name) }
            coordination.preferred.append((now, best.name))
            trace("election controller: preferredHolder \(best.name)")
            return
        }
        let wall = serverWall
        if server.object == nil {
            var r = LeaderElectionRecord(holderIdentity: best.name, leaseDurationSeconds: SimCoordination.leaseSeconds,
                                         acquireTime: wall, renewTime: wall, leaderTransitions: 0)
            r.otherFields["strategy"] = "OldestEmulationVersion"
            server.put(LockCodec.newObject(.lease, namespace: server.namespace, name: server.name, record: r), at: now, deliver: deliverTo)
        } else {
            _ = server.edit(at: now, deliver: deliverTo) { o in
                o[path: "spec", "holderIdentity"] = .string(best.name)
                o[path: "spec", "leaseDurationSeconds"] = JSON(SimCoordination.leaseSeconds)
                o[path: "spec", "acquireTime"] = .string(RFC3339.formatMicro(wall))
                o[path: "spec", "renewTime"] = .string(RFC3339.formatMicro(wall))
                o[path: "spec", "strategy"] = "OldestEmulationVersion"
                o[path: "spec", "preferredHolder"] = nil
            }
        }
        coordination.elections.append((now, best.name))
        trace("election controller elects \(best.name) (was \(holder.isEmpty ? "free" : holder))")
    }

    /// When replica `r` answers a ping sent at `ping`: its next read (at most
    /// a second on) plus a round trip; fixed per ping so the run is replayable.
    private func answerDelay(_ r: Int, _ ping: SimTime) -> SimTime {
        let phase = (ping / SimTime.ms + Int64(r) * 373) % 1000
        return (phase + 10) * SimTime.ms
    }
}

extension Scenarios {
    /// A rolling update under coordinated election: replicas 0 and 1 run
    /// 1.0.0, replicas 2 and 3 (1.1.0) join at 10 s; the old standby stops at
    /// 20 s, the old leader at 30 s. Leadership is on an old replica until
    /// then and moves exactly once, to a new one; never two children.
    nonisolated(unsafe) static let coordinatedHandOver = Scenario(
        name: "coordinated-hand-over",
        title: "--coordinated rolling update: the leader stays on the old version until the old replicas are gone, then moves once",
        variants: [0, 1, 2].map { offset -> Scenario.Variant in
            var c = base(.lease, replicas: 4, seed: 22 + UInt64(offset))
            c.coordinatedVersions = ["1.0.0", "1.0.0", "1.1.0", "1.1.0"]
            let jitter = SimTime(offset) * 700 * ms
            return Scenario.Variant(label: "lease+\(offset * 700)ms", config: c, duration: 70 * s, setup: { w in
                w.schedule(0, .start(0))
                w.schedule(300 * ms, .start(1))
                w.schedule(10 * s + jitter, .start(2))
                w.schedule(10 * s + 200 * ms + jitter, .start(3))
                w.schedule(20 * s + jitter, ScriptStep("the old standby stops") { w in
                    let old = [0, 1].first { $0 != w.liveLeaderReplica } ?? 1
                    Scriptable.sigterm(w, old)
                })
                w.schedule(30 * s + jitter, ScriptStep("the old leader stops") { w in
                    if let leader = w.liveLeaderReplica { Scriptable.sigterm(w, leader) }
                })
            }, check: { w in
                var problems: [String] = []
                let starts = w.leaderStarts
                if starts.count != 2 {
                    problems.append("expected 2 leaders (old, then new), got \(starts.map { "replica-\($0.replica)@\($0.at.traceText)" })")
                }
                if let first = starts.first, first.replica > 1 { problems.append("the first leader is replica-\(first.replica), not an old one") }
                if starts.count >= 2 {
                    let second = starts[1]
                    if second.replica < 2 { problems.append("the second leader is replica-\(second.replica), not a new one") }
                    if second.at < 30 * s + jitter { problems.append("leadership moved at \(second.at.traceText), before the old leader stopped") }
                    if second.at > 30 * s + jitter + 15 * s { problems.append("the new leader took over only at \(second.at.traceText)") }
                }
                if !w.coordination.preferred.isEmpty { problems.append("a preferredHolder was written: \(w.coordination.preferred.map(\.holder))") }
                return problems
            })
        })
}

extension Scenarios {
    /// Coordinated election when the old leader is SIGKILLed (no release) or
    /// cut off from the API: the controller names a new holder once the
    /// lease has expired by its wall clock (replicas' wall clocks are seconds
    /// apart); the new holder, having seen the old hold replaced, waits a
    /// lease before it takes the offer. Never two children.
    nonisolated(unsafe) static let coordinatedLeaderLost = Scenario(
        name: "coordinated-leader-lost",
        title: "--coordinated: the leader is killed or partitioned; the controller's offer is waited out, no overlap",
        variants: [("crash", 0), ("partition", 1)].flatMap { how, n in [0, 1, 2].map { k -> Scenario.Variant in
            var c = base(.lease, replicas: 3, seed: 220 + UInt64(n * 10 + k))
            c.coordinatedVersions = ["1.0.0", "1.0.0", "1.1.0"]
            return Scenario.Variant(label: "\(how)#\(k)", config: c, duration: 60 * s, setup: { w in
                startAll(w)
                w.schedule(15 * s + SimTime(k) * 333 * ms, ScriptStep("the leader is \(how == "crash" ? "killed" : "cut off")") { w in
                    guard let leader = w.liveLeaderReplica else { return }
                    if how == "crash" { w.crash(leader) } else { ScriptStep.partition(leader, for: 20 * s).apply(w) }
                })
            }, check: { w in
                w.leaderStarts.count >= 2 ? [] : ["no new leader after the old one was lost: \(w.leaderStarts.map(\.replica))"]
            })
        } })
}

/// A SIGTERM as the kubelet sends it on a rolling update (30 s grace).
enum Scriptable {
    static func sigterm(_ w: World, _ r: Int) {
        ScriptStep.sigterm(r, grace: 30 * SimTime.second).apply(w)
    }
}
