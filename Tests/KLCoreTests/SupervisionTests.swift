import KLCore
import Testing

/// The supervision phase machine driven by hand: every instant is made up
/// (t0 + seconds), nothing sleeps, no process exists.
@Suite struct SupervisionTests: SupervisionScript {
    /// A machine whose child (pid 100) runs; the acquire was sent at t0.
    func running(env: [String: String] = [:]) -> Supervision {
        var s = Supervision(timing: timing)
        #expect(s.step(.renewed(sentAt: at(0)), now: at(0.05)).isEmpty)
        #expect(acts(s.step(.becameLeader(environment: env), now: at(0.1))) == [.spawn(environment: env)])
        #expect(s.phase == .starting)
        #expect(acts(s.step(.spawned(pid: 100), now: at(0.1))) == [])
        #expect(s.phase == .running(pid: 100))
        return s
    }

    // MARK: Starting

    @Test func becameLeader_withLiveDeadline_spawnsWithTheEnvironmentAdditions() {
        let s = running(env: ["KUBE_LEADER_EXTRA": "1"])
        #expect(s.wakeAt == at(2), "the own deadline is the next wake-up")
    }

    @Test func becameLeader_afterTheRenewDeadline_startsNothing_exits3() {
        var s = Supervision(timing: timing)
        _ = s.step(.renewed(sentAt: at(0)), now: at(0))
        let out = s.step(.becameLeader(), now: at(2))
        #expect(acts(out) == [.exit(.leadershipLost)])
        #expect(messages(out) == ["not starting the child: the renew deadline passed before it could start"])
    }

    @Test func becameLeader_withoutAnyRenew_startsNothing() {
        var s = Supervision(timing: timing)
        #expect(acts(s.step(.becameLeader(), now: at(0))) == [.exit(.leadershipLost)])
    }

    @Test func lostWhileStarting_stopsTheChildAsSoonAsItRuns() {
        var s = starting()
        #expect(acts(s.step(.lost(reason: "taken"), now: at(0.2))) == [])
        #expect(acts(s.step(.spawned(pid: 7), now: at(0.3))) == [.signalGroup(.terminate)])
        #expect(s.phase == .stopping(pid: 7, killAt: at(1.3), killed: false, giveUpAt: at(6.3)))
    }

    @Test func signalWhileStarting_isForwardedOnceTheChildRuns() {
        var s = starting()
        #expect(s.step(.signal(.user1), now: at(0.1)).isEmpty)
        #expect(acts(s.step(.spawned(pid: 7), now: at(0.2))) == [.signalGroup(.user1)])
    }

    @Test(arguments: [(Int32(127), "not found"), (Int32(126), "not executable")])
    func spawnFailed_releasesTheLock_thenExitsWithItsCode(code: Int32, message: String) {
        var s = Supervision(timing: timing)
        _ = s.step(.renewed(sentAt: at(0)), now: at(0))
        _ = s.step(.becameLeader(), now: at(0))
        #expect(acts(s.step(.spawnFailed(code: code, message: message), now: at(0))) == [.requestRelease])
        let out = s.step(.electionEnded(.released), now: at(0.2))
        #expect(out == [.exit(.spawnFailed(code: code, message: message))])
        #expect(Supervision.Exit.spawnFailed(code: code, message: message).code == code)
    }

    /// An exec that hangs or fails: the exec of a forked child fails later: the child
    /// exits 127 by itself; what it left is killed, the lock released, and
    /// the exit code is the spawn failure's (126 here), not the child's 127.
    @Test func execFailingAfterTheFork_drainsReleasesAndExitsWithTheSpawnCode() {
        var s = running()
        #expect(acts(s.step(.spawnFailed(code: 126, message: "no x bit"), now: at(0.2))) == [.killAll])
        #expect(acts(s.step(.childExited(.exited(127)), now: at(0.2))) == [])
        #expect(acts(s.step(.survivors(0), now: at(0.2))) == [.requestRelease])
        #expect(s.step(.electionEnded(.released), now: at(0.3)) == [.exit(.spawnFailed(code: 126, message: "no x bit"))])
    }

