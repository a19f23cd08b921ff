import KLCore

// Faults outside the first safety table: other writers of the lock, authorization outages, and
// kept-alive connections that go silent.

extension ScriptStep {
    /// Another writer (`kubectl edit`, an operator tool) rewrites the record:
    /// hands it to `holder` (nil: keeps the holder) with `leaseSeconds` (nil:
    /// keeps the lease). Skipped when a running standby has not seen the hold
    /// it changes (such a replica cannot know that hold; see `holdEndMayHappen`).
    public static func otherWriter(holder: String?, leaseSeconds: Int?) -> ScriptStep {
        ScriptStep("another writer sets holder=\(holder ?? "(same)") lease=\(leaseSeconds.map { "\($0)s" } ?? "(same)")") { w in
            guard w.holdEndMayHappen() else { return }
            let kind = w.server.kind
            let changed = w.server.edit(at: w.now, deliver: { c, i in w.deliver(c, i) }) { o in
                let s = LockCodec.decode(kind, object: o)
                guard var record = s.record, !record.isReleased else { return }
                if let holder { record.holderIdentity = holder }
                if let leaseSeconds { record.leaseDurationSeconds = leaseSeconds }
                o = LockCodec.updatedObject(kind, base: s, record: record)
            }
            if changed { w.holdEndedByOthersAt = w.now }
            if changed, let leaseSeconds { w.noteForeignLease(seconds: leaseSeconds) }
        }
    }

    /// A→B→A: the record is handed to `holder`, and `after` later its old
    /// text is written back (same record, new resourceVersion).
    public static func handAwayAndBack(holder: String, after: SimTime) -> ScriptStep {
        ScriptStep("another writer hands the lock to \(holder) and back") { w in
            guard w.holdEndMayHappen(), let old = w.server.object else { return }
            ScriptStep.otherWriter(holder: holder, leaseSeconds: 1).apply(w)
            w.schedule(w.now + after, ScriptStep("another writer restores the old record text") { w in
                // The restore is a change of its own, of whatever hold is
                // current by then: checked like every other writer's change
                // (found by the random simulation). A replica had taken the lock between B and
                // the restore while a standby was cut off (refused); the
                // restore wrote an old, long-expired 1 s record back over the
                // new leader's hold, and the standby, back, found exactly the
                // record it had last seen (same text: no change, expired) and
                // took the lock next to the new leader's child. It never saw
                // that leader's hold: outside the guarantees, as a deletion of
                // a hold never seen is.
                guard w.holdEndMayHappen(), let current = w.server.object else { return }
                var o = old
                o[path: "metadata", "resourceVersion"] = current[path: "metadata", "resourceVersion"]
                _ = w.server.edit(at: w.now, deliver: { c, i in w.deliver(c, i) }) { $0 = o }
                w.holdEndedByOthersAt = w.now
            })
        }
    }

    /// A mutating webhook rewrites every write's lease to `leaseSeconds` for `duration`.
    public static func webhook(leaseSeconds: Int, for duration: SimTime) -> ScriptStep {
        ScriptStep("a webhook rewrites every write to a \(leaseSeconds)s lease for \(duration.traceText)") { w in
            // A standby that has not read the hold yet sees only the rewritten
            // lease (found by the random simulation): outside the guarantees, like a fresh start.
            guard w.holdEndMayHappen() else { return }
            w.server.webhookLeaseSeconds = leaseSeconds
            w.holdEndedByOthersAt = w.now + duration
            w.schedule(w.now + duration, ScriptStep("the webhook is gone") { w in w.server.webhookLeaseSeconds = nil })
        }
    }

    /// The lock is deleted and created again by someone else with `holder`.
    public static func recreate(holder: String, leaseSeconds: Int) -> ScriptStep {
        ScriptStep("someone recreates the lock held by \(holder) for \(leaseSeconds)s") { w in
            guard w.holdEndMayHappen() else { return }
            let kind = w.server.kind
            guard w.server.delete(at: w.now, deliver: { c, i in w.deliver(c, i) }) else { return }
            w.holdEndedByOthersAt = w.now
            let record = LeaderElectionRecord(holderIdentity: holder, leaseDurationSeconds: leaseSeconds,
                                              acquireTime: w.wallNow(0), renewTime: w.wallNow(0), leaderTransitions: 0)
            w.server.put(LockCodec.newObject(kind, namespace: w.server.namespace, name: w.server.name, record: record),
                         at: w.now, deliver: { c, i in w.deliver(c, i) })
            w.noteForeignLease(seconds: leaseSeconds)
        }
    }

    /// An authorization outage (API server restart, authorizer webhook
    /// timing out): every request of `r` (nil: all) is answered 403.
    /// Watches break at its start (the API server restarted), so standbys read.
    public static func authOutage(_ r: Int?, for duration: SimTime) -> ScriptStep {
        ScriptStep("authorization outage for \(r.map { "replica-\($0)" } ?? "all") for \(duration.traceText)") { w in
            ScriptStep.errors(r, for: duration, probability: 1, processed: 0, code: 403).apply(w)
            w.dropWatches(of: r, how: .reset)
        }
    }

