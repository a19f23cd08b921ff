import KLCore
import KLSystem

/// Watch streams: chunked, one JSON event per chunk.
extension Server {
    /// The partition mode that applies to `token` now, if any.
    func partition(_ token: String?) -> FaultSet.PartitionMode? {
        guard let token else { return nil }
        return control.withLock { $0.faults.partitionedTokens.contains(token) ? $0.faults.partitionMode : nil }
    }

    /// Streams watch events until `timeoutSeconds`, the client leaves, the
    /// server stops, or the token gets partitioned (then the stream goes
    /// silent, or is reset, like every other connection of that token).
    func serveWatch(_ request: HTTPRequest, route: Route, transport: Transport, reader: HTTPReader) -> Next {
        var filter: ObjectFilter
        do { filter = try makeFilter(request, route) } catch {
            return send(.error(Status.badRequest(error.message)), request, transport)
        }
        if let name = route.name {   // GET .../configmaps/NAME?watch=1 (old style)
            var fields = filter.fields ?? (try! FieldSelector(""))
            fields.requirements.append((["metadata", "name"], name, false))
            filter.fields = fields
        }
        let fromRV = request.query["resourceVersion"]
        if let rv = fromRV.flatMap({ Int($0) }), rv > 0, control.withLock({ $0.faults.expireWatches }) {
            logRequest(request, status: 200, note: "expired by fault")
            let status = Status.failure(code: 410, reason: "Expired", message: "too old resource version: \(rv) (\(store.currentRV))")
            let line = Watcher.line(type: "ERROR", object: status)
            let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            let ok = transport.write(head + String(line.utf8.count, radix: 16) + "\r\n" + line + "\r\n0\r\n\r\n")
            return ok ? .keepOpen : .close
        }
        guard let start = store.startWatch(route.resource, filter, fromRV: fromRV) else {
            return send(.error(Status.failure(code: 500, reason: "InternalError", message: "fake: out of file descriptors")), request, transport)
        }
        logRequest(request, status: 200, note: nil)
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-cache, private\r\nTransfer-Encoding: chunked\r\n\r\n"
        guard transport.write(head) else {
            if case .events(_, let w) = start { store.stopWatch(w) }
            return .close
        }
        func chunk(_ line: String) -> Bool {
            let bytes = Array(line.utf8)
            return transport.write(String(bytes.count, radix: 16) + "\r\n" + line + "\r\n")
        }
        let watcher: Watcher
        switch start {
        case .expired(let status):
            let ok = chunk(Watcher.line(type: "ERROR", object: status)) && transport.write("0\r\n\r\n")
            return ok ? .keepOpen : .close
        case .events(let initial, let w):
            watcher = w
            for line in initial where !chunk(line) { store.stopWatch(w); return .close }
        }
        defer { store.stopWatch(watcher) }
        let timeout = Int(request.query["timeoutSeconds"] ?? "").map { max(0, $0) } ?? 1800
        let deadline = monotonicMillis() + Int64(timeout) * 1000
        let bookmarks = ["1", "true"].contains(request.query["allowWatchBookmarks"] ?? "")
        let bookmarkEvery: Int64 = 2000
        var lastSent = monotonicMillis()
        while !stopped.load(ordering: .acquiring) {
            let now = monotonicMillis()
            if now >= deadline { break }
            switch partition(request.bearerToken) {
            case .hang?: reader.drainUntilClosed(); return .close
            case .reset?: return .reset
            case nil: break
            }
            var wait = min(deadline - now, 1000)   // re-check partitions every second
            if bookmarks { wait = min(wait, max(1, lastSent + bookmarkEvery - now)) }
            var fds = [pollfd(fd: watcher.wake.readFD, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: transport.fd, events: Int16(POLLIN), revents: 0)]
            if pollUntil(&fds, deadline: MonotonicClock.now + .milliseconds(wait)).ready < 0 { return .close }
            if fds[1].revents != 0 { return .close }   // the client went away
            if fds[0].revents != 0 {
                if partition(request.bearerToken) != nil { continue }
                for line in watcher.drain() { if !chunk(line) { return .close } }
                lastSent = monotonicMillis()
            } else if bookmarks && monotonicMillis() - lastSent >= bookmarkEvery {
                let object: JSON = ["kind": .string(route.resource.kind), "apiVersion": .string(route.resource.apiVersion),
                                    "metadata": ["resourceVersion": .string(String(store.currentRV))]]
                if !chunk(Watcher.line(type: "BOOKMARK", object: object)) { return .close }
                lastSent = monotonicMillis()
            }
        }
        for line in watcher.drain() { if !chunk(line) { return .close } }
        return transport.write("0\r\n\r\n") ? .keepOpen : .close
    }
}
