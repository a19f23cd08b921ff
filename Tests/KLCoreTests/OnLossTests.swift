import KLCore
import Testing

/// `--on-loss standby` in the pure machines, on virtual clocks: the session
/// waits for the supervisor after a loss and then stands by again; the
/// supervision machine rejoins only once the old group is gone AND the
/// election reported the loss; the driver forgets the old term's mailbox.
@Suite struct OnLossSessionTests: ElectionScript {
    var failing: SessionHarness.Call { .update(check: { _, _ in }, .failure(.status(503, "503 Service Unavailable"))) }

    /// A leader cut off by an outage loses at its renew deadline (11 s),
    /// waits for the supervisor (1 s here) sending nothing, then reads the
    /// lock again as a fresh standby: its own old record is waited out for a
    /// lease from that read, then taken over, and it leads again.
    @Test func lossThenRejoin_waitsForTheSupervisor_thenLeadsAgainAfterALease() {
        let lock = SessionHarness(timing, releaseAt: 40, onLoss: .standby, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            failing, failing, failing,
            // Standing by again (at 12 s): the outage is over, our old record is still there.
            .get(.success(.present(snapshot("me", rv: "1")))),
            .watch(after: nil, nil),
            .update(check: { r, base in #expect(r.holderIdentity == "me"); #expect(base == "1") },
                    .success(snapshot("me", rv: "2"))),
        ] + (0..<5).map { i in
            .update(check: { _, base in #expect(base == String(2 + i)) }, .success(snapshot("me", rv: String(3 + i))))
        } + [
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "99"))),
        ])
        lock.latency = .seconds(1)
        #expect(lock.run() == .released)
        #expect(lock.script.isEmpty, "not all expected calls happened: \(lock.calls)")
        #expect(lock.events.count == 3, "\(lock.events)")
        #expect(lock.events[0] == "leader@2.0 seconds")
        #expect(lock.events[1].hasPrefix("lost: could not renew within 10s"))
        // Read at 12 s, answered at 13 s: the lease runs from there (28 s); the
        // take-over is answered a second later.
        #expect(lock.events[2] == "leader@29.0 seconds")
        // Nothing was sent between the loss (11 s) and the rejoin (12 s).
        let i = lock.seam.firstIndex(of: "await rejoin")!
        #expect(lock.seam[i - 1] == "lost")
        #expect(lock.times[5] == 12, "the read after the rejoin: \(lock.times)")
        #expect(lock.session.losses == 1)
        #expect(lock.logs.contains { $0.hasPrefix("notice standing by again after losing leadership losses=1") })
    }

    /// The lock was deleted while the old child was being stopped: the
    /// rejoined election keeps the hold it saw and waits a lease before it
    /// creates the lock (a restarted process would create it at once).
    @Test func lockDeletedWhileStopping_isWaitedOutForALease() {
        let lock = SessionHarness(timing, releaseAt: 40, onLoss: .standby, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            failing, failing, failing,
            .get(.success(.absent)),
            .watch(after: nil, nil),
            .create(.success(snapshot("me", rv: "5"))),
        ] + (0..<5).map { i in
            .update(check: { _, _ in }, .success(snapshot("me", rv: String(6 + i))))
        } + [
            .update(check: { r, _ in #expect(r.holderIdentity == "") }, .success(snapshot("", rv: "99"))),
        ])
        lock.latency = .seconds(1)
        #expect(lock.run() == .released)
        let creates = zip(lock.calls, lock.times).filter { $0.0 == "create" }.map(\.1)
        #expect(creates.count == 2)
        // Absent seen at 13 s: not created before 13 + 15 s.
        #expect(creates[1] >= 28, "\(lock.times)")
    }

    /// The supervisor says kube-leader is stopping: the session ends lost.
    @Test func rejoinRefused_endsLost() {
        let lock = SessionHarness(timing, onLoss: .standby, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            failing, failing, failing,
        ])
        lock.rejoinAfter = nil
        lock.latency = .seconds(1)
        guard case .lost(let reason) = lock.run() else { Issue.record("not lost"); return }
        #expect(reason.contains("could not renew"))
        #expect(lock.seam.suffix(2) == ["lost", "await rejoin"])
    }

    /// The default (`exit`): the session ends at the loss, no rejoin asked.
    @Test func exitMode_endsAtTheLoss() {
        let lock = SessionHarness(timing, [
            .get(.success(.absent)),
            .create(.success(snapshot("me", rv: "1"))),
            failing, failing, failing,
        ])
        lock.latency = .seconds(1)
        guard case .lost = lock.run() else { Issue.record("not lost"); return }
        #expect(!lock.seam.contains("await rejoin"))
        #expect(!lock.commands.contains(.awaitRejoin))
    }

    @Test func standByAgain_onlyAfterALoss() {
        var e = Election(identity: "me", timing: timing)
        let changed = e.standByAgain()
        #expect(!changed)
        #expect(e.role == .standby)
    }
}