    /// Row 7: an exec that hangs (a binary on a dead mount) is a running
    /// child to the machine: its renew deadline stops it like any other.
    @Test func execStillPendingAtTheRenewDeadline_isStopped() {
        var s = running()   // `.spawned` came at the fork; no exec report since
        #expect(s.wakeAt == at(2))
        #expect(acts(s.step(.tick, now: at(2))) == [.signalGroup(.terminate)])
        #expect(acts(s.step(.tick, now: at(3))) == [.killAll])
        #expect(acts(s.step(.childExited(.signaled(.kill)), now: at(3.01))) == [.killAll])
        #expect(s.step(.survivors(0), now: at(3.02)) == [.exit(.leadershipLost)])
    }

    // MARK: Row 3: nothing of the child outlives the lock

    @Test func childExit_killsWhatItLeft_andReleasesOnlyWhenAllIsReaped() {
        var s = running()
        let status = TerminationStatus.exited(0)
        // 1. The child exits: SIGKILL its group and our other descendants first.
        #expect(acts(s.step(.childExited(status), now: at(1))) == [.killAll])
        // 2. Two processes still there: no release yet; SIGKILL again after the interval.
        #expect(acts(s.step(.survivors(2), now: at(1))) == [])
        #expect(s.wakeAt == at(1.1))
        #expect(acts(s.step(.tick, now: at(1.05))) == [])
        #expect(acts(s.step(.tick, now: at(1.1))) == [.killAll])
        // 3. All reaped: now, and only now, the lock is released.
        #expect(acts(s.step(.survivors(0), now: at(1.12))) == [.requestRelease])
        #expect(s.phase == .releasing(.childExited(status), giveUpAt: at(4.12)))
        #expect(s.step(.electionEnded(.released), now: at(1.2)) == [.exit(.childExited(status))])
    }

    @Test func childExit_survivorsBeyondTheDrainTimeout_exitWithoutReleasing() {
        var s = running()
        _ = s.step(.childExited(.exited(3)), now: at(1))
        for step in 1...49 {
            let t = 1.0 + Double(step) / 10
            let out = acts(s.step(.tick, now: at(t)))
            #expect(out == [.killAll] || out.isEmpty)
            #expect(acts(s.step(.survivors(1), now: at(t))) == [])
        }
        let out = s.step(.tick, now: at(6))
        #expect(acts(out) == [.exit(.childExited(.exited(3)))], "no .requestRelease: the lock expires by itself")
        #expect(messages(out) == ["processes of the child survived SIGKILL; not releasing the lock (it expires by itself)"])
    }

    @Test func childExit_whenTheElectionAlreadyEnded_exitsWithoutWaitingForARelease() {
        var s = running()
        _ = s.step(.childExited(.exited(0)), now: at(1))
        _ = s.step(.lost(reason: "conflict"), now: at(1))
        _ = s.step(.electionEnded(.lost(reason: "conflict")), now: at(1))
        #expect(acts(s.step(.survivors(0), now: at(1.1))) == [.exit(.childExited(.exited(0)))])
    }

    @Test func leadershipLost_sigtermThenSigkill_thenEverythingReaped_thenExit3() {
        var s = running()
        #expect(acts(s.step(.lost(reason: "held by b"), now: at(1))) == [.signalGroup(.terminate)])
        #expect(s.wakeAt == at(2))
        #expect(acts(s.step(.tick, now: at(1.9))) == [])
        #expect(acts(s.step(.tick, now: at(2))) == [.killAll])
        #expect(acts(s.step(.survivors(1), now: at(2))) == [], "waits for the child itself first")
        #expect(acts(s.step(.childExited(.signaled(.kill)), now: at(2.01))) == [.killAll])
        #expect(acts(s.step(.survivors(0), now: at(2.02))) == [.exit(.leadershipLost)], "lost: no release")
        #expect(Supervision.Exit.leadershipLost.code == 3)
    }

    @Test func leadershipLost_childThatStopsOnSigterm_isNotKilled_butWhatItLeftIs() {
        var s = running()
        _ = s.step(.lost(reason: "deleted"), now: at(1))
        #expect(acts(s.step(.childExited(.signaled(.terminate)), now: at(1.5))) == [.killAll])
        #expect(acts(s.step(.tick, now: at(1.55))) == [])
        #expect(acts(s.step(.survivors(0), now: at(1.55))) == [.exit(.leadershipLost)])
    }

