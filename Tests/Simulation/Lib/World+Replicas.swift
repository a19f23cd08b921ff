import KLCore

/// The processes of kube-leader: starting, exiting and crashing a replica,
/// and the mailbox its election thread and main thread share.
extension World {
    // MARK: Processes of kube-leader

    func process(_ r: Int, _ inc: Int) -> ReplicaProcess? {
        guard let p = replicas[r].process, p.incarnation == inc else { return nil }
        return p
    }

    /// Starts kube-leader on replica `r` (a new process: a fresh election).
    func startReplica(_ r: Int) {
        let replica = replicas[r]
        guard replica.process == nil else { return }
        replica.incarnations += 1
        replica.starts += 1
        let p = ReplicaProcess(incarnation: replica.incarnations)
        replica.process = p
        var election = Election(identity: replica.identity, timing: config.timing)
        coordinatedStart(r, election: &election)
        p.runner = ElectionThread(world: self, replica: r, incarnation: p.incarnation, election: election,
                                requestTimeout: config.timing.renewDeadline, onLoss: config.onLoss(of: r))
        p.supervisor = SimSupervisor(world: self, replica: r, incarnation: p.incarnation,
                                     timing: Supervision.Timing(renewDeadline: config.timing.renewDeadline, killGrace: config.killGrace),
                                     onLoss: config.onLoss(of: r))
        trace(r, "kube-leader starts")
        p.runner.start()
    }

    /// kube-leader exits (or is killed): its threads stop, its watches close;
    /// the child dies with it through PR_SET_PDEATHSIG; other processes of its
    /// group die too only when it was PID 1 of the container.
    func exitProcess(_ r: Int, _ inc: Int, _ exit: SimExit?) {
        guard let p = process(r, inc) else { return }
        let replica = replicas[r]
        replica.process = nil
        if let exit {
            replica.exits.append(exit)
            trace(r, "kube-leader exits (\(exit), code \(exit.code))")
        } else {
            trace(r, "kube-leader killed")
        }
        p.runner.closeWatch()
        coordinatedExit(r, clean: exit != nil)
        for id in aliveProcesses where processes[id].replica == r && processes[id].incarnation == inc {
            let pdeathsig = !processes[id].isGrandchild && processes[id].id == p.child
            if pdeathsig || replica.pid1 {
                processDied(id, code: 137)
            }
        }
        if let delay = config.restartDelayMs {
            queue.push(now + rng.millis(delay), .restart(replica: r))
        }
    }

    func crash(_ r: Int) {
        guard let p = replicas[r].process else { return }
        if !config.crashWithOrphans && !replicas[r].pid1,
           aliveProcesses.contains(where: { processes[$0].replica == r && processes[$0].incarnation == p.incarnation && processes[$0].isGrandchild }) {
            trace(r, "crash skipped: not PID 1 and its child left a background process (crash-with-orphans not drawn)")
            return
        }
        exitProcess(r, p.incarnation, nil)
    }

    /// Whether a deletion, clear or other writer's change stays within the
    /// documented guarantees: every running standby has seen the hold that
    /// ends or changes (its last observation names the current holder with
    /// the current lease). A replica that never saw that hold cannot tell a
    /// deleted lock from a new one (`Election`'s non-guarantees).
    ///
    /// The lease is part of the hold (found by the random simulation): another writer lowered
    /// the holder's lease to 1 s while a standby could not watch (the API
    /// server had restarted), then someone cleared the holder. The standby,
    /// whose last record was the 10 s hold, next read an empty holder with a
    /// 1 s lease and the transitions kept: client-go's release record, which
    /// `Election` takes for the holder's release (free at once) and cannot
    /// tell from one ("someone who writes a release record by hand is taken
    /// for the holder"). A standby that saw the 1 s change waits the 10 s
    /// hold out from it (`heldUntil`), so the pair is safe only then.
    func holdEndMayHappen(force: Bool = false) -> Bool {
        if config.freshStartAfterDelete || force { return true }
        guard let current = server.snapshot?.record, !current.holderIdentity.isEmpty else { return true }
        for r in replicas.indices {
            guard let p = replicas[r].process, !p.runner.finished, p.runner.election.role == .standby else { continue }
            let seen = p.runner.election.observed?.record
            if seen?.holderIdentity != current.holderIdentity || seen?.leaseDurationSeconds != current.leaseDurationSeconds {
                trace(r, "deletion/clear skipped: this standby has not seen the lock held (fresh-start-after-delete not drawn)")
                return false
            }
        }
        return true
    }

