import KLCore

/// The network between the replicas and the API server: requests, responses,
/// deadlines, watches, and the request budget of a standby.
extension World {
    // MARK: Network

    private func latency(_ r: Int) -> SimTime {
        var d = rng.millis(config.latencyMs) / 2 + rng.int(Int64(0)...999_999)
        let net = replicas[r].net
        if net.slowUntil > now && !net.slowBeforeServer { d += rng.millis(net.slowMs) }
        return d
    }

    /// Sends a request; returns its id. The response (or the deadline) comes
    /// back to the election thread as `.response`.
    func send(_ request: SimRequest, from r: Int, _ inc: Int, timeout: Duration, standby: Bool) -> Int {
        let id = requests.count
        requests.append(InFlight(replica: r, incarnation: inc, request: request, kindName: config.trace ? request.name : "", sentAt: now))
        requestCount += 1
        trace(r, "send \(request.name)#\(id)")
        if standby, let p = process(r, inc) { checkBudget(r, p, request) }
        requests[id].deadline = trueTime(r, localNow(r) + timeout)
        if replicas[r].net.deadConnection {
            replicas[r].net.deadConnection = false
            trace(r, "\(request.name)#\(id) sent on a dead connection: no answer")
            requests[id].request = nil
            queueDeadline(id, unlessBefore: nil)
            return id
        }
        let net = replicas[r].net
        if net.partitionUntil > now {
            if net.refuse {
                let arrive = now + rng.int(Int64(100_000)...1_000_000)
                queue.push(arrive, .clientReceives(request: id))
                requests[id].request = nil
                queueDeadline(id, unlessBefore: arrive)
            } else {
                queueDeadline(id, unlessBefore: nil)  // dropped: only the deadline answers
            }
            return id
        }
        var arrive = now + latency(r)
        if net.slowUntil > now && net.slowBeforeServer { arrive += rng.millis(net.slowMs) }
        queue.push(arrive, .serverReceives(request: id))
        queueDeadline(id, unlessBefore: arrive)
        return id
    }

    /// Queues the deadline of request `id` unless its answer arrives before it.
    private func queueDeadline(_ id: Int, unlessBefore arrival: SimTime?) {
        guard !requests[id].deadlineQueued else { return }
        if let arrival, arrival < requests[id].deadline { return }
        requests[id].deadlineQueued = true
        queue.push(max(now, requests[id].deadline), .requestDeadline(request: id))
    }

    private var refusedResponse: SimResponse { .transport("connection refused") }

    func serverReceives(_ id: Int) {
        guard let request = requests[id].request else { return }
        requests[id].reachedServer = true
        let r = requests[id].replica
        let net = replicas[r].net
        var response: SimResponse
        if net.errorUntil > now && rng.chance(net.errorProbability) {
            if rng.chance(net.errorProcessedProbability) { _ = handleAtServer(request, r, id) }
            response = .status(net.errorCode, "InternalError")
        } else {
            response = handleAtServer(request, r, id)
        }
        if case .watchOpened = response {} else { requests[id].request = nil }
        requests[id].response = response
        let arrive = now + latency(r)
        queue.push(arrive, .clientReceives(request: id))
        queueDeadline(id, unlessBefore: arrive)
    }


    private func handleAtServer(_ request: SimRequest, _ r: Int, _ id: Int) -> SimResponse {
        let inc = requests[id].incarnation
        let response = server.handle(request, at: now, deliver: { conn, item in self.deliver(conn, item) },
                                     openWatch: { self.openWatch(r, inc) })
        trace(r, "server: \(request.name)#\(id) -> \(response.traceText)")
        return response
    }

    func clientReceives(_ id: Int) {
        let r = requests[id].replica
        let response = requests[id].response ?? refusedResponse
        requests[id].response = nil
        if requests[id].done {
            if case .watchOpened(let w) = response, let conn = watches[w] { closeWatch(conn) }
            return
        }
        let net = replicas[r].net
        if net.partitionUntil > now && !net.refuse {
            if case .watchOpened(let w) = response, let conn = watches[w] { closeWatch(conn) }
            queueDeadline(id, unlessBefore: nil)
            return  // the response is lost; the deadline answers
        }
        requests[id].done = true
        requests[id].request = nil
        trace(r, "recv \(requests[id].kindName)#\(id): \(response.traceText)")
        if process(r, requests[id].incarnation) == nil, case .watchOpened(let w) = response, let conn = watches[w] {
            closeWatch(conn)
            return
        }
        notifyRunner(r, requests[id].incarnation, .response(request: id, response))
    }

