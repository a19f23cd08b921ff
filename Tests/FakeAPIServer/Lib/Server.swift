import CFakeCerts
import COpenSSL
import KLCore
import KLSystem
import Synchronization

/// The HTTP(S) listener and per-connection request loop.
final class Server: Sendable {
    let store: Store
    let control = Mutex(ControlState())
    let adminTokens: Set<String>
    let port: Int
    let log: Logger
    let logRequests: Bool
    /// Kinds this server does not serve (404 as on a cluster without their API).
    let hidden: Set<ResourceType>
    private let listenFD: Int32
    nonisolated(unsafe) private let tlsContext: OpaquePointer?
    private let connections = Mutex(Set<Int32>())
    let stopped = Atomic(false)
    private let acceptExited = Atomic(false)

    init(host: String, port: Int, tls: (cert: String, key: String)?, store: Store, adminTokens: Set<String>,
         log: Logger, logRequests: Bool, hidden: Set<ResourceType> = []) throws(FakeServerError) {
        signal(SIGPIPE, SIG_IGN)
        raiseFileLimit()
        self.store = store
        self.adminTokens = adminTokens
        self.log = log
        self.logRequests = logRequests
        self.hidden = hidden
        tlsContext = try tls.map { pair throws(FakeServerError) in try makeServerTLSContext(certFile: pair.cert, keyFile: pair.key) }
        let fd = socket(AF_INET, SocketType.stream | SocketType.cloexec, 0)
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
            throw FakeServerError(.listen, "binding \(host):\(port) failed (\(errnoMessage(e))); choose another --port or stop what uses it")
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

    func acceptLoop() {
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

    func serveConnection(_ fd: Int32) {
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

    func handle(_ request: HTTPRequest, transport: Transport, reader: HTTPReader) -> Next {
        if request.path.hasPrefix("/fake/") {
            let response = handleControl(request)
            return transport.write(response.encoded(keepAlive: request.keepAlive)) ? .keepOpen : .close
        }
        var route = Route(path: request.path)
        if let r = route?.resource, hidden.contains(r) { route = nil }
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

    func send(_ result: APIResult, _ request: HTTPRequest, _ transport: Transport) -> Next {
        logRequest(request, status: result.status, note: nil)
        let response = HTTPResponse(status: result.status, json: result.body, headers: result.headers)
        return transport.write(response.encoded(keepAlive: request.keepAlive)) ? .keepOpen : .close
    }

    func logRequest(_ request: HTTPRequest, status: Int, note: String?) {
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

    func authorize(_ request: HTTPRequest, route: Route?, verb: String) -> APIResult? {
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
