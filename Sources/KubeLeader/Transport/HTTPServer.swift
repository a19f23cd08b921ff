import CShims
import KLCore
import KLSystem

/// The one small HTTP server of every binary: kube-leader's `--status-addr`
/// and the companions' `--metrics-addr`. GET and HEAD only, one request per
/// connection, plain HTTP/1.1, on a thread of its own.
///
/// It cannot hold up the work of the process: one thread serves every
/// connection with non-blocking sockets and poll(2), so a slow or hostile
/// client costs a slot, never a wait. The request head must end with a blank
/// line (CRLF CRLF, RFC 9112) within `headTimeout` and fit in `maxHead`
/// bytes (else 431), the answer must be taken within `headTimeout` too, and
/// at most `maxConnections` are open (more wait in the kernel's backlog).
/// A head cut off by the deadline gets no answer. Every response closes its
/// connection.
public final class HTTPServer: Sendable {
    public static let maxHead = 8192
    public static let maxConnections = 32

    /// What to answer to a GET (a HEAD gets the same without the body).
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var contentType: String
        public var body: String
        /// Extra header lines, each ending in CRLF.
        public var extraHeaders: String

        public init(_ status: Int, contentType: String = "text/plain; charset=utf-8", _ body: String, extraHeaders: String = "") {
            self.status = status
            self.contentType = contentType
            self.body = body
            self.extraHeaders = extraHeaders
        }