@Suite struct OnLossSupervisionTests: SupervisionScript {
    /// Loss reported by the election: SIGTERM, the child exits, its group is
    /// killed and reaped, then `.rejoin` and standby; the next leadership
    /// starts a new child.
    @Test func lost_childStoppedAndReaped_thenRejoins_andLeadsAgain() {
        var s = Supervision(timing: timing, onLoss: .standby)
        running(&s)
        #expect(acts(s.step(.lost(reason: "taken"), now: at(1))) == [.signalGroup(.terminate)])
        #expect(acts(s.step(.childExited(.signaled(.terminate)), now: at(1.2))) == [.killAll])
        // Not before the group is gone.
        #expect(acts(s.step(.survivors(1), now: at(1.2))) == [])
        #expect(acts(s.step(.tick, now: at(1.3))) == [.killAll])
        let out = s.step(.survivors(0), now: at(1.3))
        #expect(acts(out) == [.rejoin])
        #expect(messages(out) == ["child stopped and reaped; standing by again"])
        #expect(s.phase == .standby && s.losses == 1 && s.renewDeadline == nil && s.lostReason == nil)
        #expect(s.wakeAt == nil)
        // A new term.
        running(&s, from: 20, pid: 200)
        #expect(s.wakeAt == at(22))
    }

    /// The own deadline stops the child before the election says anything:
    /// once the group is gone it waits for the election's `.lost` (it may
    /// still be blocked in a write) and only then rejoins.
    @Test func ownDeadline_waitsForTheElectionsLoss_thenRejoins() {
        var s = Supervision(timing: timing, onLoss: .standby)
        running(&s)
        #expect(acts(s.step(.tick, now: at(2))) == [.signalGroup(.terminate)])
        _ = s.step(.childExited(.exited(0)), now: at(2.1))
        #expect(acts(s.step(.survivors(0), now: at(2.1))) == [])
        #expect(s.phase == .awaitingElection(giveUpAt: at(5.1)))
        #expect(s.wakeAt == at(5.1))
        // A late renew of the old term must not start anything.
        #expect(acts(s.step(.renewed(sentAt: at(1.9)), now: at(2.5))) == [])
        #expect(acts(s.step(.lost(reason: "could not renew"), now: at(3))) == [.rejoin])
        #expect(s.phase == .standby && s.losses == 1)
    }

    @Test func ownDeadline_electionSilent_exits3AtGiveUp() {
        var s = Supervision(timing: timing, onLoss: .standby)
        running(&s)
        _ = s.step(.tick, now: at(2))
        _ = s.step(.childExited(.exited(0)), now: at(2.1))
        _ = s.step(.survivors(0), now: at(2.1))
        let out = s.step(.tick, now: at(5.1))
        #expect(acts(out) == [.exit(.leadershipLost)])
        #expect(messages(out) == ["the election did not report the loss in time; exiting as with --on-loss exit"])
    }

    /// SIGTERM while stopping the child: forwarded, then exit 3, no rejoin.
    @Test func sigtermWhileStopping_exits3() {
        var s = Supervision(timing: timing, onLoss: .standby)
        running(&s)
        _ = s.step(.lost(reason: "taken"), now: at(1))
        #expect(acts(s.step(.signal(.terminate), now: at(1.1))) == [.signalGroup(.terminate)])
        _ = s.step(.childExited(.exited(0)), now: at(1.2))
        #expect(acts(s.step(.survivors(0), now: at(1.2))) == [.exit(.leadershipLost)])
    }

    /// The child's own exit still ends kube-leader with its code.
    @Test func childExit_stillEndsKubeLeaderWithItsCode() {
        var s = Supervision(timing: timing, onLoss: .standby)
        running(&s)
        _ = s.step(.childExited(.exited(7)), now: at(1))
        #expect(acts(s.step(.survivors(0), now: at(1))) == [.requestRelease])
        #expect(acts(s.step(.electionEnded(.released), now: at(1.1))) == [.exit(.childExited(.exited(7)))])
    }

