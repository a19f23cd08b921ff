#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore
import KLSupport

/// `--metrics-addr HOST:PORT`: a tiny HTTP/1.1 server answering
/// `GET /metrics` with `PagerMetrics.exposition()` (404 elsewhere).
///
/// One thread serves one connection at a time; each connection gets 2 s to
/// send its request head (at most 8 KiB) and is closed after the answer, so
/// a slow or hostile client can delay a scrape but never grow memory or
/// block the scheduler.
public final class MetricsServer: Sendable {
    public let port: Int
    let fd: Int32
    let metrics: PagerMetrics

    /// Binds and listens; `serve()` starts answering.
    ///
    /// - Parameter address: `:9102`, `0.0.0.0:9102` or `127.0.0.1:0` (IPv4).
    public init(address: String, metrics: PagerMetrics) throws(PagerError) {
        guard let colon = address.lastIndex(of: ":"), let port = Int(address[address.index(after: colon)...]),
              (0...65535).contains(port) else {
            throw PagerError(.usage, "--metrics-addr '\(address)' must be HOST:PORT or :PORT, e.g. :9102")
        }
        var host = String(address[..<colon])
        if host.isEmpty { host = "0.0.0.0" }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            throw PagerError(.usage, "--metrics-addr '\(address)': '\(host)' is not an IPv4 address; use e.g. 0.0.0.0:9102")
        }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw PagerError(.usage, "--metrics-addr '\(address)': cannot create a socket (errno \(errno))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let e = errno
            close(fd)
            throw PagerError(.usage, "--metrics-addr '\(address)': cannot listen (\(errnoMessage(e))); choose another port")
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.fd = fd
        self.metrics = metrics
    }

    /// Starts the serving thread (runs until the process exits).
    public func serve() {
        startDetachedThread { [self] in acceptLoop() }
    }

    func acceptLoop() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR || errno == ECONNABORTED { continue }
                if errno == EMFILE || errno == ENFILE { blockingSleep(.milliseconds(100)); continue }
                return
            }
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            handle(c)
            close(c)
        }
    }

    func handle(_ c: Int32) {
        var head: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        let deadline = MonotonicClock.now + .seconds(2)
        while head.count < 8192 {
            let ms = pollTimeoutMilliseconds(until: deadline)
            guard ms > 0 else { return }
            var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
            let r = poll(&p, 1, ms)
            if r < 0 && errno == EINTR { continue }
            guard r > 0 else { return }
            let n = buffer.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            head += buffer[0..<n]
            if head.count >= 4, head.withUnsafeBufferPointer({ containsBlankLine($0) }) { break }
        }
        let firstLine = String(decoding: head.prefix(while: { $0 != 13 && $0 != 10 }), as: UTF8.self)
        let parts = firstLine.split(separator: " ")
        let response: String
        if parts.count >= 2, parts[0] == "GET", parts[1] == "/metrics" || parts[1].hasPrefix("/metrics?") {
            let body = metrics.exposition()
            response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        } else {
            let body = "pager-tester serves only GET /metrics\n"
            response = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: \(body.utf8.count)\r\nConnection: close\r\n\r\n" + body
        }
        var bytes = Array(response.utf8)
        var sent = 0
        while sent < bytes.count {
            let n = bytes.withUnsafeMutableBytes { send(c, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            sent += n
        }
    }

    func containsBlankLine(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        guard b.count >= 4 else { return false }
        for i in 0...(b.count - 4) where b[i] == 13 && b[i + 1] == 10 && b[i + 2] == 13 && b[i + 3] == 10 { return true }
        return false
    }
}
