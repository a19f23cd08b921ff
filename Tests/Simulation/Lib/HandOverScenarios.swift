import KLCore

// Hand over when asked (docs/safety.md). The lock's owner names a preferred
// holder (Lease `spec.preferredHolder`, ConfigMap annotation
// `kube-leader.io/preferred-holder`); the leader stops its child (the whole
// group, reaped), releases keeping the field, and stands by again. Other
// standbys leave the named one a lease to take the released lock.

extension World {
    /// ElectionMailbox.handOver: the election asks for a hand-over.
    func hostHandOver(_ r: Int, _ inc: Int, to: String) {
        guard let p = process(r, inc) else { return }
        p.mailbox.handOver(to: to)
        replicas[r].handOvers += 1
        trace(r, "election thread: hand over to \(to)")
        wakeMain(r, inc)
    }

    /// ElectionMailbox.handedOver: the hand-over's release is done.
    func hostHandedOver(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc) else { return }
        p.mailbox.releasedForHandOver()
        trace(r, "election thread: released for the hand-over")
        wakeMain(r, inc)
    }
}

extension ScriptStep {
    /// The lock's owner names `holder` as preferred holder (nil: removes
    /// it): `kubectl patch lease … spec.preferredHolder`, or `kubectl
    /// annotate configmap … kube-leader.io/preferred-holder=…`.
    public static func preferHolder(_ holder: String?) -> ScriptStep {
        ScriptStep("the owner sets the preferred holder to \(holder ?? "(none)")") { w in
            let kind = w.server.kind
            let value: JSON? = holder.map { .string($0) }
            _ = w.server.edit(at: w.now, deliver: { c, i in w.deliver(c, i) }) { o in
                switch kind {
                case .lease: o[path: "spec", "preferredHolder"] = value
                case .configMap: o[path: "metadata", "annotations", LockKind.preferredHolderAnnotation] = value
                }
            }
        }
    }
}

extension Scenarios {
    nonisolated(unsafe) public static let handOver: [Scenario] = [handOverNamed, handOverSelf, handOverAbsent, handOverDying, coordinatedPreferred, handOverWatched]

    /// When the hand-over was asked, the checks every variant shares: no
    /// kube-leader exited, the lock still names the preferred holder.
    static func handOverCommon(_ w: World, preferred: String?) -> [String] {
        var f: [String] = []
        for r in w.replicas.indices where !w.replicas[r].exits.isEmpty { f.append("replica-\(r) exited: \(w.replicas[r].exits)") }
        if let preferred, let o = w.server.object, LockCodec.decode(w.server.kind, object: o).preferredHolder != preferred {
            f.append("the lock no longer names \(preferred) as preferred holder (a release dropped it?)")
        }
        return f
    }

    /// The owner names replica-2 while replica-0 leads: replica-0 stops its
    /// child and releases, replica-2 takes the lock at once (replica-1
    /// waits), and nothing moves again.
    nonisolated(unsafe) static let handOverNamed = Scenario(name: "hand-over-named", title: "preferred holder named: the leader hands over to it within retry + stop time + 250 ms, once", variants:
        kinds.flatMap { kind in [false, true].map { slow -> Scenario.Variant in
            var c = base(kind, replicas: 3)
            if slow { c.child.ignoresTermProbability = 1 }   // SIGKILL after the kill grace
            return Scenario.Variant(label: "\(kind.rawValue)\(slow ? "-sigkill" : "")", config: c, duration: 40 * s, setup: { w in
                startAll(w)
                w.schedule(10 * s, .preferHolder("replica-2"))
            }, check: { w in
                var f = handOverCommon(w, preferred: "replica-2")
                if w.childStarts(of: 0).count != 1 { f.append("replica-0 started \(w.childStarts(of: 0).count) children, not 1") }
                if !w.childStarts(of: 1).isEmpty { f.append("replica-1 led, not the named replica-2") }
                if w.childStarts(of: 2).count != 1 { f.append("replica-2 started \(w.childStarts(of: 2).count) children, not 1") }
                if w.replicas[0].handOvers != 1 { f.append("replica-0 handed over \(w.replicas[0].handOvers) times, not once") }
                // Seen by the leader's watch (this loose bound still allows
                // the next renew, ≤ retry 1 s; `hand-over-watched` holds the
                // tight one), the child's stop (≤ 50 ms, or the kill grace
                // 1 s), then ≤ 250 ms.
                let stop: SimTime = slow ? 1 * s : 50 * ms
                f += expectLeader(w, by: 10 * s + 1 * s + stop + 250 * ms, after: 10 * s, "retry + stop time + 250 ms of the edit")
                return f
            })
        } })