    @Test func leadershipLost_childSurvivingSigkill_exits3AfterTheDrainTimeout() {
        var s = running()
        _ = s.step(.lost(reason: "x"), now: at(1))
        _ = s.step(.tick, now: at(2))
        #expect(acts(s.step(.tick, now: at(6.9))) == [])
        #expect(acts(s.step(.tick, now: at(7))) == [.exit(.leadershipLost)])
    }

    // MARK: Row 5: the own deadline

    @Test func ownDeadline_stopsTheChild_whenTheElectionReportsNothing() {
        var s = running()
        _ = s.step(.renewed(sentAt: at(1)), now: at(1.4))
        #expect(s.wakeAt == at(3), "moved by the renew sent at 1 s")
        #expect(acts(s.step(.tick, now: at(2.999))) == [])
        let out = s.step(.tick, now: at(3))
        #expect(acts(out) == [.signalGroup(.terminate)])
        #expect(out.first == .signalGroup(.terminate), "the signal goes out before any log line")
        #expect(s.phase == .stopping(pid: 100, killAt: at(4), killed: false, giveUpAt: at(9)))
        #expect(acts(s.step(.tick, now: at(4))) == [.killAll])
    }

    @Test func ownDeadline_aRenewSentEarlierDoesNotMoveItBack() {
        var s = running()
        _ = s.step(.renewed(sentAt: at(1.5)), now: at(1.6))
        _ = s.step(.renewed(sentAt: at(1)), now: at(1.7))
        #expect(s.renewDeadline == at(3.5))
    }

    @Test func lossLearntLate_sigkillIsStillDueByDeadlinePlusKillGrace() {
        var s = running()
        // The loop was held up past deadline (2 s) + kill grace (1 s): both at once.
        #expect(acts(s.step(.tick, now: at(3.5))) == [.signalGroup(.terminate), .killAll])
    }

    @Test func electionReportsLossBeforeTheDeadline_killAtCountsFromThatReport() {
        var s = running()
        _ = s.step(.lost(reason: "held by b"), now: at(0.5))
        #expect(s.phase == .stopping(pid: 100, killAt: at(1.5), killed: false, giveUpAt: at(6.5)))
    }

    @Test(arguments: [Supervision.ElectionEnd.released, .lost(reason: "r"), .configuration("403")])
    func electionEndingWhileTheChildRuns_stopsTheChild(end: Supervision.ElectionEnd) {
        var s = running()
        #expect(acts(s.step(.electionEnded(end), now: at(1))) == [.signalGroup(.terminate)])
    }

    // MARK: Signals

