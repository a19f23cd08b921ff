#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore
import KLSupport

/// The companions' `--metrics-addr HOST:PORT` server: a tiny HTTP server,
/// one request per connection, served one at a time on a thread of its own.
///
/// A client gets `requestTimeout` to send its request head (at most 8 KiB is
/// read: no unbounded buffer) and each send may block for `sendTimeout`, so
/// a slow or hostile client can delay a scrape but never grow memory or
/// block the tool's work. The answer closes the connection.
public final class MetricsHTTPServer: Sendable {
    /// What to answer.
    public struct Response: Sendable, Equatable {
        /// `200 OK`, `404 Not Found`, …
        public var status: String
        public var contentType: String
        public var body: String
        public init(status: String, contentType: String = "text/plain", body: String) {
            self.status = status
            self.contentType = contentType
            self.body = body
        }

        /// Prometheus text exposition format 0.0.4.
        public static func metrics(_ body: String) -> Response {
            Response(status: "200 OK", contentType: "text/plain; version=0.0.4; charset=utf-8", body: body)
        }
    }

    /// Why `HOST:PORT` cannot be served.
    public enum ListenError: Error, Sendable, Equatable {
        /// Not `HOST:PORT` with a port 0...65535.
        case notHostPort
        /// The host is not an IPv4 literal.
        case notIPv4(host: String)
        /// socket(2) failed with this errno.
        case socket(errno: Int32)
        /// bind(2) or listen(2) failed with this errno.
        case listen(errno: Int32)
    }

    /// The bound port (useful with port 0).
    public let port: Int
    let fd: Int32
    let version: String
    let requestTimeout: Duration
    let sendTimeoutSeconds: Int
    let answer: @Sendable (_ method: Substring, _ path: Substring) -> Response

    /// Parses `HOST:PORT`: `:9100` or `0.0.0.0:9100` for every interface,
    /// IPv4 literals only. Pure apart from inet_pton; binds nothing.
    public static func parse(address: String) -> Result<sockaddr_in, ListenError> {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            return .failure(.notHostPort)
        }
        var host = String(address[..<colon])
        if host.isEmpty { host = "0.0.0.0" }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else { return .failure(.notIPv4(host: host)) }
        return .success(addr)
    }

    /// Binds and listens on `address`; `start()` begins answering.
    /// - Parameters:
    ///   - version: the status line's protocol, `HTTP/1.0` or `HTTP/1.1`.
    ///   - answer: the response for a method and a path (query removed).
    public init(address: String, version: String = "HTTP/1.1", requestTimeout: Duration = .seconds(5),
                sendTimeoutSeconds: Int = 5,
                answer: @escaping @Sendable (_ method: Substring, _ path: Substring) -> Response) throws(ListenError) {
        var addr = try Self.parse(address: address).get()
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
        #endif
        guard fd >= 0 else { throw .socket(errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let code = errno
            close(fd)
            throw .listen(errno: code)
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.version = version
        self.requestTimeout = requestTimeout
        self.sendTimeoutSeconds = sendTimeoutSeconds
        self.answer = answer
    }

    /// Serves until the process exits, on a thread of its own. False when no
    /// thread can be started (then nothing is served; the tool's own work
    /// goes on).
    @discardableResult
    public func start() -> Bool {
        startDetachedThread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    blockingSleep(.milliseconds(100))   // e.g. EMFILE: do not spin
                    continue
                }
                var timeout = timeval(tv_sec: sendTimeoutSeconds, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                serve(client)
                close(client)
            }
        } == 0
    }

    func serve(_ client: Int32) {
        guard let head = readHead(client) else { return }
        let line = String(decoding: head.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard let method = parts.first else { return }
        let path = parts.count >= 2 ? parts[1].prefix { $0 != "?" } : ""
        let response = answer(method, path)
        let body = Array(response.body.utf8)
        let text = "\(version) \(response.status)\r\nContent-Type: \(response.contentType)\r\n"
            + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n"
        let out = Array(text.utf8) + body
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
    }

    /// The request head: up to the blank line, or what came before the
    /// deadline or the 8 KiB cap when it holds a whole request line. nil
    /// when the client closed or sent no request line in time.
    func readHead(_ client: Int32) -> [UInt8]? {
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        let deadline = MonotonicClock.now + requestTimeout
        while head.count < 8192, !Self.endsHead(head) {
            let ms = pollTimeoutMilliseconds(until: deadline)
            guard ms > 0 else { break }
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            let r = poll(&pfd, 1, ms)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { break }
            let n = buffer.withUnsafeMutableBytes { recv(client, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return nil }
            head += buffer[0..<n]
        }
        return head.contains(10) ? head : nil
    }

    /// True when `bytes` hold the blank line that ends a request head.
    static func endsHead(_ bytes: [UInt8]) -> Bool {
        guard bytes.count >= 2 else { return false }
        for i in 1..<bytes.count where bytes[i] == 10 {
            if bytes[i - 1] == 10 || (i >= 2 && bytes[i - 1] == 13 && bytes[i - 2] == 10) { return true }
        }
        return false
    }
}