    private func openWatch(_ r: Int, _ inc: Int) -> WatchConnection {
        nextWatch += 1
        let conn = WatchConnection(id: nextWatch, replica: r, incarnation: inc)
        watches[conn.id] = conn
        queue.push(now + SimTime(server.watchSeconds) * SimTime.second, .watchServerTimeout(watch: conn.id))
        queue.push(now + server.bookmarkInterval, .watchBookmark(watch: conn.id))
        return conn
    }

    func watchConnection(_ id: Int) -> WatchConnection? { watches[id] }

    func closeWatch(_ conn: WatchConnection) {
        conn.clientClosed = true
        watches[conn.id] = nil
    }

    /// The server sends a watch item; it arrives after the replica's latency,
    /// in order. A partitioned replica's watch is dead (half-open).
    func deliver(_ conn: WatchConnection, _ item: WatchItem) {
        guard conn.serverAlive, !conn.clientClosed else { return }
        let r = conn.replica
        let net = replicas[r].net
        if net.partitionUntil > now && !net.refuse {
            conn.serverAlive = false
            return
        }
        let arrival = max(conn.lastArrival, now + latency(r))
        conn.lastArrival = arrival
        conn.inTransit.append(item)
        queue.push(arrival, .watchArrival(watch: conn.id))
    }

    /// Ends the server side of `r`'s watches: with an end of stream, a reset,
    /// or silently (half-open: the client hears nothing).
    func dropWatches(of r: Int?, how: WatchDrop) {
        for w in server.watchers where w.serverAlive && !w.clientClosed && (r == nil || w.replica == r) {
            switch how {
            case .end: deliver(w, .ended)
            case .reset:
                w.inTransit.append(.broken)
                let arrival = max(w.lastArrival, now + 200_000)
                w.lastArrival = arrival
                queue.push(arrival, .watchArrival(watch: w.id))
            case .silent: break
            }
            w.serverAlive = false
        }
    }

    // MARK: Request budget

    /// A standby's budget per retry period (its own clock): one read (GET,
    /// LIST), one watch, one acquiring write, and one read and one watch right
    /// after a write that lost a race (to learn who won and follow them).
    private func checkBudget(_ r: Int, _ p: ReplicaProcess, _ request: SimRequest) {
        let local = replicas[r].clock.local(now)
        let retry = config.timing.retryPeriod.nanoseconds
        func check(_ last: inout Int64?, _ what: String) {
            if let l = last, local - l < retry {
                violate(.budget, "replica-\(r) sent two \(what) \((local - l) / 1_000_000) ms apart while standing by (retry period \(retry / 1_000_000) ms)")
            }
            last = local
        }
        switch request {
        case .get, .list, .getPod:
            standbyReads[r] += 1
            if case .getPod = request { return }  // part of the read it follows
            if p.fallbackRead {
                p.fallbackRead = false
                if case .get = request { return }
            }
            if p.lostWriteRead {
                // One per lost write; lost writes are paced as acquiring
                // writes. Timing these against each other measured the
                // latency of the previous one, not the standby's pace.
                p.lostWriteRead = false
            } else {
                check(&p.lastReadAt, "reads")
            }
        case .watch:
            standbyWatches[r] += 1
            if p.lostWriteWatch {
                p.lostWriteWatch = false
            } else {
                check(&p.lastWatchAt, "watches")
            }
        case .create, .update:
            p.lostWriteRead = false
            p.lostWriteWatch = false
            check(&p.lastWriteAt, "acquiring writes")
        }
    }

    /// A LIST was answered 403.
    func noteListForbidden(_ r: Int, _ inc: Int) {
        process(r, inc)?.fallbackRead = true
    }

    /// The runner saw a write lose a race (409, 404).
    func noteLostWrite(_ r: Int, _ inc: Int) {
        guard let p = process(r, inc) else { return }
        p.lostWriteRead = true
        p.lostWriteWatch = true
    }
}