    // MARK: ElectionMailbox

    func hostBecameLeader(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc) else { return }
        p.mailbox.becameLeader()
        leaderStarts.append((r, now))
        trace(r, "election thread: became leader")
        wakeMain(r, inc)
    }

    func hostLostLeadership(_ r: Int, _ inc: Int, reason: String) {
        guard let p = process(r, inc) else { return }
        p.mailbox.lostLeadership(reason: reason)
        leaderEnds.append((r, now))
        trace(r, "election thread: leadership lost: \(reason)")
        wakeMain(r, inc)
    }

    func hostFinished(_ r: Int, _ inc: Int, _ outcome: LockSession.Outcome) {
        guard let p = process(r, inc) else { return }
        p.mailbox.finished(outcome)
        trace(r, "election thread finished: \(outcome)")
        wakeMain(r, inc)
    }

    /// ElectionMailbox.requestRelease: true when the election is busy (an acquire
    /// in flight, the lock held or led); its outcome then follows.
    @discardableResult
    func requestRelease(_ r: Int, _ inc: Int) -> Bool {
        guard let p = process(r, inc) else { return false }
        let busy = p.mailbox.requestRelease()
        p.wakePipe = true
        notifyRunner(r, inc, .wake)
        return busy
    }

    /// ElectionMailbox.beginAcquire
    func hostBeginAcquire(_ r: Int, _ inc: Int) -> Bool {
        guard let p = process(r, inc) else { return false }
        return p.mailbox.beginAcquire()
    }

    /// ElectionMailbox.endAcquire
    func hostEndAcquire(_ r: Int, _ inc: Int, won: Bool) {
        guard let p = process(r, inc) else { return }
        p.mailbox.endAcquire(won: won)
    }

    /// ElectionMailbox.renewed
    func hostRenewed(_ r: Int, _ inc: Int, sentAt: MonotonicInstant) {
        guard let p = process(r, inc) else { return }
        p.mailbox.renewed(sentAt: sentAt)   // monotonic: SimSupervisor carries it to the boot clock
        wakeMain(r, inc)
    }

    /// ElectionMailbox.rejoin: the old term is forgotten, the election may go on.
    func hostRejoin(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc) else { return }
        p.mailbox.rejoin()
        p.child = nil
        replicas[r].rejoins += 1
        trace(r, "supervisor: standing by again")
        notifyRunner(r, inc, .rejoin)
    }

    /// `inbox.wake()`: the main thread runs a turn a moment later.
    func wakeMain(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc), !p.mainWakeScheduled else { return }
        p.mainWakeScheduled = true
        queue.push(now + 20_000, .mainWake(replica: r, incarnation: inc))
    }

    func mainTimer(_ r: Int, _ inc: Int, at instant: MonotonicInstant) {
        guard let p = process(r, inc) else { return }
        p.mainTimerToken += 1
        let at = config.supervisorOnBootClock ? bootTrueTime(r, instant) : trueTime(r, instant)
        queue.push(at, .mainTimer(replica: r, incarnation: inc, token: p.mainTimerToken))
    }

    func runnerTimer(_ r: Int, _ inc: Int, at instant: MonotonicInstant) -> Int {
        guard let p = process(r, inc) else { return -1 }
        p.runnerToken += 1
        let at = trueTime(r, instant)
        p.timerWanted = (p.runnerToken, at)
        if !p.timerArmed.contains(where: { $0 <= at }) {
            p.timerArmed.append(at)
            queue.push(at, .runnerTimer(replica: r, incarnation: inc, token: 0))
        }
        return p.runnerToken
    }

    /// Hands an input to the election thread, unless it is blocked (then it
    /// gets it, in order, when it unblocks).
    func notifyRunner(_ r: Int, _ inc: Int, _ input: RunnerInput) {
        guard let p = process(r, inc) else { return }
        if p.frozenUntil > now {
            if p.frozenInputs.isEmpty { queue.push(p.frozenUntil, .runnerTimer(replica: r, incarnation: inc, token: -1)) }
            p.frozenInputs.append(input)
            return
        }
        if !p.frozenInputs.isEmpty {
            let pending = p.frozenInputs
            p.frozenInputs.removeAll()
            for i in pending { p.runner.receive(i) }
        }
        if case .timer(-1) = input { return }
        p.runner.receive(input)
    }
}