    /// `r`'s kept-alive connection goes silent: its next request is never
    /// answered; its open watches die silently too.
    public static func silentConnection(_ r: Int) -> ScriptStep {
        ScriptStep("replica-\(r)'s connection goes silent") { w in
            w.replicas[r].net.deadConnection = true
            w.dropWatches(of: r, how: .silent)
        }
    }
}

extension Scenarios {
    /// Other writers, authorization outages and silent connections (the 20/N
    /// rows of docs/simulation.md's table), as scenarios.
    nonisolated(unsafe) public static let otherFaults: [Scenario] = [otherWriter, authOutage, silentConnection]

    /// Row 1: another writer hands the lock to another name with a 1 s lease
    /// (or lowers the lease, or A→B→A, or recreates it) while a child runs.
    /// A standby must wait the old hold's lease from the change; the old
    /// leader stops at its next renew.
    nonisolated(unsafe) static let otherWriter = Scenario(name: "other-writer", title: "another writer hands the lock over with a short lease while a child runs", variants:
        kinds.flatMap { kind -> [Scenario.Variant] in
            let faults: [(String, ScriptStep)] = [
                ("other-holder", .otherWriter(holder: "operator", leaseSeconds: 1)),
                ("shorter-lease", .otherWriter(holder: nil, leaseSeconds: 1)),
                ("away-and-back", .handAwayAndBack(holder: "operator", after: 300 * ms)),
                ("recreated", .recreate(holder: "operator", leaseSeconds: 1)),
                ("webhook", .webhook(leaseSeconds: 1, for: 8 * s)),
            ]
            return faults.map { label, fault in
                Scenario.Variant(label: "\(kind.rawValue)-\(label)", config: base(kind), duration: 40 * s, setup: { w in
                    startAll(w)
                    w.schedule(10 * s + 300 * ms, fault)
                }, check: { w in
                    // A→B→A restores the leader's own record: a leader whose
                    // renew conflicts on it renews at once and keeps leading
                    // (an edit of another field is no lost race).
                    if label == "away-and-back", w.leaderEnds.isEmpty, w.liveLeaderReplica != nil { return [] }
                    return expectLeader(w, by: 35 * s, after: 10 * s, "a leader again once the other writer is gone")
                })
            }
        })

    /// Row 5: a short authorization outage after reads worked: nobody exits
    /// with code 2 (configuration error); a leader keeps its renew-deadline rule.
    nonisolated(unsafe) static let authOutage = Scenario(name: "auth-outage", title: "every request answered 403 for 3 s after reads had worked", variants:
        kinds.map { kind in
            Scenario.Variant(label: kind.rawValue, config: base(kind), duration: 30 * s, setup: { w in
                startAll(w)
                w.schedule(10 * s, .authOutage(nil, for: 3 * s))
            }, check: { w in
                var out: [String] = []
                for r in w.replicas {
                    if r.exits.contains(where: { if case .configuration = $0 { return true }; return false }) {
                        out.append("replica-\(r.index) exited with code 2 during a short authorization outage")
                    }
                }
                return out + expectLeader(w, by: 25 * s, after: 0, "a leader after the outage")
            })
        })

    /// Row 4: the leader's kept-alive connection goes silent right after a
    /// renew while new connections are answered: its next renew times out
    /// within half of the renew deadline and is tried again on a fresh
    /// connection; the leader keeps the lock.
    nonisolated(unsafe) static let silentConnection = Scenario(name: "silent-connection", title: "the leader's connection goes silent", variants:
        kinds.map { kind in
            var c = base(kind)
            c.timing = Election.Timing(leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))
            c.killGrace = .seconds(4)
            return Scenario.Variant(label: kind.rawValue, config: c, duration: 40 * s, setup: { w in
                startAll(w)
                w.schedule(10 * s + 100 * ms, .silentConnection(0))
                w.schedule(20 * s + 100 * ms, .silentConnection(1))  // a standby's watch dies silently too
            }, check: { w in
                w.leaderEnds.isEmpty && w.leaderStarts.count == 1 ? []
                    : ["leadership changed hands: starts \(w.leaderStarts.map { "replica-\($0.replica)@\($0.at.traceText)" }), ends \(w.leaderEnds.map { "replica-\($0.replica)@\($0.at.traceText)" })"]
            })
        })
}

extension World {
    /// Another writer put a lease of `seconds` into the lock. Longer than the
    /// replicas' own, it is waited out (from the change, or from the
    /// holder's next renew, or from a deletion after it), so liveness
    /// checkpoints within it and a settle time are skipped.
    func noteForeignLease(seconds: Int) {
        let lease = SimTime(seconds) * SimTime.second
        guard lease > config.timing.leaseDuration.nanoseconds else { return }
        let settle = 2 * lease + config.timing.leaseDuration.nanoseconds + 2 * config.timing.retryPeriod.nanoseconds + RandomPlan.maxAftermath
        longLeaseUntil = max(longLeaseUntil, now + settle)
    }
}
