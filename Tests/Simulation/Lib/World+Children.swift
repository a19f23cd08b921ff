import KLCore

/// The children: processes started from a leader's command (and foreign
/// leaders' work), their signals and deaths, and the overlap accounting.
extension World {
    // MARK: Children

    /// `ChildProcess.spawnSupervised`: the child (and maybe a background
    /// process it leaves in its group) starts now.
    func spawnChild(_ r: Int, _ inc: Int) -> Int {
        let term = (r * 1_000_000 + inc) * 10_000 + min(9_999, process(r, inc)?.leaderships ?? 0)
        process(r, inc)?.leaderships += 1
        let b = config.child
        let child = newProcess(term: term, replica: r, incarnation: inc, isGrandchild: false, group: processes.count)
        process(r, inc)?.child = child
        childStarts += 1
        trace(r, "child \(child) starts")
        if rng.chance(b.grandchildProbability) {
            let g = newProcess(term: term, replica: r, incarnation: inc, isGrandchild: true, group: child)
            trace(r, "child \(child) leaves background process \(g)")
        }
        return child
    }

    private func termDelay() -> SimTime? {
        let b = config.child
        let u = rng.unit()
        if u < b.ignoresTermProbability { return nil }
        if u < b.ignoresTermProbability + b.slowTermProbability {
            return rng.int(Int64(0)...max(1, config.killGrace.nanoseconds * 3 / 2))
        }
        return rng.millis(b.termDelayMs)
    }

    private func newProcess(term: Int, replica: Int, incarnation: Int, isGrandchild: Bool, group: Int) -> Int {
        let id = processes.count
        processes.append(SimProcess(id: id, term: term, replica: replica, incarnation: incarnation, isGrandchild: isGrandchild,
                                    group: group, bornAt: now, termDelay: termDelay()))
        born(id)
        return id
    }

    /// A foreign leader's process (another program holding the lock).
    func startForeign() -> Int {
        foreignTerms += 1
        let id = processes.count
        processes.append(SimProcess(id: id, term: -foreignTerms, replica: -1, incarnation: 0, isGrandchild: false,
                                    group: id, bornAt: now, termDelay: 0))
        born(id)
        return id
    }

    /// Overlap check and safety margin, at every start of a process.
    private func born(_ id: Int) {
        let p = processes[id]
        aliveProcesses.append(id)
        let others = aliveProcesses.filter { processes[$0].term != p.term }
        if !others.isEmpty {
            let o = processes[others[0]]
            let what = o.isGrandchild ? "background process" : (o.replica < 0 ? "process" : "child")
            let owner = o.replica < 0 ? "" : (process(o.replica, o.incarnation) == nil ? "; its kube-leader is gone" : "; its kube-leader runs")
            violate(.overlap, "process \(id) of \(termName(p.term)) starts while \(what) \(o.id) of \(termName(o.term)) (started \(o.bornAt.traceText)\(owner)) is alive")
            if overlapSince == nil { overlapSince = now }
            return
        }
        if !p.isGrandchild {
            let lastOther = lastDeathOfTerm.filter { $0.term != p.term }.map(\.at).max()
            if let lastOther {
                let margin = now - lastOther
                if minSafetyMargin == nil || margin < minSafetyMargin! {
                    minSafetyMargin = margin
                    minSafetyMarginAt = now
                }
            }
        }
    }

    func termName(_ term: Int) -> String {
        term < 0 ? "foreign leader \(-term)"
            : "replica-\(term / 10_000_000_000) (process #\(term / 10_000 % 1_000_000)\(term % 10_000 > 0 ? ", leadership \(term % 10_000 + 1)" : ""))"
    }

    /// Signals a process group; false when nothing in it was alive.
    func signalGroup(_ group: Int, _ signal: SimSignal) -> Bool {
        var any = false
        for id in aliveProcesses where processes[id].group == group || processes[id].id == group {
            any = true
            switch signal {
            case .kill:
                processes[id].exitCode = 137
                processDied(id, code: 137)
            case .terminate:
                guard !processes[id].exitScheduled, let delay = processes[id].termDelay else { continue }
                processes[id].exitScheduled = true
                processes[id].exitToken += 1
                processes[id].exitCode = 143
                queue.push(now + delay, .processExit(process: id, token: processes[id].exitToken))
            case .child:
                break
            }
        }
        trace("\(signal.rawValue) to group \(group): \(any ? "delivered" : "nobody")")
        return any
    }

    /// ProcessTree.killAll: SIGKILL to the child's group and every other
    /// descendant of kube-leader `(r, inc)`, then reap. Returns what was reaped
    /// and how many survived (none: SIGKILL is instant here).
    func killAll(_ r: Int, _ inc: Int) -> (reaped: [(Int, Int32)], survivors: Int) {
        let mine = aliveProcesses.filter { processes[$0].replica == r && processes[$0].incarnation == inc }
        for id in mine { processDied(id, code: 137) }
        trace(r, "killAll: \(mine.count) killed")
        return (process(r, inc)?.reapAll() ?? [], 0)
    }

    /// The child exits by itself (crash, done) with `code`.
    func childExits(_ id: Int, code: Int32) {
        guard processes[id].alive else { return }
        processDied(id, code: code)
    }

    func processDied(_ id: Int, code: Int32) {
        guard processes[id].alive else { return }
        processes[id].alive = false
        processes[id].diedAt = now
        aliveProcesses.removeAll { $0 == id }
        let p = processes[id]
        trace("process \(id) of \(termName(p.term)) exits (\(code))")
        lastDeathOfTerm.removeAll { $0.term == p.term }
        lastDeathOfTerm.append((p.term, now))
        if lastDeathOfTerm.count > 16 { lastDeathOfTerm.removeFirst() }
        closeOverlap()
        // SIGCHLD to its kube-leader (the parent, or the subreaper).
        if p.replica >= 0, let owner = process(p.replica, p.incarnation) {
            owner.zombies.append((id, code))
            owner.post(.child)
            wakeMain(p.replica, p.incarnation)
        }
    }

    func closeOverlap() {
        guard let since = overlapSince else { return }
        var terms: [Int] = []
        for id in aliveProcesses where !terms.contains(processes[id].term) { terms.append(processes[id].term) }
        if terms.count < 2 {
            overlapTotal += now - since
            overlapSince = nil
        }
    }

    /// The leader's child (alive, started by a kube-leader that is alive).
    func leaderChild() -> Int? {
        aliveProcesses.first { id in
            let p = processes[id]
            return !p.isGrandchild && p.replica >= 0 && process(p.replica, p.incarnation) != nil
        }
    }

    public var aliveProcessCount: Int { aliveProcesses.count }
}