    /// The leader is itself the named one (or the name is removed): nothing happens.
    nonisolated(unsafe) static let handOverSelf = Scenario(name: "hand-over-self", title: "preferred holder names the leader, then nobody: nothing moves", variants:
        kinds.map { kind in
            Scenario.Variant(label: kind.rawValue, config: base(kind, replicas: 3), duration: 30 * s, setup: { w in
                startAll(w)
                w.schedule(10 * s, .preferHolder("replica-0"))
                w.schedule(15 * s, .preferHolder(nil))
            }, check: { w in
                var f = handOverCommon(w, preferred: nil)
                if w.childStarts(of: 0).count != 1 || w.childStarts != 1 {
                    f.append("leadership moved: children of replica-0 \(w.childStarts(of: 0).count), in all \(w.childStarts)")
                }
                if w.replicas.contains(where: { $0.handOvers > 0 }) { f.append("a replica handed over") }
                return f
            })
        })

    /// The named replica does not exist: the leader hands over once; the
    /// others leave the lock a lease, then one takes it, and nobody hands
    /// over again (the name was there when it took the lock: no ping-pong).
    nonisolated(unsafe) static let handOverAbsent = Scenario(name: "hand-over-absent", title: "preferred holder that does not exist: one hand-over, a lease later anyone leads, no ping-pong", variants:
        kinds.map { kind in
            Scenario.Variant(label: kind.rawValue, config: base(kind, replicas: 3), duration: 60 * s, setup: { w in
                startAll(w)
                w.schedule(10 * s, .preferHolder("replica-9"))
            }, check: { w in
                var f = handOverCommon(w, preferred: "replica-9")
                if w.childStarts != 2 { f.append("\(w.childStarts) children started, not 2 (one hand-over, then no ping-pong)") }
                if w.replicas.reduce(0, { $0 + $1.handOvers }) != 1 { f.append("hand-overs \(w.replicas.map(\.handOvers)), not one") }
                // Released by about 11 s; free for others a lease (4 s) later.
                f += expectLeader(w, by: 10 * s + 1 * s + 50 * ms + 4 * s + 1 * s, after: 10 * s, "a lease after the release")
                if let next = w.firstChildStart(after: 10 * s), next.at < 10 * s + 4 * s {
                    f.append("replica-\(next.replica) took the lock at \(next.at.traceText), before the named one's lease")
                }
                return f
            })
        })

    /// The named replica is named, then dies before it takes the lock
    /// (SIGKILL): after a lease anyone may take it.
    nonisolated(unsafe) static let handOverDying = Scenario(name: "hand-over-dying", title: "preferred holder dies before taking the lock: after a lease anyone leads", variants:
        kinds.flatMap { kind in [0, 300].map { delayMs -> Scenario.Variant in
            Scenario.Variant(label: "\(kind.rawValue)+\(delayMs)ms", config: base(kind, replicas: 3), duration: 40 * s, setup: { w in
                startAll(w)
                w.schedule(10 * s, .preferHolder("replica-2"))
                w.schedule(10 * s + SimTime(delayMs) * ms, .crash(2))
            }, check: { w in
                var f = handOverCommon(w, preferred: "replica-2")
                if !w.childStarts(of: 2).isEmpty, delayMs == 0 { f.append("replica-2 led after it was killed") }
                f += expectLeader(w, by: 10 * s + 1 * s + 50 * ms + 4 * s + 1 * s, after: 10 * s, "a lease after the release")
                return f
            })
        } })
}

