import KLCore
import Testing

/// Hand-over when asked, in the pure machines on virtual
/// clocks: the election notices a preferred holder named while it leads, the
/// session tells the host and stands by again after the release, the
/// supervision machine stops the child as on a loss and then releases.
@Suite struct HandOverElectionTests: ElectionScript {
    /// A Lease held by `holder` (released when empty) with `spec.strategy`
    /// and, when given, `spec.preferredHolder`.
    func lease(_ holder: String, rv: String, preferred: String? = nil, transitions: Int = 0) -> LockSnapshot {
        var record = LeaderElectionRecord(holderIdentity: holder, leaseDurationSeconds: holder.isEmpty ? 1 : 15,
                                          acquireTime: wall, renewTime: wall, leaderTransitions: transitions)
        record.otherFields["strategy"] = "OldestEmulationVersion"
        if let preferred { record.otherFields["preferredHolder"] = .string(preferred) }
        var o = LockCodec.newObject(.lease, namespace: "ns", name: "l", record: record)
        o[path: "metadata", "resourceVersion"] = .string(rv)
        return LockCodec.decode(.lease, object: o)
    }

    /// What the server answers to our write of `record` onto `base`.
    func written(_ record: LeaderElectionRecord, base: LockSnapshot, rv: String) -> LockSnapshot {
        var o = LockCodec.updatedObject(.lease, base: base, record: record)
        o[path: "metadata", "resourceVersion"] = .string(rv)
        return LockCodec.decode(.lease, object: o)
    }

    /// "me" takes the released lock `free`, seen at 0 s (at once, or a
    /// lease later when it names another preferred holder), and leads from `t`.
    func leader(taking free: LockSnapshot) -> (Election, LockSnapshot, t: Double) {
        var e = Election(identity: "me", timing: timing)
        _ = e.step(.start, now: at(0), wall: wall)
        var action = e.step(.observed(.present(free)), now: at(0), wall: wall)
        var t = 0.0
        if case .wait(let until) = action {
            t = Double(t0.duration(to: until).milliseconds) / 1000
            action = e.step(.timer, now: until, wall: wall)
        }
        guard case .update(let record, let base) = action else {
            Issue.record("expected a take-over, got \(action)"); return (e, free, t)
        }
        let mine = written(record, base: base, rv: "10")
        #expect(e.step(.written(mine), now: at(t + 0.1), wall: wall) == .becameLeader(renewAt: at(t + 2)))
        return (e, mine, t)
    }

    /// Renews at `t` and answers with `answer` (or our own record on a new version).
    func renew(_ e: inout Election, at t: Double, answer: (LockSnapshot) -> LockSnapshot) -> Election.Action {
        guard case .update(let record, let base) = e.step(.timer, now: at(t), wall: wall) else {
            Issue.record("expected a renew"); return .done
        }
        return e.step(.written(answer(written(record, base: base, rv: "r\(t)"))), now: at(t + 0.1), wall: wall)
    }

    func withPreferred(_ s: LockSnapshot, _ name: String?) -> LockSnapshot {
        var o = s.object
        o[path: "spec", "preferredHolder"] = name.map { .string($0) }
        return LockCodec.decode(.lease, object: o)
    }

    @Test func namedOther_handsOver_keepsRenewing_releaseKeepsSpecFields_thenStandsBy() {
        var (e, _, _) = leader(taking: lease("", rv: "1"))
        #expect(e.handOverTo == nil)
        // The owner names "b" between renews: the next renew's answer shows it.
        #expect(renew(&e, at: 2) { withPreferred($0, "b") } == .wait(until: at(4)))
        #expect(e.handOverTo == "b")
        #expect(e.role == .leading, "it renews until the child is gone")
        #expect(renew(&e, at: 4) { $0 } == .wait(until: at(6)))
        // The supervisor asks for the release once the child's group is gone.
        guard case .update(let record, let base) = e.step(.releaseRequested, now: at(5), wall: wall) else {
            Issue.record("expected the release"); return
        }
        #expect(record.holderIdentity == "" && record.leaseDurationSeconds == 1)
        let sent = LockCodec.updatedObject(.lease, base: base, record: record)
        #expect(sent[path: "spec", "preferredHolder"] == "b")
        #expect(sent[path: "spec", "strategy"] == "OldestEmulationVersion")
        #expect(e.step(.written(written(record, base: base, rv: "20")), now: at(5.1), wall: wall) == .done)
        #expect(e.role == .released)
        let stoodBy = e.standByAgain()
        #expect(stoodBy)
        #expect(e.role == .standby && e.handOverTo == nil)
        // Standing by again: the release names "b", so "me" leaves it a lease.
        #expect(e.step(.start, now: at(6), wall: wall) == .get)
        #expect(e.step(.observed(.present(lease("", rv: "20", preferred: "b", transitions: 1))), now: at(6), wall: wall) == .wait(until: at(21)))
    }

