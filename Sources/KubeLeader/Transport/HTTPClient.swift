import Synchronization
import KLCore
import KLSystem

/// An HTTP/1.1 client for one server (`http://` or `https://`), with a pool
/// of idle kept-alive connections. Thread-safe: each request takes its own
/// connection from the pool (or opens one) and returns it when the response
/// was read in full and the server allows reuse.
///
/// Redirects are never followed: a 3xx is returned as it is.
public final class HTTPClient: @unchecked Sendable {
    /// The base URL: scheme, host and port, path prefix, `Host` header.
    let url: ParsedURL
    var endpoint: Endpoint { url.endpoint }
    /// The name TLS asks for and checks the certificate against.
    let serverName: String
    let connectTimeout: Duration
    let limits: HTTPLimits
    let resolver: HostResolver
    private let tls: TLSContext?
    private let idle = Mutex<[any HTTPChannel]>([])
    private let opened = Atomic<Int>(0)

    /// Most idle connections kept per client.
    static let maxIdle = 8

    /// - Parameters:
    ///   - baseURL: `https://host:port` or `http://host:port`, optionally with a
    ///     path prefix. IPv6 hosts go in brackets: `https://[fd00::1]:443`.
    ///   - tls: CA and server name for `https://` (ignored for `http://`).
    ///   - connectTimeout: bound on name look-up + TCP connect + TLS
    ///     handshake of one connection (also bounded by each call's own timeout).
    ///   - limits: caps on response heads, bodies and streamed lines.
    public convenience init(baseURL: String, tls: TLSOptions = TLSOptions(), connectTimeout: Duration = .seconds(5),
                            limits: HTTPLimits = HTTPLimits()) throws(TransportError) {
        try self.init(baseURL: baseURL, tls: tls, connectTimeout: connectTimeout, limits: limits, resolver: .shared)
    }

    init(baseURL: String, tls: TLSOptions, connectTimeout: Duration, limits: HTTPLimits, resolver: HostResolver) throws(TransportError) {
        self.limits = limits
        self.resolver = resolver
        let url = try ParsedURL(baseURL)
        self.url = url
        serverName = tls.serverName ?? url.host
        self.connectTimeout = connectTimeout
        self.tls = url.tls ? try TLSContext(tls) : nil
    }

    deinit { closeIdleConnections() }

    /// `host:port` of the server, for messages.
    public var serverText: String { endpoint.text }

    /// Number of connections opened so far (for tests and benchmarks).
    public var connectionsOpened: Int { opened.load(ordering: .relaxed) }

    /// Sends one request and reads the whole response. The whole call
    /// (connect, send, headers, body) is bounded by `timeout`.
    ///
    /// A reused idle connection that turns out closed before any byte of the
    /// response arrives is retried once on a new connection, for GET/HEAD or
    /// when nothing of the request had been sent.
    ///
    /// A call that times out closes its connection and every idle one: the
    /// caller's next attempt (a renew retried within its renew deadline) goes
    /// out on a fresh connection, never on one that may be just as dead.
    public func send(_ request: HTTPRequest, timeout: Duration) throws(TransportError) -> HTTPResponse {
        let deadline = MonotonicClock.now + timeout
        let (reader, head) = try exchange(request, deadline: deadline, timeout: timeout)
        let framing = try bodyFraming(method: request.method, head: head, endpoint: endpoint.text)
        let body = BodyReader(framing: framing, maxBytes: limits.maxBodyBytes)
        var bytes: [UInt8] = []
        do {
            while let piece = try body.next(reader, deadline: deadline) { bytes.append(contentsOf: piece) }
        } catch {
            reader.channel.close()
            if error.code == .timedOut { closeIdleConnections() }
            throw withTimeout(error, timeout)
        }
        finish(reader, head: head, framing: framing)
        return HTTPResponse(status: head.status, headers: head.headers, body: bytes)
    }

    /// Sends a request and returns once the response headers are in; the body
    /// is then read from the stream (watch). `timeout` bounds connect, send
    /// and headers only.
    public func openStream(_ request: HTTPRequest, timeout: Duration) throws(TransportError) -> HTTPStream {
        let deadline = MonotonicClock.now + timeout
        let (reader, head) = try exchange(request, deadline: deadline, timeout: timeout)
        let framing = try bodyFraming(method: request.method, head: head, endpoint: endpoint.text)
        return HTTPStream(client: self, reader: reader, head: head, framing: framing)
    }

    /// Closes every idle connection (e.g. after a failover, or before exit).
    public func closeIdleConnections() {
        let all = idle.withLock { list -> [any HTTPChannel] in
            let out = list
            list.removeAll()
            return out
        }
        for c in all { c.close() }
    }

    // MARK: internals

