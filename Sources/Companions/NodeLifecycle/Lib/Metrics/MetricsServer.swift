#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore
import KLSupport

/// A tiny HTTP/1.0 server for `--metrics-addr HOST:PORT`: `GET /metrics`
/// (Prometheus text) and `GET /healthz`. One request per connection, served
/// one at a time on its own thread; a client gets 5 s to send its request
/// line and at most 8 KiB is read (no unbounded buffer).
public final class MetricsServer: Sendable {
    public let fd: Int32
    /// The port bound (useful with port 0).
    public let port: Int
    let render: @Sendable () -> String

    /// Parses `HOST:PORT` (`:9100` or `0.0.0.0:9100` for every interface;
    /// IPv4 literals only) and listens.
    /// Checks `HOST:PORT` without binding (configuration validation).
    public static func parse(address: String) throws(NodeLifecycleError) -> sockaddr_in {
        guard let colon = address.lastIndex(of: ":"), let port = UInt16(address[address.index(after: colon)...]) else {
            throw NodeLifecycleError(.usage, "--metrics-addr \"\(address)\" is not HOST:PORT; use e.g. :9100 or 127.0.0.1:9100.")
        }
        var host = String(address[..<colon])
        if host.isEmpty { host = "0.0.0.0" }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            throw NodeLifecycleError(.usage, "--metrics-addr host \"\(host)\" is not an IPv4 address; use e.g. 0.0.0.0 or 127.0.0.1.")
        }
        return addr
    }

    public init(address: String, render: @escaping @Sendable () -> String) throws(NodeLifecycleError) {
        var addr = try Self.parse(address: address)
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)
        #endif
        guard fd >= 0 else { throw NodeLifecycleError(.file, "Cannot open a socket for --metrics-addr: \(errnoMessage(errno)).") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            let why = errnoMessage(errno)
            close(fd)
            throw NodeLifecycleError(.usage, "Cannot listen on --metrics-addr \(address): \(why). Pick a free port.")
        }
        var actual = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        self.fd = fd
        self.port = Int(UInt16(bigEndian: actual.sin_port))
        self.render = render
    }

    /// Serves forever on a thread of its own.
    public func start() {
        runOnNewThread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    blockingSleep(.milliseconds(100))   // e.g. EMFILE: do not spin
                    continue
                }
                // A client that stops reading must not hold the server: 5 s per send.
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                serve(client)
                close(client)
            }
        }
    }

    func serve(_ client: Int32) {
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1024)
        let deadline = MonotonicClock.now + .seconds(5)
        while request.count < 8192, !request.contains(10) {
            let ms = pollTimeoutMilliseconds(until: deadline)
            guard ms > 0 else { return }
            var pfd = pollfd(fd: client, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, ms) > 0 else { return }
            let n = buffer.withUnsafeMutableBytes { read(client, $0.baseAddress, $0.count) }
            if n <= 0 { return }
            request += buffer[0..<n]
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let path = parts.count >= 2 ? String(parts[1].prefix { $0 != "?" }) : ""
        let (status, type, body): (String, String, String)
        if parts.first != "GET" {
            (status, type, body) = ("405 Method Not Allowed", "text/plain", "only GET\n")
        } else if path == "/metrics" {
            (status, type, body) = ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render())
        } else if path == "/healthz" {
            (status, type, body) = ("200 OK", "text/plain", "ok\n")
        } else {
            (status, type, body) = ("404 Not Found", "text/plain", "try /metrics\n")
        }
        let bytes = Array(body.utf8)
        let head = "HTTP/1.0 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(bytes.count)\r\nConnection: close\r\n\r\n"
        var out = Array(head.utf8) + bytes
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeMutableBytes { send(client, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }
}