    /// Lost before the child could start: nothing to stop, rejoin at once.
    @Test func lostBeforeTheChildStarted_rejoins() {
        var s = Supervision(timing: timing, onLoss: .standby)
        _ = s.step(.renewed(sentAt: at(0)), now: at(0))
        #expect(acts(s.step(.lost(reason: "taken"), now: at(0.1))) == [.rejoin])
        #expect(s.phase == .standby && s.losses == 1)
    }

    /// The election ended (not lost in standby mode: a configuration error
    /// after the loss): exit 3 as before, no rejoin.
    @Test func electionEndedDuringTheStop_exits3() {
        var s = Supervision(timing: timing, onLoss: .standby)
        running(&s)
        _ = s.step(.lost(reason: "taken"), now: at(1))
        _ = s.step(.electionEnded(.lost(reason: "taken")), now: at(1.05))
        _ = s.step(.childExited(.exited(0)), now: at(1.2))
        #expect(acts(s.step(.survivors(0), now: at(1.2))) == [.exit(.leadershipLost)])
    }

    @Test func exitMode_unchanged() {
        var s = Supervision(timing: timing)
        running(&s)
        _ = s.step(.lost(reason: "taken"), now: at(1))
        _ = s.step(.childExited(.exited(0)), now: at(1.2))
        #expect(acts(s.step(.survivors(0), now: at(1.2))) == [.exit(.leadershipLost)])
    }
}

/// The driver forgets the old term's mailbox at `.rejoin`, so the next
/// "leading" is a new `.becameLeader` (and a new child), and nothing of the
/// old term is read again.
@Suite struct OnLossDriverTests {
    final class Ports: SupervisorPorts {
        var clock = MonotonicInstant(nanoseconds: 1_000_000_000_000)
        var mailbox = ElectionReport()
        var spawned: [Int32] = []
        var signalled: [(Int32, Signal)] = []
        var rejoins = 0
        var nextPid: Int32 = 100
        var exited: [Int32] = []
        var now: MonotonicInstant { clock }
        func spawn(environment: [String: String]) -> Supervision.Event {
            nextPid += 1
            spawned.append(nextPid)
            return .spawned(pid: nextPid)
        }
        func signalGroup(_ group: Int32, _ signal: Signal) { signalled.append((group, signal)) }
        func killAll(group: Int32) -> (reaped: [(pid: Int32, status: TerminationStatus)], survivors: Int) { ([], 0) }
        func reapAll() -> [(pid: Int32, status: TerminationStatus)] {
            defer { exited = [] }
            return exited.map { ($0, TerminationStatus.signaled(.terminate)) }
        }
        func requestRelease() -> Bool { true }
        func readMailbox() -> ElectionReport { mailbox }
        func rejoin() {
            rejoins += 1
            mailbox = ElectionReport()
        }
        func execOutcome() -> Supervision.Event? { nil }
        func log(_ note: Supervision.Note) {}
        func observed(_ event: Supervision.Event) {}
    }

    @Test func rejoin_clearsTheMailbox_andTheNextTermStartsANewChild() {
        let ports = Ports()
        let driver = SupervisorDriver(machine: Supervision(timing: .init(renewDeadline: .seconds(2), killGrace: .seconds(1)), onLoss: .standby),
                                      ports: ports)
        ports.mailbox = ElectionReport(leading: true, lastRenewSentAt: ports.clock)
        #expect(driver.turn(signals: []) == nil)
        #expect(ports.spawned == [101])
        ports.clock = ports.clock + .seconds(1)
        ports.mailbox.lostReason = "taken"
        #expect(driver.turn(signals: []) == nil)
        #expect(ports.signalled.map(\.1) == [.terminate])
        ports.exited = [101]
        #expect(driver.turn(signals: [.child]) == nil)
        #expect(ports.rejoins == 1)
        #expect(driver.machine.phase == .standby)
        // Nothing new: no child.
        #expect(driver.turn(signals: []) == nil)
        #expect(ports.spawned == [101])
        // The next term.
        ports.clock = ports.clock + .seconds(5)
        ports.mailbox = ElectionReport(leading: true, lastRenewSentAt: ports.clock)
        #expect(driver.turn(signals: []) == nil)
        #expect(ports.spawned == [101, 102])
        #expect(driver.child == 102)
    }
}