    private func exchange(_ request: HTTPRequest, deadline: MonotonicClock.Instant, timeout: Duration) throws(TransportError) -> (WireReader, ResponseHead) {
        let bytes = try encodeRequest(request, hostHeader: url.hostHeader, pathPrefix: url.path)
        let idempotent = request.method == "GET" || request.method == "HEAD"
        var allowRetry = true
        while true {
            let (channel, reused) = try checkout(deadline: deadline, timeout: timeout)
            let reader = WireReader(channel: channel)
            var written = 0
            do throws(TransportError) {
                let sent = bytes.withUnsafeBytes { (raw) -> Result<Void, TransportError> in
                    do throws(TransportError) {
                        try channel.write(raw, deadline: deadline, written: &written)
                        return .success(())
                    } catch {
                        return .failure(error)
                    }
                }
                try sent.get()
                if let head = try readResponseHead(reader, deadline: deadline, maxBytes: limits.maxHeadBytes) {
                    return (reader, head)
                }
                throw TransportError(.connectionClosed, "The server \(endpoint.text) closed the connection without answering the request.")
            } catch {
                channel.close()
                // A connection that went silent may not be the only one: the
                // idle ones were opened to the same place (one API server
                // behind a ClusterIP that died without a RST). The next
                // attempt goes out on a fresh connection, never on one of them.
                if error.code == .timedOut { closeIdleConnections() }
                let nothingBack = reader.received == 0 && error.code == .connectionClosed
                if reused && allowRetry && nothingBack && (idempotent || written == 0) {
                    allowRetry = false
                    continue
                }
                throw withTimeout(error, timeout)
            }
        }
    }

    /// An idle connection that still looks alive, or a new one.
    private func checkout(deadline: MonotonicClock.Instant, timeout: Duration) throws(TransportError) -> (any HTTPChannel, Bool) {
        while let c = idle.withLock({ $0.popLast() }) {
            if c.isIdleUsable() { return (c, true) }
            c.close()
        }
        let connectDeadline = min(deadline, MonotonicClock.now + connectTimeout)
        do {
            let fd = try tcpConnect(endpoint, deadline: connectDeadline, resolver: resolver)
            opened.add(1, ordering: .relaxed)
            if let tls {
                return (try TLSChannel(fd: fd, context: tls, serverName: serverName, endpoint: endpoint.text, deadline: connectDeadline), false)
            }
            return (PlainChannel(fd: fd, endpoint: endpoint.text), false)
        } catch {
            throw withTimeout(error, min(timeout, connectTimeout))
        }
    }

    /// Returns the connection to the pool when the body was read to its end
    /// and the server allows reuse; closes it otherwise.
    func finish(_ reader: WireReader, head: ResponseHead, framing: BodyFraming) {
        let channel = reader.channel
        guard head.keepAlive, framing != .untilClose, reader.buffered == 0, !reader.atEOF else {
            channel.close()
            return
        }
        let kept = idle.withLock { list -> Bool in
            if list.count >= HTTPClient.maxIdle { return false }
            list.append(channel)
            return true
        }
        if !kept { channel.close() }
    }

    /// Adds the configured timeout to a timeout message.
    private func withTimeout(_ error: TransportError, _ timeout: Duration) -> TransportError {
        guard error.code == .timedOut else { return error }
        var e = error
        let prefix = "Timed out "
        if e.message.hasPrefix(prefix) {
            e.message = "Timed out after \(DurationText.format(timeout)) " + e.message.dropFirst(prefix.count)
        }
        return e
    }
}

/// The parts of a base URL the client needs.
struct ParsedURL: Sendable {
    var tls: Bool
    var host: String
    var port: Int
    /// Path prefix without a trailing slash ("" for none).
    var path: String

    /// Host and port to connect to.
    var endpoint: Endpoint { Endpoint(host: host, port: port) }
    /// The `Host` header: the host (an IPv6 one in brackets), with the port
    /// unless it is the scheme's default.
    var hostHeader: String {
        port == (tls ? 443 : 80) ? (host.contains(":") ? "[\(host)]" : host) : endpoint.text
    }

    init(_ url: String) throws(TransportError) {
        func bad(_ why: String) -> TransportError {
            TransportError(.invalidURL, "The server URL \(quoteForMessage(url)) is invalid: \(why); use https://HOST:PORT or http://HOST:PORT.")
        }
        var rest: Substring
        if url.hasPrefix("https://") {
            tls = true
            rest = url.dropFirst(8)
        } else if url.hasPrefix("http://") {
            tls = false
            rest = url.dropFirst(7)
        } else {
            throw bad("it must start with https:// or http://")
        }
        let authority: Substring
        if let slash = rest.firstIndex(of: "/") {
            authority = rest[..<slash]
            var p = String(rest[slash...])
            while p.hasSuffix("/") { p.removeLast() }
            path = p
        } else {
            authority = rest
            path = ""
        }
        if authority.contains("@") { throw bad("user information is not supported") }
        if authority.contains("?") || authority.contains("#") { throw bad("query or fragment is not allowed") }
        var portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw bad("missing ] after the IPv6 address") }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw bad("unexpected text after the IPv6 address") }
                portText = after.dropFirst()
            }
            guard isIPAddress(host), host.contains(":") else { throw bad("\(host) is not an IPv6 address") }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                host = String(authority[..<colon])
                portText = authority[authority.index(after: colon)...]
            } else {
                host = String(authority)
            }
            if host.contains(":") { throw bad("IPv6 addresses must be in brackets") }
        }
        if host.isEmpty { throw bad("the host is empty") }
        if let portText {
            guard let p = Int(portText), p > 0, p < 65536 else { throw bad("the port \(quoteForMessage(String(portText))) is not a number from 1 to 65535") }
            port = p
        } else {
            port = tls ? 443 : 80
        }
    }
}
