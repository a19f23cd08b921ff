#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore
import CompanionSupport
import Testing

@Suite("MetricsHTTPServer over a real socket", .timeLimit(.minutes(1)))
struct MetricsHTTPServerTests {
    /// Sends `request` to 127.0.0.1:`port` and reads until the server closes.
    func exchange(_ port: Int, _ request: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        try #require(connected == 0)
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let bytes = Array(request.utf8)
        if !bytes.isEmpty { _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func server(version: String = "HTTP/1.1", timeout: Duration = .seconds(5)) throws -> MetricsHTTPServer {
        let server = try MetricsHTTPServer(address: "127.0.0.1:0", version: version, requestTimeout: timeout) { method, path in
            guard method == "GET" else { return .init(status: "405 Method Not Allowed", body: "only GET\n") }
            return path == "/metrics" ? .metrics("up 1\n") : .init(status: "404 Not Found", body: "no \(path)\n")
        }
        #expect(server.start())
        return server
    }

    @Test func get_metrics_answersWithLength_andCloses() throws {
        let s = try server()
        let reply = try exchange(s.port, "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(reply == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 5\r\nConnection: close\r\n\r\nup 1\n")
    }

    @Test func otherPathsAndMethods_goToTheAnswer() throws {
        let s = try server(version: "HTTP/1.0")
        #expect(try exchange(s.port, "GET /nope HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 404 Not Found\r\n"))
        #expect(try exchange(s.port, "GET /nope HTTP/1.0\r\n\r\n").hasSuffix("\r\n\r\nno /nope\n"))
        #expect(try exchange(s.port, "POST /metrics HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 405 Method Not Allowed\r\n"))
    }

    @Test func aClientThatSendsNothing_isDropped_andTheNextIsServed() throws {
        let s = try server(timeout: .milliseconds(300))
        #expect(try exchange(s.port, "") == "")
        #expect(try exchange(s.port, "GET /metrics HTTP/1.1\r\n\r\n").hasSuffix("up 1\n"))
    }

    @Test func aRequestLineWithoutTheBlankLine_isAnsweredAtTheDeadline() throws {
        let s = try server(timeout: .milliseconds(300))
        #expect(try exchange(s.port, "GET /metrics HTTP/1.1\r\n").hasSuffix("up 1\n"))
    }

    @Test func badAddresses_areNamed() {
        #expect(MetricsHTTPServer.parse(address: "9100").map { _ in 0 } == .failure(.notHostPort))
        #expect(MetricsHTTPServer.parse(address: ":70000").map { _ in 0 } == .failure(.notHostPort))
        #expect(MetricsHTTPServer.parse(address: "localhost:9100").map { _ in 0 } == .failure(.notIPv4(host: "localhost")))
        #expect(MetricsHTTPServer.parse(address: ":9100").map { Int(UInt16(bigEndian: $0.sin_port)) } == .success(9100))
    }

    @Test func aPortInUse_isAListenError() throws {
        let first = try server()
        #expect(throws: MetricsHTTPServer.ListenError.listen(errno: EADDRINUSE)) {
            _ = try MetricsHTTPServer(address: "127.0.0.1:\(first.port)") { _, _ in .metrics("") }
        }
    }
}
