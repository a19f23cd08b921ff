import CFakeCerts
import COpenSSL
import Glibc
import KLCore
import KLSupport
import Synchronization

/// The HTTP(S) listener and per-connection request loop.
final class Server: Sendable {
    let store: Store
    let control = Mutex(ControlState())
    let adminTokens: Set<String>
    let port: Int
    let log: Logger
    let logRequests: Bool
    private let listenFD: Int32
    nonisolated(unsafe) private let tlsContext: OpaquePointer?
    private let connections = Mutex(Set<Int32>())
    private let stopped = Atomic(false)
    private let acceptExited = Atomic(false)

    init(host: String, port: Int, tls: (cert: String, key: String)?, store: Store, adminTokens: Set<String>,
         log: Logger, logRequests: Bool) throws(FakeServerError) {
        signal(SIGPIPE, SIG_IGN)
        raiseFileLimit()
        self.store = store
        self.adminTokens = adminTokens
        self.log = log
        self.logRequests = logRequests
        tlsContext = try tls.map { pair throws(FakeServerError) in try makeServerTLSContext(certFile: pair.cert, keyFile: pair.key) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw FakeServerError(.listen, "creating a socket failed (errno \(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            close(fd)
            throw FakeServerError(.usage, "--host \(host) is not an IPv4 address; use e.g. 127.0.0.1")
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            let e = errno
            close(fd)
            throw FakeServerError(.listen, "binding \(host):\(port) failed (\(String(cString: strerror(e)))); choose another --port or stop what uses it")
        }
        guard listen(fd, 1024) == 0 else { close(fd); throw FakeServerError(.listen, "listen() failed (errno \(errno))") }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        listenFD = fd
    }

    func start() {
        spawnThread { [self] in acceptLoop() }
    }

    /// Stops accepting, cuts every open connection and waits for the
    /// listener to close, so the port is free when this returns.
    func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        shutdown(listenFD, Int32(SHUT_RDWR))
        connections.withLock { for fd in $0 { shutdown(fd, Int32(SHUT_RDWR)) } }
        let deadline = monotonicMillis() + 2000
        while !acceptExited.load(ordering: .acquiring) && monotonicMillis() < deadline { sleepMillis(5) }
    }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            let fd = accept(listenFD, nil, nil)
            if fd < 0 {
                if errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE {
                    if errno == EMFILE || errno == ENFILE { sleepMillis(10) }
                    continue
                }
                break
            }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            var one: Int32 = 1
            setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            let accepted = connections.withLock { set -> Bool in
                if stopped.load(ordering: .acquiring) { return false }
                set.insert(fd); return true
            }
            if !accepted { close(fd); break }
            spawnThread { [self] in serveConnection(fd) }
        }
        close(listenFD)
        acceptExited.store(true, ordering: .releasing)
    }

    private func serveConnection(_ fd: Int32) {
        let context = tlsContext
        guard let transport = Transport(fd: fd, context: context) else {
            connections.withLock { _ = $0.remove(fd) }
            close(fd)
            return
        }
        var closeMode = 0   // 0 normal, 1 reset
        defer {
            connections.withLock { _ = $0.remove(fd) }
            if closeMode == 1 { transport.reset() } else { transport.close() }
        }
        let reader = HTTPReader(transport: transport)
        while !stopped.load(ordering: .acquiring) {
            let request: HTTPRequest
            do {
                guard let r = try reader.next() else { return }
                request = r
            } catch .malformed(let why) {
                _ = transport.write(HTTPResponse(status: 400, json: Status.badRequest(why)).encoded(keepAlive: false))
                return
            } catch {
                return
            }
            switch handle(request, transport: transport, reader: reader) {
            case .keepOpen: if !request.keepAlive { return }
            case .close: return
            case .reset: closeMode = 1; return
            }
        }
    }

    enum Next { case keepOpen, close, reset }

    private func handle(_ request: HTTPRequest, transport: Transport, reader: HTTPReader) -> Next {
        if request.path.hasPrefix("/fake/") {
            let response = handleControl(request)
            return transport.write(response.encoded(keepAlive: request.keepAlive)) ? .keepOpen : .close
        }
        let route = Route(path: request.path)
        let isWatch = ["1", "true"].contains(request.query["watch"] ?? "")
        let verb = Self.verb(method: request.method, route: route, watch: isWatch)
        let token = request.bearerToken
        let (fault, latency) = control.withLock { c in
            c.count(token: token, verb: verb)
            return c.decide(token: token)
        }
        switch fault {
        case .hang:
            logRequest(request, status: 0, note: "partition: hang")
            reader.drainUntilClosed()
            return .close
        case .reset:
            logRequest(request, status: 0, note: "partition: reset")
            return .reset
        case .drop:
            logRequest(request, status: 0, note: "dropped")
            return .close
        case .error(let code):
            sleepMillis(latency)
            return send(APIResult(code, FaultSet.errorBody(code), headers: code == 429 ? [("Retry-After", "1")] : []), request, transport)
        case .none:
            sleepMillis(latency)
        }
        if let denied = authorize(request, route: route, verb: verb) { return send(denied, request, transport) }
        if ["/healthz", "/readyz", "/livez"].contains(request.path) {
            logRequest(request, status: 200, note: nil)
            return transport.write(HTTPResponse(status: 200, text: "ok").encoded(keepAlive: request.keepAlive)) ? .keepOpen : .close
        }
        if let route, isWatch, request.method == "GET" {
            return serveWatch(request, route: route, transport: transport, reader: reader)
        }
        return send(dispatch(request, route: route, verb: verb), request, transport)
    }

    private func send(_ result: APIResult, _ request: HTTPRequest, _ transport: Transport) -> Next {
        logRequest(request, status: result.status, note: nil)
        let response = HTTPResponse(status: result.status, json: result.body, headers: result.headers)
        return transport.write(response.encoded(keepAlive: request.keepAlive)) ? .keepOpen : .close
    }

    private func logRequest(_ request: HTTPRequest, status: Int, note: String?) {
        guard logRequests else { return }
        var md: [(String, JSON)] = [("method", .string(request.method)), ("path", .string(request.path)), ("status", JSON(status))]
        if let note { md.append(("fault", .string(note))) }
        log.log(.info, "request", md)
    }

    static func verb(method: String, route: Route?, watch: Bool) -> String {
        switch method {
        case "GET": if watch { return "watch" }; return route?.name == nil ? "list" : "get"
        case "POST": return "create"
        case "PUT": return "update"
        case "PATCH": return "patch"
        case "DELETE": return route?.name == nil ? "deletecollection" : "delete"
        default: return method.lowercased()
        }
    }

    // MARK: Authentication and authorization

    private func authorize(_ request: HTTPRequest, route: Route?, verb: String) -> APIResult? {
        let path = request.path
        // Health endpoints are public, as on a default cluster.
        if ["/healthz", "/readyz", "/livez"].contains(path) { return nil }
        guard let token = request.bearerToken else { return .error(Status.unauthorized) }
        if adminTokens.contains(token) { return nil }
        guard let grant = control.withLock({ $0.tokens[token] }) else { return .error(Status.unauthorized) }
        guard let route else { return nil }   // discovery is open to every authenticated user
        if grant.allows(verb: verb, resource: route.rbacResource) { return nil }
        let r = route.resource
        var message = route.name.map { "\(r.qualified) \"\($0)\" is forbidden: " } ?? "\(r.qualified) is forbidden: "
        message += "User \"\(grant.user)\" cannot \(verb) resource \"\(route.rbacResource)\" in API group \"\(r.group)\""
        message += route.namespace.map { " in the namespace \"\($0)\"" } ?? " at the cluster scope"
        var details: JSON = ["name": .string(route.name ?? "")]
        if route.name == nil { details = .object(JSONObject()) }
        if !r.group.isEmpty { details["group"] = .string(r.group) }
        details["kind"] = .string(r.plural)
        return .error(Status.failure(code: 403, reason: "Forbidden", message: message, details: details))
    }

    // MARK: API

    private func dispatch(_ request: HTTPRequest, route: Route?, verb: String) -> APIResult {
        guard let route else {
            if request.method == "GET", let doc = Discovery.document(path: request.path, port: port) {
                return APIResult(200, doc)
            }
            return .error(Status.pathNotFound())
        }
        let r = route.resource
        let body: () -> JSON? = { try? JSON.parse(bytes: request.body) }
        switch (verb, route.subresource) {
        case ("get", nil), ("get", "status"):
            guard let o = store.get(r, route.namespace, route.name!) else { return .error(Status.notFound(r, route.name!)) }
            return APIResult(200, o)
        case ("list", nil):
            let filter: ObjectFilter
            do { filter = try makeFilter(request, route) } catch { return .error(Status.badRequest(error.message)) }
            let (items, rv) = store.list(r, filter)
            let stripped = items.map { item -> JSON in var i = item; i["kind"] = nil; i["apiVersion"] = nil; return i }
            return APIResult(200, ["kind": .string(r.kind + "List"), "apiVersion": .string(r.apiVersion),
                                   "metadata": ["resourceVersion": .string(String(rv))], "items": .array(stripped)])
        case ("create", nil):
            guard let o = body() else { return .error(decodeError(r)) }
            if route.resource.namespaced && route.namespace == nil { return .error(Status.methodNotAllowed()) }
            return store.create(r, namespace: route.namespace, o)
        case ("create", "eviction"):
            if let o = body(), let n = o[path: "metadata", "name"]?.stringValue, n != route.name! {
                return .error(Status.badRequest("name in URL does not match name in Eviction object"))
            }
            return store.evict(namespace: route.namespace ?? "", name: route.name!)
        case ("update", nil), ("update", "status"):
            guard let o = body() else { return .error(decodeError(r)) }
            return store.update(r, namespace: route.namespace, name: route.name!, subresource: route.subresource, o)
        case ("patch", nil), ("patch", "status"):
            return store.patch(r, namespace: route.namespace, name: route.name!, subresource: route.subresource,
                               contentType: request.headers["content-type"] ?? "", request.body)
        case ("delete", nil):
            return store.delete(r, namespace: route.namespace, name: route.name!, options: request.body.isEmpty ? nil : body())
        case ("deletecollection", nil):
            let filter: ObjectFilter
            do { filter = try makeFilter(request, route) } catch { return .error(Status.badRequest(error.message)) }
            for item in store.list(r, filter).items {
                _ = store.delete(r, namespace: item[path: "metadata", "namespace"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
                                 name: item[path: "metadata", "name"]?.stringValue ?? "", options: nil)
            }
            return APIResult(200, Status.success())
        default:
            return .error(Status.methodNotAllowed())
        }
    }

    private func decodeError(_ r: ResourceType) -> JSON {
        Status.badRequest("\(r.kind) in version \"\(r.version)\" cannot be handled as a \(r.kind): the body is not a JSON object")
    }

    private func makeFilter(_ request: HTTPRequest, _ route: Route) throws(SelectorError) -> ObjectFilter {
        var filter = ObjectFilter(namespace: route.namespace)
        if let text = request.query["labelSelector"], !text.isEmpty { filter.labels = try LabelSelector(text) }
        if let text = request.query["fieldSelector"], !text.isEmpty { filter.fields = try FieldSelector(text) }
        return filter
    }

    // MARK: Watch

    /// The partition mode that applies to `token` now, if any.
    private func partition(_ token: String?) -> FaultSet.PartitionMode? {
        guard let token else { return nil }
        return control.withLock { $0.faults.partitionedTokens.contains(token) ? $0.faults.partitionMode : nil }
    }

    /// Streams watch events until `timeoutSeconds`, the client leaves, the
    /// server stops, or the token gets partitioned (then the stream goes
    /// silent, or is reset, like every other connection of that token).
    private func serveWatch(_ request: HTTPRequest, route: Route, transport: Transport, reader: HTTPReader) -> Next {
        var filter: ObjectFilter
        do { filter = try makeFilter(request, route) } catch {
            return send(.error(Status.badRequest(error.message)), request, transport)
        }
        if let name = route.name {   // GET .../configmaps/NAME?watch=1 (old style)
            var fields = filter.fields ?? (try! FieldSelector(""))
            fields.requirements.append((["metadata", "name"], name, false))
            filter.fields = fields
        }
        guard let start = store.startWatch(route.resource, filter, fromRV: request.query["resourceVersion"]) else {
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
            var fds = [pollfd(fd: watcher.wakeRead, events: Int16(POLLIN), revents: 0),
                       pollfd(fd: transport.fd, events: Int16(POLLIN), revents: 0)]
            let n = poll(&fds, 2, Int32(wait))
            if n < 0 && errno != EINTR { return .close }
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

    // MARK: Control API

    private func handleControl(_ request: HTTPRequest) -> HTTPResponse {
        let body = request.body.isEmpty ? JSON.object(JSONObject()) : ((try? JSON.parse(bytes: request.body)) ?? .null)
        func bad(_ message: String) -> HTTPResponse { HTTPResponse(status: 400, json: ["error": .string(message)]) }
        switch (request.method, request.path) {
        case ("GET", "/fake/healthz"):
            return HTTPResponse(status: 200, text: "ok")
        case ("GET", "/fake/faults"):
            return HTTPResponse(status: 200, json: control.withLock { $0.faults.json })
        case ("POST", "/fake/faults"), ("PUT", "/fake/faults"):
            do {
                let faults = try FaultSet(body)
                control.withLock { c in
                    c.faults = faults
                    if let seed = body["seed"]?.intValue { c.random = RandomSource(seed: UInt64(bitPattern: Int64(seed))) }
                }
                log.info("faults set", ("faults", faults.json))
                return HTTPResponse(status: 200, json: faults.json)
            } catch { return bad(error.message) }
        case ("DELETE", "/fake/faults"):
            control.withLock { $0.faults = FaultSet() }
            log.info("faults cleared")
            return HTTPResponse(status: 200, json: FaultSet().json)
        case ("POST", "/fake/tokens"):
            guard let token = body["token"]?.stringValue, !token.isEmpty else { return bad("token is required: {\"token\":\"t\",\"user\":\"u\",\"allow\":[\"get configmaps\"]}") }
            var allow: [String]?
            if let a = body["allow"] {
                guard let list = a.arrayValue else { return bad("allow must be an array of \"verb resource\" strings") }
                allow = list.compactMap(\.stringValue)
            }
            let user = body["user"]?.stringValue ?? "system:serviceaccount:default:default"
            control.withLock { $0.tokens[token] = TokenGrant(user: user, allow: allow) }
            return HTTPResponse(status: 201, json: ["token": .string(token), "user": .string(user)])
        case ("GET", "/fake/stats"):
            return HTTPResponse(status: 200, json: control.withLock { $0.statsJSON })
        case ("POST", "/fake/stats/reset"):
            control.withLock { $0.total = 0; $0.byToken = [:] }
            return HTTPResponse(status: 200, json: control.withLock { $0.statsJSON })
        default:
            return HTTPResponse(status: 404, json: ["error": .string("unknown control endpoint \(request.method) \(request.path)")])
        }
    }
}

/// Raises the soft open-file limit to the hard limit (500 watches need
/// 1500 descriptors: socket plus wake-up pipe).
private func raiseFileLimit() {
    var limit = rlimit()
    guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
    }
}