        /// 200 with Prometheus text (`PrometheusText`).
        public static func metrics(_ text: String) -> Response {
            Response(200, contentType: PrometheusText.contentType, text)
        }
    }

    /// Why an address cannot be served.
    public enum ListenError: Error, Sendable, Equatable {
        /// Not `HOST:PORT` with a port 0...65535.
        case notHostPort
        /// The host is not a numeric IP address.
        case notNumericHost(String)
        /// socket(2) failed with this errno.
        case socket(errno: Int32)
        /// bind(2) or listen(2) failed with this errno.
        case listen(errno: Int32)
    }

    public let headTimeout: Duration
    /// The address actually bound (with the port the kernel chose for port 0).
    public let boundAddress: StatusAddress
    let listenFD: Int32
    let route: @Sendable (_ path: Substring) -> Response

    struct Connection {
        var fd: Int32
        var input: [UInt8] = []
        var output: [UInt8]?
        var sent = 0
        var deadline: MonotonicInstant
    }

    /// Parses `HOST:PORT` (`StatusAddress`: an IPv4 literal, a bracketed
    /// IPv6 literal, or nothing for every interface). Binds nothing.
    public static func address(_ text: String) -> Result<StatusAddress, ListenError> {
        guard let colon = text.lastIndex(of: ":"), UInt16(text[text.index(after: colon)...]) != nil else {
            return .failure(.notHostPort)
        }
        guard let address = StatusAddress(text) else { return .failure(.notNumericHost(String(text[..<colon]))) }
        return .success(address)
    }

    /// Binds and listens; `start()` then serves on a new thread.
    /// - Parameter route: the answer to a GET of a path (the query removed).
    public init(address: StatusAddress, headTimeout: Duration = .seconds(5),
                route: @escaping @Sendable (_ path: Substring) -> Response) throws(ListenError) {
        self.headTimeout = headTimeout
        self.route = route
        var hints = addrinfo()
        hints.ai_socktype = SocketType.stream
        hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE
        var list: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(address.host, String(address.port), &hints, &list) == 0, let ai = list else {
            throw .notNumericHost(address.host)
        }
        defer { freeaddrinfo(list) }
        let fd = socket(ai.pointee.ai_family, SocketType.stream | SocketType.nonBlockingCloexec, 0)
        guard fd >= 0 else { throw .socket(errno: errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        if bind(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen) != 0 || listen(fd, 64) != 0 {
            let e = errno
            close(fd)
            throw .listen(errno: e)
        }
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        var bound = address
        withUnsafeMutablePointer(to: &storage) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { _ = getsockname(fd, $0, &len) }
            // sin_port and sin6_port sit at the same offset, in network order.
            p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { bound.port = UInt16(bigEndian: $0.pointee.sin_port) }
        }
        listenFD = fd
        boundAddress = bound
    }

    /// Serves on a new thread for the rest of the process's life. False when
    /// no thread can be started (then nothing is served; the process's own
    /// work goes on).
    @discardableResult
    public func start() -> Bool {
        startDetachedThread { [self] in serve() } == 0
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
            let now = MonotonicClock.now
            let listening = connections.count < Self.maxConnections && now >= acceptPausedUntil
            if listening { fds.append(pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)) }
            let next = (connections.map(\.deadline) + (acceptPausedUntil > now ? [acceptPausedUntil] : [])).min()
            let (n, _) = pollUntil(&fds, deadline: min(next ?? now + .seconds(1), now + .seconds(1)))
            if n < 0 { blockingSleep(.milliseconds(100)); continue }
            let after = MonotonicClock.now
            var keep: [Connection] = []
            for (i, var c) in connections.enumerated() {
                // The deadline wins over progress: a client that trickles
                // bytes (slowloris) is cut off all the same.
                if after < c.deadline, fds[i].revents == 0 || step(&c) { keep.append(c); continue }
                close(c.fd)
            }
            connections = keep
            if listening, let last = fds.last, last.revents != 0 {
                while connections.count < Self.maxConnections {
                    let (fd, e) = retryingEINTR { cshims_accept_cloexec_nonblock(listenFD) }
                    if fd < 0 {
                        if e != EAGAIN && e != EWOULDBLOCK && e != ECONNABORTED {
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
            let (n, e) = retryingEINTR {
                output.withUnsafeBytes { send(c.fd, $0.baseAddress! + c.sent, output.count - c.sent, Int32(MSG_NOSIGNAL)) }
            }
            if n < 0 { return e == EAGAIN || e == EWOULDBLOCK }
            c.sent += n
            return c.sent < output.count
        }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let (n, e) = retryingEINTR { recv(c.fd, &buffer, buffer.count, 0) }
        if n < 0 { return e == EAGAIN || e == EWOULDBLOCK }
        if n == 0 { return false }
        c.input += buffer[0..<n]
        if let end = Self.headEnd(c.input), end <= Self.maxHead {
            c.output = Self.response(head: c.input[0..<end], route: route)
        } else if c.input.count > Self.maxHead {
            c.output = Self.format(Response(431, "request head larger than \(Self.maxHead) bytes\n"), head: false)
        } else {
            return true
        }
        c.deadline = MonotonicClock.now + headTimeout
        return true
    }

    /// Index just past the blank line (CRLF CRLF) that ends the head, if it is in.
    static func headEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    /// The whole response to a request head. Pure, so it is tested directly.
    static func response(head: ArraySlice<UInt8>, route: (Substring) -> Response) -> [UInt8] {
        let firstLine = head.prefix { $0 != 13 }.split(separator: 32)
        guard firstLine.count == 3, firstLine[2].starts(with: Array("HTTP/1.".utf8)) else {
            return format(Response(400, "malformed request line\n"), head: false)
        }
        let method = String(decoding: firstLine[0], as: UTF8.self)
        let target = String(decoding: firstLine[1], as: UTF8.self)
        guard method == "GET" || method == "HEAD" else {
            return format(Response(405, "only GET and HEAD\n", extraHeaders: "Allow: GET, HEAD\r\n"), head: false)
        }
        return format(route(target.prefix { $0 != "?" }), head: method == "HEAD")
    }

    static func format(_ r: Response, head: Bool) -> [UInt8] {
        let bytes = Array(r.body.utf8)
        let text = "HTTP/1.1 \(r.status) \(reasonPhrase(r.status))\r\nContent-Type: \(r.contentType)\r\n"
            + "Content-Length: \(bytes.count)\r\n\(r.extraHeaders)Connection: close\r\n\r\n"
        return Array(text.utf8) + (head ? [] : bytes)
    }

    static func reasonPhrase(_ code: Int) -> String {
        switch code {
        case 200: "OK"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 431: "Request Header Fields Too Large"
        case 503: "Service Unavailable"
        default: "Internal Server Error"
        }
    }
}