    /// `--coordinated` outlives the hand-over: standing by again, the
    /// election still never takes a free lock by itself.
    @Test func coordinatedLeader_afterTheHandOver_staysCoordinated() {
        var (e, _, _) = leader(taking: lease("", rv: "1"))
        e.coordinated = true
        _ = renew(&e, at: 2) { withPreferred($0, "b") }
        guard case .update(let record, let base) = e.step(.releaseRequested, now: at(3), wall: wall) else { Issue.record("expected the release"); return }
        #expect(e.step(.written(written(record, base: base, rv: "20")), now: at(3.1), wall: wall) == .done)
        let stoodBy = e.standByAgain()
        #expect(stoodBy && e.coordinated)
        #expect(e.step(.start, now: at(4), wall: wall) == .get)
        #expect(e.step(.observed(.present(lease("", rv: "20"))), now: at(4), wall: wall) == .wait(until: at(19)), "waits for the controller")
    }

    @Test(arguments: [nil, "me"] as [String?])
    func namedSelfOrNobody_changesNothing(_ name: String?) {
        var (e, _, _) = leader(taking: lease("", rv: "1"))
        #expect(renew(&e, at: 2) { withPreferred($0, name) } == .wait(until: at(4)))
        #expect(renew(&e, at: 4) { withPreferred($0, nil) } == .wait(until: at(6)))
        #expect(e.handOverTo == nil)
    }

    /// The name was there when "me" took the lock (its holder never came):
    /// no second hand-over; a new name later is one.
    @Test func nameSeenAtTheAcquire_isNoHandOver_aNewOneIs() {
        var (e, _, t) = leader(taking: lease("", rv: "1", preferred: "ghost"))
        #expect(t == 15, "not named: it waited a lease for ghost")
        #expect(renew(&e, at: t + 2) { $0 } == .wait(until: at(t + 4)))
        #expect(renew(&e, at: t + 4) { $0 } == .wait(until: at(t + 6)))
        #expect(e.handOverTo == nil, "ping-pong: the name was already there")
        _ = renew(&e, at: t + 6) { withPreferred($0, "b") }
        #expect(e.handOverTo == "b")
    }

    /// The name removed and written again while leading is a new request.
    @Test func nameRemovedThenWrittenAgain_handsOver() {
        var (e, _, t) = leader(taking: lease("", rv: "1", preferred: "b"))
        _ = renew(&e, at: t + 2) { withPreferred($0, nil) }
        #expect(e.handOverTo == nil)
        _ = renew(&e, at: t + 4) { withPreferred($0, "b") }
        #expect(e.handOverTo == "b")
    }

    /// A release naming "b": "me" (not named) waits one lease from when it
    /// saw it, then takes it; "b" takes it at once.
    @Test func releasedForAnother_othersWaitALease_theNamedOneTakesAtOnce() {
        let released = lease("", rv: "5", preferred: "b", transitions: 2)
        var me = Election(identity: "me", timing: timing)
        _ = me.step(.start, now: at(0), wall: wall)
        #expect(me.step(.observed(.present(released)), now: at(1), wall: wall) == .wait(until: at(16)))
        guard case .update(let record, _) = me.step(.timer, now: at(16), wall: wall) else { Issue.record("expected a take-over"); return }
        #expect(record.holderIdentity == "me" && record.otherFields["preferredHolder"] == "b")

        var b = Election(identity: "b", timing: timing)
        _ = b.step(.start, now: at(0), wall: wall)
        guard case .update(let taken, _) = b.step(.observed(.present(released)), now: at(1), wall: wall) else {
            Issue.record("the named one must take it at once"); return
        }
        #expect(taken.holderIdentity == "b")
    }

    /// The named one dies before taking the released lock: a lease after
    /// the release anyone may take it, and the taker does not hand over.
    @Test func namedThenDies_afterALeaseAnyoneTakes_andKeepsIt() {
        let released = lease("", rv: "5", preferred: "dead")
        var (e, _, t) = leader(taking: released)   // "me" takes it only once "me" may: a lease later
        #expect(t == 15)
        #expect(renew(&e, at: t + 2) { $0 } == .wait(until: at(t + 4)))
        #expect(e.handOverTo == nil)
        var c = Election(identity: "c", timing: timing)
        _ = c.step(.start, now: at(0), wall: wall)
        #expect(c.step(.observed(.present(released)), now: at(0), wall: wall) == .wait(until: at(15)))
        #expect(c.step(.observed(.present(released)), now: at(10), wall: wall) == .wait(until: at(15)), "the same release: the same wait")
        guard case .update = c.step(.timer, now: at(15), wall: wall) else { Issue.record("expected a take-over after the lease"); return }
    }