    /// Signals forwarded: tini's list. Every catchable signal but SIGCHLD,
    /// SIGPIPE, SIGTTIN/SIGTTOU and the synchronous ones, real-time included.
    @Test func forwardedSignals_areTinisList() {
        #expect(Signal.forwarded.map(\.name) == [
            "SIGHUP", "SIGINT", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGTERM", "SIGSTKFLT",
            "SIGCONT", "SIGTSTP", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH",
            "SIGIO", "SIGPWR",
        ])
        let all = Signal.forwarded(realtime: 34...64).map(\.rawValue)
        #expect(all.count == 18 + 31)
        #expect(all.suffix(31) == Array(34...64))
        for excluded: Int32 in [4, 5, 6, 7, 8, 9, 11, 13, 17, 19, 21, 22, 31, 32, 33] {
            #expect(!all.contains(excluded), "signal \(excluded)")
        }
    }

    /// Row 6: while the child runs, each of them (SIGPWR, SIGALRM,
    /// SIGRTMIN+3, ...) goes to its group, and none stops the child or us.
    @Test func signalsWhileRunning_areForwardedToTheGroup() {
        var s = running()
        for signal in Signal.forwarded(realtime: 34...64) {
            #expect(acts(s.step(.signal(signal), now: at(0.5))) == [.signalGroup(signal)])
        }
        #expect(s.phase == .running(pid: 100), "SIGTERM is the child's to act on")
    }

    @Test func sigtermWhileStopping_isForwarded() {
        var s = running()
        _ = s.step(.lost(reason: "x"), now: at(1))
        #expect(acts(s.step(.signal(.interrupt), now: at(1.2))) == [.signalGroup(.interrupt)])
    }

    @Test func nonTerminatingSignalWhileStandingBy_isIgnored() {
        var s = Supervision(timing: timing)
        for signal in Signal.forwarded(realtime: 34...64) where !Supervision.terminating.contains(signal) {
            #expect(acts(s.step(.signal(signal), now: at(0))) == [], "\(signal)")
            #expect(s.phase == .standby)
        }
    }

    // MARK: Row 6: SIGTERM before leading

    @Test(arguments: [Signal.terminate, .interrupt, .hangup, .quit])
    func terminatingSignalWhileIdle_exits128PlusN_afterTheElectionConfirms(signal: Signal) {
        var s = Supervision(timing: timing)
        #expect(acts(s.step(.signal(signal), now: at(0))) == [.requestRelease])
        // The loop answers at once: no acquire in flight.
        #expect(s.step(.electionEnded(.released), now: at(0)) == [.exit(.signalWhileWaiting(signal))])
        #expect(Supervision.Exit.signalWhileWaiting(signal).code == 128 + signal.rawValue)
    }

    @Test func sigtermWithAnAcquireInFlight_thatLands_startsNothing_andWaitsForTheRelease() {
        var s = Supervision(timing: timing)
        #expect(acts(s.step(.signal(.terminate), now: at(0))) == [.requestRelease])
        #expect(s.wakeAt == at(3))
        // The acquire lands after the signal: not started, the election releases it.
        #expect(acts(s.step(.renewed(sentAt: at(-0.5)), now: at(0.4))) == [])
        #expect(acts(s.step(.becameLeader(), now: at(0.4))) == [])
        #expect(acts(s.step(.tick, now: at(1))) == [])
        #expect(s.step(.electionEnded(.released), now: at(1.2)) == [.exit(.signalWhileWaiting(.terminate))])
    }

    @Test func sigtermWithAnAcquireInFlight_givesUpAfterTheReleaseTimeout() {
        var s = Supervision(timing: timing)
        _ = s.step(.signal(.terminate), now: at(0))
        #expect(acts(s.step(.tick, now: at(2.9))) == [])
        let out = s.step(.tick, now: at(3))
        #expect(acts(out) == [.exit(.signalWhileWaiting(.terminate))])
        #expect(messages(out) == ["gave up waiting for the lock request in flight; a lock it took expires by itself"])
    }

    // MARK: Other exits

    @Test func electionEndsWhileStandingBy_mapsToItsExit() {
        var a = Supervision(timing: timing)
        #expect(a.step(.electionEnded(.configuration("403 forbidden")), now: at(0)) == [.exit(.configuration("403 forbidden"))])
        var b = Supervision(timing: timing)
        #expect(acts(b.step(.lost(reason: "x"), now: at(0))) == [.exit(.leadershipLost)])
        var c = Supervision(timing: timing)
        guard case .exit(.internalError) = c.step(.electionEnded(.released), now: at(0)).last else {
            Issue.record("an unasked end of the election must not hang the supervisor"); return
        }
        #expect(Supervision.Exit.configuration("x").code == 2)
        #expect(Supervision.Exit.internalError("x").code == 1)
    }

    @Test func releaseThatNeverFinishes_givesUpAfterTheReleaseTimeout() {
        var s = running()
        _ = s.step(.childExited(.exited(5)), now: at(1))
        _ = s.step(.survivors(0), now: at(1))
        #expect(acts(s.step(.tick, now: at(3.9))) == [])
        #expect(acts(s.step(.tick, now: at(4))) == [.exit(.childExited(.exited(5)))])
    }

    @Test func afterExit_nothingMoreHappens() {
        var s = Supervision(timing: timing)
        _ = s.step(.electionEnded(.configuration("x")), now: at(0))
        #expect(s.step(.signal(.terminate), now: at(1)).isEmpty)
        #expect(s.step(.becameLeader(), now: at(1)).isEmpty)
        #expect(s.wakeAt == nil)
    }

    @Test func childExitCodes_passThrough() {
        #expect(Supervision.Exit.childExited(.exited(42)).code == 42)
        #expect(Supervision.Exit.childExited(.signaled(.kill)).code == 137)
        #expect(Supervision.Exit.childExited(.signaled(.terminate)).code == 143)
    }
}
