import Testing
import Synchronization
import KLCore
import KLSystem
import KLNetworkTestSupport
@testable import KLTransport

/// A chunked body with a chunk extension and a trailer.
let chunkedResponse = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: b\r\n\r\n"
    + "4;ext=\"1\"\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n10\r\n0123456789abcdef\r\n0\r\nX-Trailer: yes\r\n\r\n"
let chunkedBody = "Wikipedia in\r\n\r\nchunks.0123456789abcdef"

/// Decodes one response from the given pieces as `send` does.
func decode(_ pieces: [[UInt8]], method: String = "GET") throws(TransportError) -> (ResponseHead, [UInt8], WireReader) {
    let reader = WireReader(channel: ScriptedChannel(pieces))
    guard let head = try readResponseHead(reader, deadline: farDeadline) else { throw TransportError(.connectionClosed, "no response") }
    let body = BodyReader(framing: try bodyFraming(method: method, head: head, endpoint: "x"))
    var out: [UInt8] = []
    while let p = try body.next(reader, deadline: farDeadline) { out += p }
    return (head, out, reader)
}

@Suite("HTTP framing")
struct HTTPFramingTests {
    @Test func chunkedBody_splitAtEveryByteBoundary_decodesIdentically() throws {
        let bytes = Array(chunkedResponse.utf8)
        for i in 0...bytes.count {
            let (head, body, reader) = try decode([Array(bytes[..<i]), Array(bytes[i...])].filter { !$0.isEmpty })
            #expect(head.status == 200, "split at \(i)")
            #expect(String(decoding: body, as: UTF8.self) == chunkedBody, "split at \(i)")
            #expect(reader.buffered == 0, "split at \(i)")
        }
        // And every byte on its own.
        let (_, body, _) = try decode(bytes.map { [$0] })
        #expect(String(decoding: body, as: UTF8.self) == chunkedBody)
    }

    @Test func contentLengthBody_splitAtEveryByteBoundary_decodesIdentically() throws {
        let bytes = Array("HTTP/1.1 201 Created\r\nContent-Length: 11\r\n\r\nhello world".utf8)
        for i in 0...bytes.count {
            let (head, body, _) = try decode([Array(bytes[..<i]), Array(bytes[i...])].filter { !$0.isEmpty })
            #expect(head.status == 201)
            #expect(String(decoding: body, as: UTF8.self) == "hello world", "split at \(i)")
        }
    }

    @Test func truncatedBodies_atEveryByteBoundary_areErrorsNeverSuccess() {
        for full in [chunkedResponse, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"] {
            let bytes = Array(full.utf8)
            for i in 1..<bytes.count {
                #expect(throws: TransportError.self, "cut at \(i)") { try decode([Array(bytes[..<i])]) }
            }
        }
    }