    /// A renew conflict the re-read explains by an edit of another field (the
    /// preferred holder, an annotation) is no lost race: write again at once,
    /// at most once per retry period.
    @Test func conflictFromAnEditOfAnotherField_renewsAtOnce_oncePerRetryPeriod() {
        var (e, mine, _) = leader(taking: lease("", rv: "1"))
        _ = e.step(.timer, now: at(2), wall: wall)
        #expect(e.step(.lostRace, now: at(2.1), wall: wall) == .get)
        let edited = withPreferred(LockCodec.decode(.lease, object: { var o = mine.object; o[path: "metadata", "resourceVersion"] = "11"; return o }()), "b")
        guard case .update(_, let base) = e.step(.observed(.present(edited)), now: at(2.2), wall: wall) else {
            Issue.record("expected an immediate renew"); return
        }
        #expect(base.resourceVersion == "11")
        #expect(e.handOverTo == "b")
        // A second conflict within the retry period waits, as any.
        #expect(e.step(.lostRace, now: at(2.3), wall: wall) == .get)
        #expect(e.step(.observed(.present(edited)), now: at(2.4), wall: wall) == .wait(until: at(4.3)))
    }
}

@Suite struct HandOverSupervisionTests: SupervisionScript {
    /// Whatever --on-loss says: SIGTERM, the group reaped, then the release,
    /// then standing by again; the next term starts a new child.
    @Test(arguments: [OnLoss.exit, .standby])
    func handOver_stopsLikeALoss_releasesAfterTheGroup_thenStandsBy(_ onLoss: OnLoss) {
        var s = Supervision(timing: timing, onLoss: onLoss)
        running(&s)
        _ = s.step(.renewed(sentAt: at(0.9)), now: at(0.9))
        #expect(acts(s.step(.handOver(to: "b"), now: at(1))) == [.signalGroup(.terminate)])
        #expect(s.wakeAt == at(2), "SIGKILL after the kill grace")
        #expect(acts(s.step(.childExited(.signaled(.terminate)), now: at(1.2))) == [.killAll])
        #expect(acts(s.step(.survivors(1), now: at(1.2))) == [], "no release while something of the child lives")
        #expect(acts(s.step(.tick, now: at(1.3))) == [.killAll])
        #expect(acts(s.step(.survivors(0), now: at(1.3))) == [.requestRelease])
        #expect(acts(s.step(.handedOver, now: at(1.4))) == [.rejoin])
        #expect(s.phase == .standby && s.handOvers == 1 && s.losses == 0 && s.renewDeadline == nil && s.handingOver == nil)
        running(&s, from: 20, pid: 200)
    }

    /// A child that ignores SIGTERM is killed after the kill grace, then released.
    @Test func handOver_childIgnoresSigterm_killedAfterTheGrace() {
        var s = Supervision(timing: timing)
        running(&s)
        _ = s.step(.renewed(sentAt: at(0.9)), now: at(0.9))
        _ = s.step(.handOver(to: "b"), now: at(1))
        #expect(acts(s.step(.tick, now: at(2))) == [.killAll])
        #expect(acts(s.step(.childExited(.signaled(.kill)), now: at(2.01))) == [.killAll])
        #expect(acts(s.step(.survivors(0), now: at(2.02))) == [.requestRelease])
    }

    /// SIGTERM to kube-leader during the hand-over: release, then exit 143.
    @Test func sigtermDuringTheHandOver_releasesThenExits() {
        var s = Supervision(timing: timing, onLoss: .standby)
        running(&s)
        _ = s.step(.handOver(to: "b"), now: at(1))
        #expect(acts(s.step(.signal(.terminate), now: at(1.05))) == [.signalGroup(.terminate)])
        _ = s.step(.childExited(.signaled(.terminate)), now: at(1.1))
        #expect(acts(s.step(.survivors(0), now: at(1.1))) == [.requestRelease])
        #expect(acts(s.step(.handedOver, now: at(1.2))) == [.exit(.signalWhileWaiting(.terminate))])
    }

    /// The lock is lost during the hand-over's stop: a loss (no release).
    @Test(arguments: [OnLoss.exit, .standby])
    func lostDuringTheHandOver_isALoss(_ onLoss: OnLoss) {
        var s = Supervision(timing: timing, onLoss: onLoss)
        running(&s)
        _ = s.step(.handOver(to: "b"), now: at(1))
        _ = s.step(.lost(reason: "taken"), now: at(1.05))
        _ = s.step(.childExited(.signaled(.terminate)), now: at(1.1))
        let out = acts(s.step(.survivors(0), now: at(1.1)))
        #expect(out == (onLoss == .exit ? [.exit(.leadershipLost)] : [.rejoin]))
        #expect(!out.contains(.requestRelease))
    }

