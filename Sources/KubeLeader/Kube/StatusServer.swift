#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShims
import KLCore
import KLSupport

/// `--status-addr`: a tiny plain-HTTP server for `/healthz`, `/leader` and
/// `/metrics`, on its own thread.
///
/// It cannot hold up the election or the supervisor: it shares nothing with
/// them but `StatusBoard`, whose mutex is held only for a copy. One thread
/// serves every connection with non-blocking sockets and poll(2), so a slow
/// or hostile client costs a slot, never a wait: the request head must arrive
/// within `headTimeout` and fit in `maxHead` bytes, the answer must be taken
/// within `headTimeout` too, and at most `maxConnections` are open (more wait
/// in the kernel's backlog). Every response closes its connection.
public final class StatusServer: @unchecked Sendable {
    public static let maxHead = 8192
    public static let maxConnections = 32
    public let headTimeout: Duration
    /// The address actually bound (with the port the kernel chose for port 0).
    public let boundAddress: String
    let listenFD: Int32
    let board: StatusBoard
    let renewDeadline: Duration

    struct Connection {
        var fd: Int32
        var input: [UInt8] = []
        var output: [UInt8]?
        var sent = 0
        var deadline: MonotonicInstant
    }

    /// Binds and listens; `start()` then serves on a new thread.
    /// - Throws: a message naming the address and the reason (in use, not local).
    public init(address: StatusAddress, board: StatusBoard, renewDeadline: Duration,
                headTimeout: Duration = .seconds(5)) throws(UsageError) {
        self.board = board
        self.renewDeadline = renewDeadline
        self.headTimeout = headTimeout
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &list) == 0, let ai = list else {
            throw UsageError("status address \(address) is not a numeric IP address and port")
        }
        defer { freeaddrinfo(list) }
        let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw UsageError("cannot open a socket for the status address \(address): \(errnoMessage(errno))") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) != 0 || listen(fd, 64) != 0 {
            let e = errno
            Glibc.close(fd)
            throw UsageError("cannot listen on the status address \(address): \(errnoMessage(e)); choose another --status-addr")
        }
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var port = address.port
        withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) }
            // sin_port and sin6_port sit at the same offset, in network order.
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { port = UInt16(bigEndian: $0.pointee.sin_port) }
        }
        listenFD = fd
        boundAddress = StatusAddress("\(address.host.contains(":") ? "[\(address.host)]" : address.host):\(port)")?.description ?? "\(address.host):\(port)"
    }

    /// Serves on a new thread for the rest of the process's life.
    public func start() {
        _ = startDetachedThread { [self] in serve() }
    }

    func serve() {
        var connections: [Connection] = []
        /// After a failed accept (EMFILE, ENOBUFS) the listening socket stays
        /// readable: leave it alone for a moment instead of spinning.
        var acceptPausedUntil = MonotonicClock.now
        while true {
            var fds: [pollfd] = connections.map {
                pollfd(fd: $0.fd, events: Int16($0.output == nil ? POLLIN : POLLOUT), revents: 0)
            }
            let listening = connections.count < Self.maxConnections && MonotonicClock.now >= acceptPausedUntil
            if listening { fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)) }
            let now = MonotonicClock.now
            let next = (connections.map(\.deadline) + (acceptPausedUntil > now ? [acceptPausedUntil] : [])).min()
            let wait = next.map { max(0, min(1000, Int(($0 - now).wholeMilliseconds) + 1)) } ?? 1000
            let n = poll(&fds, nfds_t(fds.count), Int32(wait))
            if n < 0 && errno != EINTR { return }
            let after = MonotonicClock.now
            var keep: [Connection] = []
            for (i, var c) in connections.enumerated() {
                // The deadline wins over progress: a client that trickles
                // bytes (slowloris) is cut off all the same.
                if after < c.deadline, fds[i].revents == 0 || step(&c) { keep.append(c); continue }
                Glibc.close(c.fd)
            }
            connections = keep
            if listening, let last = fds.last, last.revents != 0 {
                while connections.count < Self.maxConnections {
                    let fd = cshims_accept_cloexec_nonblock(listenFD)
                    if fd < 0 {
                        let e = errno
                        if e != EAGAIN && e != EWOULDBLOCK && e != EINTR && e != ECONNABORTED {
                            acceptPausedUntil = MonotonicClock.now + .milliseconds(100)
                        }
                        break
                    }
                    connections.append(Connection(fd: fd, deadline: MonotonicClock.now + headTimeout))
                }
            }
        }
    }

    /// Reads or writes what the socket allows. False: done, close it.
    func step(_ c: inout Connection) -> Bool {
        if let output = c.output {
            let n = output.withUnsafeBytes { send(c.fd, $0.baseAddress! + c.sent, output.count - c.sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 { return errno == EAGAIN || errno == EINTR }
            c.sent += n
            return c.sent < output.count
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(c.fd, &buffer, buffer.count, 0)
        if n < 0 { return errno == EAGAIN || errno == EINTR }
        if n == 0 { return false }
        c.input += buffer[0..<n]
        if let end = Self.headEnd(c.input), end <= Self.maxHead {
            c.output = Self.response(head: Array(c.input[0..<end]), status: board.snapshot, now: MonotonicClock.now,
                                     renewDeadline: renewDeadline)
        } else if c.input.count > Self.maxHead {
            c.output = Self.format(431, "text/plain; charset=utf-8", "request head larger than \(Self.maxHead) bytes\n", head: false)
        } else {
            return true
        }
        c.deadline = MonotonicClock.now + headTimeout
        return true
    }

    /// Index just past the blank line that ends the head, if it is in.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    /// The whole response to a request head. Pure, so it is tested directly.
    static func response(head: [UInt8], status: LeaderStatus, now: MonotonicInstant, renewDeadline: Duration) -> [UInt8] {
        let firstLine = head.prefix { $0 != 13 }.split(separator: 32)
        guard firstLine.count == 3, firstLine[2].starts(with: Array("HTTP/1.".utf8)) else {
            return format(400, "text/plain; charset=utf-8", "malformed request line\n", head: false)
        }
        let method = String(decoding: firstLine[0], as: UTF8.self)
        var path = String(decoding: firstLine[1], as: UTF8.self)
        if let q = path.firstIndex(of: "?") { path = String(path[..<q]) }
        guard method == "GET" || method == "HEAD" else {
            return format(405, "text/plain; charset=utf-8", "only GET and HEAD\n", head: false, extra: "Allow: GET, HEAD\r\n")
        }
        let isHead = method == "HEAD"
        switch path {
        case "/healthz":
            if status.isHealthy(now: now, renewDeadline: renewDeadline) {
                return format(200, "text/plain; charset=utf-8", "ok\n", head: isHead)
            }
            return format(500, "text/plain; charset=utf-8",
                          "leading, but no successful renew of \(status.namespace)/\(status.lockName) within the renew deadline\n", head: isHead)
        case "/leader":
            return format(200, "application/json", status.leaderJSON.serialized() + "\n", head: isHead)
        case "/metrics":
            return format(200, "text/plain; version=0.0.4; charset=utf-8", status.metricsText, head: isHead)
        default:
            return format(404, "text/plain; charset=utf-8", "not found: use /healthz, /leader or /metrics\n", head: isHead)
        }
    }

    static func format(_ code: Int, _ type: String, _ body: String, head: Bool, extra: String = "") -> [UInt8] {
        let reason: String
        switch code {
        case 200: reason = "OK"
        case 400: reason = "Bad Request"
        case 404: reason = "Not Found"
        case 405: reason = "Method Not Allowed"
        case 431: reason = "Request Header Fields Too Large"
        default: reason = "Internal Server Error"
        }
        let bytes = Array(body.utf8)
        let text = "HTTP/1.1 \(code) \(reason)\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\n\(extra)Connection: close\r\n\r\n"
        return Array(text.utf8) + (head ? [] : bytes)
    }
}

extension Duration {
    /// Whole milliseconds, rounded toward zero.
    var wholeMilliseconds: Int64 {
        let (s, atto) = components
        return s &* 1000 &+ atto / 1_000_000_000_000_000
    }
}