    @Test func interimResponses_areSkipped() throws {
        let (head, body, _) = try decode([Array("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)])
        #expect(head.status == 200)
        #expect(body == Array("ok".utf8))
    }

    @Test func headAnd204And304_haveNoBody() throws {
        #expect(try decode([Array("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".utf8)], method: "HEAD").1.isEmpty)
        #expect(try decode([Array("HTTP/1.1 204 No Content\r\n\r\n".utf8)]).1.isEmpty)
    }

    @Test func invalidStatusLineOrChunkSize_isProtocolError() {
        for bad in ["SSH-2.0-OpenSSH\r\n\r\n", "HTTP/1.1 2xx OK\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                    "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                    "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nx"] {
            #expect(throws: TransportError.self, "\(bad)") { try decode([Array(bad.utf8)]) }
            do { _ = try decode([Array(bad.utf8)]) } catch { #expect(error.code == .protocolError, "\(bad): \(error)") }
        }
    }

    @Test func chunkSize_parsesHexAndExtensions() {
        #expect(parseChunkSize(Array("1a".utf8)) == 26)
        #expect(parseChunkSize(Array("FF ; name=value".utf8)) == 255)
        #expect(parseChunkSize(Array("0".utf8)) == 0)
        #expect(parseChunkSize(Array("".utf8)) == nil)
        #expect(parseChunkSize(Array("g".utf8)) == nil)
        #expect(parseChunkSize(Array("1 2".utf8)) == nil)
        #expect(parseChunkSize(Array("1000000000000000".utf8)) == nil)
    }

    @Test func urls_parseHostsPortsAndPrefixes() throws {
        let a = try ParsedURL("https://10.0.0.1")
        #expect(a.tls && a.host == "10.0.0.1" && a.port == 443 && a.path == "")
        let b = try ParsedURL("http://[fd00::1]:8001/prefix/")
        #expect(!b.tls && b.host == "fd00::1" && b.port == 8001 && b.path == "/prefix")
        let c = try ParsedURL("https://kubernetes.default.svc:6443")
        #expect(c.host == "kubernetes.default.svc" && c.port == 6443)
        for bad in ["ftp://x", "https://", "https://host:0", "https://host:99999", "http://fd00::1:80", "https://[fd00::1", "https://u:p@host"] {
            #expect(throws: TransportError.self, "\(bad)") { try ParsedURL(bad) }
            do { _ = try ParsedURL(bad) } catch {
                #expect(error.code == .invalidURL)
                #expect(error.description.contains("https://HOST:PORT"))
            }
        }
    }

    @Test func request_addsHostAndContentLength() {
        let r = try! encodeRequest(HTTPRequest(method: "POST", path: "/a?b=c", headers: [("Accept", "application/json")], body: Array("{}".utf8)),
                              hostHeader: "h:1", pathPrefix: "/p")
        #expect(String(decoding: r, as: UTF8.self) == "POST /p/a?b=c HTTP/1.1\r\nHost: h:1\r\nAccept: application/json\r\nContent-Length: 2\r\n\r\n{}")
    }
}

/// Answers every request on the connection with `response`, keeping it open.
func keepAliveHandler(_ response: String) -> @Sendable (Int32, Int) -> Void {
    { fd, _ in
        while readRequest(fd) != nil {
            if !sendAll(fd, response) { return }
        }
    }
}

@Suite("HTTP client over real sockets")
struct HTTPClientTests {
    @Test(.timeLimit(.minutes(1)))
    func silentServer_timesOutWithinDeadline() throws {
        let release = Gate()
        let server = TestServer { _, _ in release.wait() }
        defer { server.stop(); release.open() }
        let client = try HTTPClient(baseURL: server.url)
        let start = MonotonicClock.now
        let error = #expect(throws: TransportError.self) {
            try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .milliseconds(300))
        }
        let elapsed = MonotonicClock.now - start
        #expect(error?.code == .timedOut)
        #expect(elapsed >= .milliseconds(290))
        #expect(elapsed < .milliseconds(300) + timingSlack, "took \(elapsed)")
        #expect(error?.description == "Timed out after 300ms waiting for a response from 127.0.0.1:\(server.port); check that the server is up and reachable.")
    }

    @Test(.timeLimit(.minutes(1)))
    func serverSendingHeadersThenStalling_timesOutWithinDeadline() throws {
        let release = Gate()
        let server = oneResponseServer("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial") { fd in
            release.wait()
        }
        defer { server.stop(); release.open() }
        let client = try HTTPClient(baseURL: server.url)
        let start = MonotonicClock.now
        let error = #expect(throws: TransportError.self) {
            try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .milliseconds(300))
        }
        #expect(error?.code == .timedOut)
        #expect(MonotonicClock.now - start < .milliseconds(300) + timingSlack)
    }