extension Scenarios {
    /// `--coordinated`: a better candidate (an older version) joins while a
    /// newer one leads; the controller names it preferred holder and the
    /// leader yields by the hand-over path (stops its child, releases keeping
    /// the name, stands by again); the controller then elects the better one.
    nonisolated(unsafe) static let coordinatedPreferred = Scenario(
        name: "coordinated-preferred-holder",
        title: "--coordinated: a better candidate joins; the leader yields to the controller's preferredHolder, once",
        variants: [0, 1].map { offset -> Scenario.Variant in
            var c = base(.lease, replicas: 3, seed: 40 + UInt64(offset))
            c.coordinatedVersions = ["1.1.0", "1.1.0", "1.0.0"]
            let join = 10 * s + SimTime(offset) * 450 * ms
            return Scenario.Variant(label: "lease+\(offset * 450)ms", config: c, duration: 60 * s, setup: { w in
                w.schedule(0, .start(0))
                w.schedule(300 * ms, .start(1))
                w.schedule(join, .start(2))
            }, check: { w in
                var f: [String] = []
                for r in w.replicas.indices where !w.replicas[r].exits.isEmpty { f.append("replica-\(r) exited: \(w.replicas[r].exits)") }
                let starts = w.leaderStarts
                if starts.count != 2 || starts.last?.replica != 2 {
                    f.append("expected a newer leader, then replica-2: \(starts.map { "replica-\($0.replica)@\($0.at.traceText)" })")
                }
                if w.replicas.reduce(0, { $0 + $1.handOvers }) != 1 { f.append("hand-overs \(w.replicas.map(\.handOvers)), not one") }
                return f
            })
        })
}

extension Scenarios {
    /// The leader watches the lock between renews: the
    /// edit naming replica-2 is seen at once, wherever it falls between two
    /// renews (retry period 1 s). Each child takes 40 ms to stop, so the new
    /// child must start within 40 ms + 250 ms of the edit; seeing the edit at
    /// the next renew (the old behaviour) takes up to a retry period more.
    nonisolated(unsafe) static let handOverWatched = Scenario(name: "hand-over-watched", title: "preferred holder named between renews: the leader's watch sees it at once; the new child starts within the old one's stop time + 250 ms", variants:
        kinds.flatMap { kind in [100, 400, 700, 950].map { offsetMs -> Scenario.Variant in
            var c = base(kind, replicas: 3, seed: 60 + UInt64(offsetMs))
            c.child.termDelayMs = 40...40
            let edit = 10 * s + SimTime(offsetMs) * ms
            return Scenario.Variant(label: "\(kind.rawValue)+\(offsetMs)ms", config: c, duration: 30 * s, setup: { w in
                startAll(w)
                w.schedule(edit, .preferHolder("replica-2"))
            }, check: { w in
                var f = handOverCommon(w, preferred: "replica-2")
                if w.replicas[0].handOvers != 1 { f.append("replica-0 handed over \(w.replicas[0].handOvers) times, not once") }
                guard let next = w.firstChildStart(after: edit) else { return f + ["no child started after the edit"] }
                if next.replica != 2 { f.append("replica-\(next.replica) led, not the named replica-2") }
                let old = w.processes.filter { $0.replica == 0 && !$0.isGrandchild && $0.bornAt < edit }
                if let died = old.map(\.diedAt).max(), died > 0, died > next.at { f.append("replica-0's child died at \(died.traceText), after the new one started") }
                let took = next.at - edit
                if took > 40 * ms + 250 * ms { f.append("the new child started \(took.traceText) after the edit, over the stop time 40 ms + 250 ms") }
                return f
            })
        } })
}
