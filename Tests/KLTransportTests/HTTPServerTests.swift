import KLSystem
import KLCore
import Testing
import KLNetworkTestSupport
@testable import KLTransport

/// KLTransport's `HTTPServer` (kube-leader's status endpoint and the
/// companions' metrics) over a real socket; the status routes and slow
/// clients are in KLLeaderTests' StatusServerTests.
@Suite("HTTPServer over a real socket", .timeLimit(.minutes(1)))
struct HTTPServerTests {
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

    func server(timeout: Duration = .seconds(5)) throws -> HTTPServer {
        let server = try HTTPServer(address: StatusAddress("127.0.0.1:0")!, headTimeout: timeout) { path in
            path == "/metrics" ? .metrics("up 1\n") : .init(404, "no \(path)\n")
        }
        #expect(server.start())
        return server
    }
    func port(_ s: HTTPServer) -> Int { Int(s.boundAddress.port) }

    @Test func get_metrics_answersWithLength_andCloses() throws {
        let s = try server()
        let reply = try exchange(port(s), "GET /metrics?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(reply == "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: 5\r\nConnection: close\r\n\r\nup 1\n")
    }

    @Test func otherPathsAndMethods() throws {
        let s = try server()
        #expect(try exchange(port(s), "GET /nope HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(try exchange(port(s), "GET /nope HTTP/1.0\r\n\r\n").hasSuffix("\r\n\r\nno /nope\n"))
        let post = try exchange(port(s), "POST /metrics HTTP/1.0\r\n\r\n")
        #expect(post.hasPrefix("HTTP/1.1 405 Method Not Allowed\r\n") && post.contains("\r\nAllow: GET, HEAD\r\n"))
        #expect(try exchange(port(s), "HEAD /metrics HTTP/1.1\r\n\r\n").hasSuffix("Content-Length: 5\r\nConnection: close\r\n\r\n"))
    }

    @Test func aClientThatSendsNothing_isDropped_andTheNextIsServed() throws {
        let s = try server(timeout: .milliseconds(300))
        #expect(try exchange(port(s), "") == "")
        #expect(try exchange(port(s), "GET /metrics HTTP/1.1\r\n\r\n").hasSuffix("up 1\n"))
    }

    /// The head ends only with CRLF CRLF (RFC 9112): a request line alone,
    /// or bare line feeds, is an unfinished head, cut off at the deadline
    /// without an answer.
    @Test func aHeadWithoutTheBlankLine_isCutOffAtTheDeadline_unanswered() throws {
        let s = try server(timeout: .milliseconds(300))
        #expect(try exchange(port(s), "GET /metrics HTTP/1.1\r\n") == "")
        #expect(try exchange(port(s), "GET /metrics HTTP/1.1\n\n") == "")
        #expect(HTTPServer.headEnd(Array("GET / HTTP/1.1\r\nA: b\r\n\r\nrest".utf8)) == 24)
        #expect(HTTPServer.headEnd(Array("GET / HTTP/1.1\n\n".utf8)) == nil)
    }

    @Test func badAddresses_areNamed() {
        #expect(HTTPServer.address("9100") == .failure(.notHostPort))
        #expect(HTTPServer.address(":70000") == .failure(.notHostPort))
        #expect(HTTPServer.address("localhost:9100") == .failure(.notNumericHost("localhost")))
        #expect(HTTPServer.address(":9100") == .success(StatusAddress("0.0.0.0:9100")!))
        #expect(HTTPServer.address("[::1]:9100").map(\.host) == .success("::1"))
    }

    @Test func aPortInUse_isAListenError() throws {
        let first = try server()
        #expect(throws: HTTPServer.ListenError.listen(errno: EADDRINUSE)) {
            _ = try HTTPServer(address: first.boundAddress) { _ in .metrics("") }
        }
    }
}