    /// A server that closes in the middle of the body (Content-Length, then
    /// chunked): an error naming what was read, never a short body.
    @Test("a server closing mid-body is an error", arguments: [
        ("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this much", "14 of 100"),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", nil),
    ] as [(String, String?)])
    func serverClosingMidBody_isError(response: String, mentions: String?) throws {
        let server = oneResponseServer(response)
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        let error = #expect(throws: TransportError.self) { try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5)) }
        #expect(error?.code == .connectionClosed)
        if let mentions { #expect(error?.description.contains(mentions) == true) }
    }

    @Test func chunkedBody_sentByteByByte_decodes() throws {
        let server = TestServer { fd, _ in
            _ = readRequest(fd)
            for b in chunkedResponse.utf8 { sendAll(fd, [b]) }
        }
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        let r = try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5))
        #expect(r.status == 200)
        #expect(r.bodyText == chunkedBody)
        #expect(r.header("x-a") == "b")
    }

    @Test func keepAlive_reusesOneConnection() throws {
        let server = TestServer(keepAliveHandler("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        for _ in 0..<20 {
            let r = try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5))
            #expect(r.bodyText == "ok")
        }
        #expect(server.connections == 1)
        #expect(client.connectionsOpened == 1)
    }

    @Test func connectionClose_isHonoured() throws {
        let server = TestServer(keepAliveHandler("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"))
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        for _ in 0..<3 { _ = try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5)) }
        #expect(client.connectionsOpened == 3)
    }

    @Test func bodyUntilClose_isReadToEnd() throws {
        let server = oneResponseServer("HTTP/1.1 200 OK\r\n\r\nall of it")
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        #expect(try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5)).bodyText == "all of it")
    }

    /// The server answers the first request, then drops the kept-alive
    /// connection as soon as the next request arrives (an idle timeout racing
    /// the request). A GET is retried once on a new connection; a POST is not.
    @Test func reusedConnectionClosedBeforeResponse_getRetriedOnce_postFails() throws {
        let server = TestServer { fd, index in
            guard readRequest(fd) != nil else { return }
            sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: \(String(index).count)\r\n\r\n\(index)")
            _ = readRequest(fd)  // then close without answering
        }
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        #expect(try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5)).bodyText == "0")
        #expect(try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5)).bodyText == "1")
        #expect(server.connections == 2)
        let error = #expect(throws: TransportError.self) {
            try client.send(HTTPRequest(method: "POST", path: "/", body: Array("{}".utf8)), timeout: .seconds(5))
        }
        #expect(error?.code == .connectionClosed)
        #expect(server.connections == 2)
    }

    @Test func redirect_isReturnedNotFollowed() throws {
        let server = TestServer(keepAliveHandler("HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\nContent-Length: 0\r\n\r\n"))
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        let r = try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5))
        #expect(r.status == 302)
        #expect(r.header("location") == "http://127.0.0.1:1/elsewhere")
        #expect(server.connections == 1)
    }

    @Test func requestBodyAndHeaders_reachTheServer() throws {
        let seen = SeenRequests()
        let server = TestServer { fd, _ in
            while let req = readRequest(fd) {
                seen.add(req.head + String(decoding: req.body, as: UTF8.self))
                sendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            }
        }
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url + "/base/")
        _ = try client.send(HTTPRequest(method: "PUT", path: "/x?y=1", headers: [("Authorization", "Bearer t")], body: Array("{\"a\":1}".utf8)), timeout: .seconds(5))
        let req = try #require(seen.all.first)
        #expect(req.hasPrefix("PUT /base/x?y=1 HTTP/1.1\r\nHost: 127.0.0.1:\(server.port)\r\n"))
        #expect(req.contains("Authorization: Bearer t\r\n"))
        #expect(req.hasSuffix("Content-Length: 7\r\n\r\n{\"a\":1}"))
    }

    @Test func refusedConnection_isConnectFailedNamingTheServer() throws {
        let server = TestServer { _, _ in }
        let port = server.port
        server.stop()
        // Wait until the listener is gone (bounded by the time limit).
        while true {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = UInt16(port).bigEndian
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            close(fd)
            if r != 0 { break }
            usleep(20_000)
        }
        let client = try HTTPClient(baseURL: "http://127.0.0.1:\(port)")
        let error = #expect(throws: TransportError.self) { try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5)) }
        #expect(error?.code == .connectFailed)
        #expect(error?.description.contains("127.0.0.1:\(port)") == true)
        #expect(error?.description.contains("refused") == true)
    }

    @Test(.timeLimit(.minutes(1)))
    func streamReadLine_readsChunkedLinesAndSurvivesATimeout() throws {
        let gate = Gate()
        let server = oneResponseServer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") { fd in
            // Line 1 split over two chunks, line 2 and the start of line 3 in one.
            sendAll(fd, "3\r\n{\"a\r\n")
            sendAll(fd, "3\r\n\":1\r\n")
            sendAll(fd, "1\r\n\n\r\n")
            gate.wait()
            sendAll(fd, "7\r\nline 2\n\r\n5\r\nlast!\r\n0\r\n\r\n")
        }
        defer { server.stop(); gate.open() }
        let stream = try openWatch(server)
        #expect(stream.status == 200)
        #expect(try stream.readLine(deadline: .now + .seconds(5)) == "{\"a\":1")
        let start = MonotonicClock.now
        let error = #expect(throws: TransportError.self) { try stream.readLine(deadline: .now + .milliseconds(200)) }
        #expect(error?.code == .timedOut)
        #expect(MonotonicClock.now - start < .milliseconds(200) + timingSlack)
        gate.open()
        #expect(try stream.readLine(deadline: .now + .seconds(5)) == "line 2")
        #expect(try stream.readLine(deadline: .now + .seconds(5)) == "last!")
        #expect(try stream.readLine(deadline: .now + .seconds(5)) == nil)
        stream.close()
    }

    @Test func streamEndingCleanly_returnsConnectionToPool() throws {
        let server = TestServer(keepAliveHandler("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\na\nb\n"))
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        let stream = try client.openStream(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5))
        #expect(try stream.readAll(deadline: .now + .seconds(5)) == Array("a\nb\n".utf8))
        stream.close()
        _ = try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(5))
        #expect(server.connections == 1)
    }
}