    /// The hand-over asked while the spawn was pending: stopped once spawned.
    @Test func handOverWhileStarting_stopsTheChildOnceSpawned() {
        var s = starting()
        #expect(acts(s.step(.handOver(to: "b"), now: at(0.1))) == [])
        #expect(acts(s.step(.spawned(pid: 7), now: at(0.1))) == [.signalGroup(.terminate)])
    }

    /// The driver turns the mailbox's hand-over facts into events once, and
    /// its rejoin forgets them.
    @Test func driver_handOverFromTheMailbox_thenRejoin() {
        final class Ports: SupervisorPorts {
            var mailbox = ElectionReport()
            var clock = MonotonicInstant(nanoseconds: 1_000_000_000_000)
            var signalled: [Signal] = []
            var released = 0, rejoined = 0
            var now: MonotonicInstant { clock }
            func spawn(environment: [String: String]) -> Supervision.Event { .spawned(pid: 100) }
            func signalGroup(_ group: Int32, _ signal: Signal) { signalled.append(signal) }
            func killAll(group: Int32) -> (reaped: [(pid: Int32, status: TerminationStatus)], survivors: Int) { ([], 0) }
            func reapAll() -> [(pid: Int32, status: TerminationStatus)] { [(100, .signaled(.terminate))] }
            func requestRelease() -> Bool { released += 1; return true }
            func readMailbox() -> ElectionReport { mailbox }
            func rejoin() { rejoined += 1; mailbox = ElectionReport() }
            func execOutcome() -> Supervision.Event? { nil }
            func log(_ note: Supervision.Note) {}
            func observed(_ event: Supervision.Event) {}
        }
        let ports = Ports()
        let driver = SupervisorDriver(machine: Supervision(timing: timing), ports: ports)
        ports.mailbox = ElectionReport(leading: true, lastRenewSentAt: ports.clock)
        #expect(driver.turn(signals: []) == nil)
        ports.mailbox.handOverTo = "b"
        #expect(driver.turn(signals: []) == nil)
        #expect(driver.turn(signals: []) == nil)
        #expect(ports.signalled == [.terminate], "one SIGTERM for one request")
        #expect(driver.turn(signals: [.child]) == nil)
        #expect(ports.released == 1)
        ports.mailbox.handedOver = true
        #expect(driver.turn(signals: []) == nil)
        #expect(ports.rejoined == 1 && driver.machine.phase == .standby && driver.child == nil)
    }
}

@Suite struct HandOverSessionTests: ElectionScript {
    /// ConfigMap lock: `kubectl annotate … kube-leader.io/preferred-holder=b`.
    /// The session tells the host once, renews until the release request,
    /// keeps the annotation in the release, then waits to stand by again
    /// (refused here: it ends released, not lost).
    @Test func annotation_handOverToldOnce_releaseKeepsIt_thenAwaitsRejoin() {
        let lock = SessionHarness(timing, releaseAt: 5, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            .update(check: { _, _ in }, .success(snapshot("me", rv: "2", preferred: "b"))),
            .update(check: { _, base in #expect(base == "2") }, .success(snapshot("me", rv: "3", preferred: "b"))),
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "4", preferred: "b"))),
        ])
        lock.rejoinAfter = nil
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.events.filter { $0.hasPrefix("hand over") } == ["hand over to b"])
        let i = lock.seam.firstIndex(of: "handed over")
        #expect(i != nil && lock.seam[i! + 1] == "await rejoin", "\(lock.seam)")
        #expect(lock.session.handOvers == 1 && lock.session.losses == 0)
        let sent = lock.commands.compactMap { c -> JSON? in
            if case .send(.update(let o), _) = c { return o } else { return nil }
        }.last
        #expect(sent?[path: "metadata", "annotations", LockKind.preferredHolderAnnotation] == "b")
    }

    @Test func preferredHolder_readFromLeaseSpecOrConfigMapAnnotation() {
        #expect(snapshot("me", rv: "1", preferred: " b ").preferredHolder == "b")
        #expect(snapshot("me", rv: "1", preferred: "").preferredHolder == nil)
        #expect(snapshot("me", rv: "1").preferredHolder == nil)
        let lease = LockCodec.decode(.lease, object: ["metadata": ["name": "l", "resourceVersion": "1"],
                                                       "spec": ["holderIdentity": "me", "preferredHolder": "c"]])
        #expect(lease.preferredHolder == "c")
        let wrongType = LockCodec.decode(.lease, object: ["metadata": ["name": "l", "resourceVersion": "1"],
                                                           "spec": ["holderIdentity": "me", "preferredHolder": 7]])
        #expect(wrongType.preferredHolder == nil)
    }
}
