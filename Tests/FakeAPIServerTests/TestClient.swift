import COpenSSL
import FakeAPIServerKit
import KLSystem
import KLCore
import KLTestSupport

/// A deliberately small HTTP/1.1 client over TLS (or plain TCP) for testing
/// the fake byte by byte, independent of the project's own client.
struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

struct TestResponse {
    var status: Int
    var headers: [String: String]
    var body: String
    var json: JSON { (try? JSON.parse(body)) ?? .null }
}

final class TestConnection {
    let fd: Int32
    private var ssl: OpaquePointer?
    private var ctx: OpaquePointer?
    private var buffer: [UInt8] = []

    /// Connects to `url` ("https://127.0.0.1:PORT"); verifies the server
    /// against `caFile` for https. `timeoutSeconds` bounds every read.
    init(url: String, caFile: String?, timeoutSeconds: Int = 10) throws {
        let isTLS = url.hasPrefix("https://")
        let hostPort = url.split(separator: "/")[1]
        let parts = hostPort.split(separator: ":")
        let port = UInt16(parts[1])!
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var tv = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, String(parts[0]), &addr.sin_addr)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0 else { closeDescriptor(fd); throw TestFailure("connect to \(url) failed: errno \(errno)") }
        guard isTLS else { return }
        ctx = SSL_CTX_new(TLS_client_method())
        if let caFile { SSL_CTX_load_verify_locations(ctx, caFile, nil) }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        ssl = SSL_new(ctx)
        SSL_set_fd(ssl, fd)
        SSL_set1_host(ssl, "127.0.0.1")
        guard SSL_connect(ssl) == 1 else {
            let result = SSL_get_verify_result(ssl)
            close()
            throw TestFailure("TLS handshake failed (verify result \(result))")
        }
    }

    deinit { close() }

    func close() {
        if let ssl { SSL_free(ssl); self.ssl = nil }
        if let ctx { SSL_CTX_free(ctx); self.ctx = nil }
        if fd >= 0 { closeDescriptor(fd) }
    }

    func write(_ text: String) throws {
        var bytes = Array(text.utf8)
        let n: Int
        if let ssl { n = Int(SSL_write(ssl, &bytes, Int32(bytes.count))) } else { n = Glibc.send(fd, &bytes, bytes.count, Int32(MSG_NOSIGNAL)) }
        guard n == bytes.count else { throw TestFailure("write failed") }
    }

    func send(_ method: String, _ path: String, token: String?, body: String? = nil,
              contentType: String = "application/json", extraHeaders: [String] = []) throws {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: application/json\r\n"
        if let token { head += "Authorization: Bearer \(token)\r\n" }
        for h in extraHeaders { head += h + "\r\n" }
        if let body { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.utf8.count)\r\n" }
        try write(head + "\r\n" + (body ?? ""))
    }

    /// Reads more bytes; false on EOF, reset or timeout.
    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16384)
        let n: Int
        if let ssl { n = Int(SSL_read(ssl, &chunk, Int32(chunk.count))) } else { n = recv(fd, &chunk, chunk.count, 0) }
        if n <= 0 { return false }
        buffer += chunk[0..<n]
        return true
    }

    func readLine() throws -> String {
        while true {
            if let i = buffer.indices.dropLast().first(where: { buffer[$0] == 13 && buffer[$0 + 1] == 10 }) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeFirst(i + 2)
                return line
            }
            guard fill() else { throw TestFailure("connection closed or timed out while reading a line") }
        }
    }

    func readBytes(_ n: Int) throws -> [UInt8] {
        while buffer.count < n { guard fill() else { throw TestFailure("connection closed while reading \(n) bytes") } }
        let out = Array(buffer[..<n])
        buffer.removeFirst(n)
        return out
    }

    func readHead() throws -> (Int, [String: String]) {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw TestFailure("bad status line '\(statusLine)'") }
        var headers: [String: String] = [:]
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = String(line[line.index(after: colon)...]).trimmingWhitespace
            }
        }
        return (status, headers)
    }

    /// The next chunk of a chunked body; nil for the terminating chunk.
    func readChunk() throws -> String? {
        let sizeLine = try readLine()
        guard let size = Int(sizeLine, radix: 16) else { throw TestFailure("bad chunk size '\(sizeLine)'") }
        if size == 0 { _ = try readLine(); return nil }
        let data = try readBytes(size)
        guard try readLine().isEmpty else { throw TestFailure("chunk not followed by CRLF") }
        return String(decoding: data, as: UTF8.self)
    }

    func readResponse() throws -> TestResponse {
        let (status, headers) = try readHead()
        var body = ""
        if headers["transfer-encoding"] == "chunked" {
            while let c = try readChunk() { body += c }
        } else if let length = Int(headers["content-length"] ?? "0") {
            body = String(decoding: try readBytes(length), as: UTF8.self)
        }
        return TestResponse(status: status, headers: headers, body: body)
    }

    /// True when the server closed the connection (EOF or reset) without a byte.
    func readsEOF() -> Bool { buffer.isEmpty && !fill() }
}

/// A running in-process fake with a fresh directory, plus request helpers.
final class Harness {
    let dir: String
    let server: FakeAPIServer

    init(historySize: Int = 1000, plainHTTP: Bool = false, stateFile: Bool = false, podGraceSeconds: Int = 0) throws {
        dir = makeTemporaryDirectory(prefix: "fake-apiserver-test")
        var options = FakeAPIServerOptions(dir: dir)
        options.historySize = historySize
        options.plainHTTP = plainHTTP
        options.podGraceSeconds = podGraceSeconds
        if stateFile { options.stateFile = dir + "/state.json" }
        options.logger = Logger(level: .critical, sink: DiscardSink())
        server = try FakeAPIServer.start(options)
    }

    deinit { server.stop() }

    func connect(timeoutSeconds: Int = 10) throws -> TestConnection {
        try TestConnection(url: server.url, caFile: server.caFile, timeoutSeconds: timeoutSeconds)
    }

    func request(_ method: String, _ path: String, body: JSON? = nil, token: String? = nil,
                 contentType: String = "application/json") throws -> TestResponse {
        let c = try connect()
        try c.send(method, path, token: token ?? server.token, body: body?.serialized(), contentType: contentType)
        return try c.readResponse()
    }

    func rawRequest(_ method: String, _ path: String, body: String?, token: String?, contentType: String = "application/json") throws -> TestResponse {
        let c = try connect()
        try c.send(method, path, token: token, body: body, contentType: contentType)
        return try c.readResponse()
    }
}

struct DiscardSink: LogSink { func write(line: String) {} }