extension HTTPClientTests {
    /// Four threads share one client: every request succeeds and the pool
    /// never opens more connections than there are concurrent callers.
    @Test(.timeLimit(.minutes(1)))
    func concurrentCallers_shareThePoolSafely() throws {
        let server = TestServer(keepAliveHandler("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url)
        let done = Gate()
        let successes = Atomic<Int>(0)
        for _ in 0..<4 {
            startThread {
                for _ in 0..<25 {
                    let ok = (try? client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(10)))?.bodyText == "ok"
                    if ok { successes.add(1, ordering: .relaxed) }
                }
                done.open()
            }
        }
        for _ in 0..<4 { done.wait() }
        #expect(successes.load(ordering: .relaxed) == 100)
        #expect(client.connectionsOpened <= 4)
        #expect(server.connections == client.connectionsOpened)
    }
}

final class SeenRequests: @unchecked Sendable {
    private let lock = Mutex<[String]>([])
    func add(_ s: String) { lock.withLock { $0.append(s) } }
    var all: [String] { lock.withLock { $0 } }
}

extension HTTPClientTests {
    /// A listener whose accept queue is full drops new SYNs, so connect(2)
    /// never completes: the connect timeout must end the call.
    @Test(.timeLimit(.minutes(1)))
    func unansweredConnect_endsAtConnectTimeout() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        listen(fd, 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        // Fill the accept queue with connections nobody accepts.
        var fillers: [Int32] = []
        defer { fillers.forEach { close($0) } }
        for _ in 0..<4 {
            let c = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(c, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
            fillers.append(c)
        }
        let client = try HTTPClient(baseURL: "http://127.0.0.1:\(port)", connectTimeout: .milliseconds(300))
        let start = MonotonicClock.now
        let error = #expect(throws: TransportError.self) { try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(20)) }
        let elapsed = MonotonicClock.now - start
        #expect(error?.code == .timedOut)
        #expect(error?.description.contains("connecting to 127.0.0.1:\(port)") == true, "\(String(describing: error))")
        #expect(elapsed < .milliseconds(300) + timingSlack)
    }
}
