import Testing
import Synchronization
import KLCore
import KLSystem
import KLNetworkTestSupport
@testable import KLTransport

/// How much later than its deadline a call against a hostile peer may end.
/// Generous: the machine is shared; without the fixes these calls never end
/// (the test's time limit catches them).
let hostileSlack: Duration = .seconds(3)

/// Sends `bytes` to `fd` one byte per `send`, `pauseMicros` apart, until the
/// peer closes; `forever` repeats them.
func trickle(_ fd: Int32, _ bytes: [UInt8], pauseMicros: UInt32, forever: Bool = false) {
    repeat {
        for b in bytes {
            if !sendAll(fd, [b]) { return }
            if pauseMicros > 0 { usleep(pauseMicros) }
        }
    } while forever
}

/// Sends `piece` again and again as fast as the peer reads, until it closes.
func flood(_ fd: Int32, _ piece: String) {
    let bytes = Array(String(repeating: piece, count: max(1, 16 * 1024 / max(1, piece.utf8.count))).utf8)
    while sendAll(fd, bytes) {}
}

/// What a hostile server sends after reading the request: a response head,
/// then `tail`; what a GET against it must end with.
struct HostilePeer: Sendable, CustomStringConvertible {
    enum Tail: Sendable {
        case nothing
        /// `trickle(fd, bytes, pauseMicros:, forever:)`.
        case trickle([UInt8], pauseMicros: UInt32, forever: Bool)
        /// `flood(fd, piece)`.
        case flood(String)
    }
    var name: String
    var head: String
    var tail: Tail
    var limits = HTTPLimits()
    var timeout: Duration
    var code: TransportError.Code
    /// The error message starts with this.
    var prefix = ""
    /// Texts the error message contains; `{port}` is the server's port.
    var mentions: [String] = []
    var description: String { name }

    /// A server that reads a request, sends `head`, then `tail`.
    func server() -> TestServer {
        oneResponseServer(head) { fd in
            switch tail {
            case .nothing: break
            case .trickle(let bytes, let pause, let forever): trickle(fd, bytes, pauseMicros: pause, forever: forever)
            case .flood(let piece): flood(fd, piece)
            }
        }
    }
}

let hostilePeers: [HostilePeer] = [
    HostilePeer(name: "body in one-byte chunks ends at the deadline",
                head: "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
                tail: .trickle(Array(repeating: 120, count: 100_000), pauseMicros: 2000, forever: false),
                timeout: .milliseconds(500), code: .timedOut, prefix: "Timed out after 500ms"),
    HostilePeer(name: "chunked body of one-byte chunks ends at the deadline",
                head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                tail: .trickle(Array("1\r\nx\r\n".utf8), pauseMicros: 1000, forever: true),
                timeout: .milliseconds(500), code: .timedOut),
    HostilePeer(name: "headers in one-byte chunks end at the deadline",
                head: "HTTP/1.1 200 OK\r\n",
                tail: .trickle(Array("X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".utf8), pauseMicros: 2000, forever: true),
                timeout: .milliseconds(500), code: .timedOut),
    HostilePeer(name: "endless body is capped with an error naming the cap",
                head: "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", tail: .flood("{\"kind\":\"ConfigMap\"}"),
                limits: HTTPLimits(maxBodyBytes: 1 << 20), timeout: .seconds(20), code: .tooLarge,
                mentions: ["larger than the cap of 1 MiB", "127.0.0.1:{port}"]),
    HostilePeer(name: "endless chunked body is capped",
                head: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                tail: .flood("400\r\n" + String(repeating: "y", count: 1024) + "\r\n"),
                limits: HTTPLimits(maxBodyBytes: 256 * 1024), timeout: .seconds(20), code: .tooLarge, mentions: ["256 KiB"]),
    HostilePeer(name: "declared length over the cap is refused before reading",
                head: "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\nabc", tail: .nothing,
                timeout: .seconds(10), code: .tooLarge,
                mentions: ["declares 9223372036854775807 bytes, more than the cap of 8 MiB"]),
    HostilePeer(name: "endless headers are capped",
                head: "HTTP/1.1 200 OK\r\n", tail: .flood("X-Junk: " + String(repeating: "0123456789", count: 100) + "\r\n"),
                timeout: .seconds(20), code: .tooLarge,
                mentions: ["response headers from 127.0.0.1:{port} are larger than the cap of 64 KiB"]),
    HostilePeer(name: "endless short headers are capped by count",
                head: "HTTP/1.1 200 OK\r\n", tail: .flood("X: 1\r\n"),
                timeout: .seconds(20), code: .tooLarge, mentions: ["more than 256 headers"]),
    HostilePeer(name: "endless interim responses count against the head cap",
                head: "", tail: .flood("HTTP/1.1 100 Continue\r\n\r\n"),
                timeout: .seconds(20), code: .tooLarge),
]

/// Regression tests for "two children at once" (docs/safety.md): the read deadline
/// was checked only when the socket was empty and responses had no size
/// limit, so a renew answered with a body in 1-byte chunks, or an endless
/// body, never reached its deadline and a GET held gigabytes.
@Suite("HTTP client against hostile peers")
struct HTTPHostilePeerTests {
    /// A GET against the peer ends, by its deadline (plus slack), with the
    /// peer's error code and message.
    @Test("a GET against a hostile peer ends", .timeLimit(.minutes(1)), arguments: hostilePeers)
    func getEnds(_ peer: HostilePeer) throws {
        let server = peer.server()
        defer { server.stop() }
        let client = try HTTPClient(baseURL: server.url, limits: peer.limits)
        let start = MonotonicClock.now
        let error = #expect(throws: TransportError.self) {
            try client.send(HTTPRequest(method: "GET", path: "/"), timeout: peer.timeout)
        }
        let elapsed = MonotonicClock.now - start
        #expect(error?.code == peer.code, "\(String(describing: error))")
        #expect(elapsed < peer.timeout + hostileSlack, "took \(elapsed)")
        #expect(error?.message.hasPrefix(peer.prefix) == true, "\(String(describing: error))")
        for text in peer.mentions {
            let text = text.replacing("{port}", with: "\(server.port)")
            #expect(error?.message.contains(text) == true, "\(String(describing: error)) should mention \(text)")
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func streamedLineThatNeverEnds_isAnErrorAtTheCap() throws {
        let server = oneResponseServer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") { fd in
            sendAll(fd, "6\r\nfirst\n\r\n")
            flood(fd, "400\r\n" + String(repeating: "z", count: 1024) + "\r\n")
        }
        defer { server.stop() }
        let stream = try openWatch(server, limits: HTTPLimits(maxLineBytes: 128 * 1024))
        #expect(try stream.readLine(deadline: .now + .seconds(5)) == "first")
        let e = #expect(throws: TransportError.self) { try stream.readLine(deadline: .now + .seconds(20)) }
        #expect(e?.code == .tooLarge)
        #expect(e?.message.contains("longer than the cap of 128 KiB") == true, "\(String(describing: e))")
        // The stream is closed: nothing more is read.
        #expect(try stream.readLine(deadline: .now + .seconds(1)) == nil)
    }

    @Test(.timeLimit(.minutes(1)))
    func manyLinesPerPiece_andLinesSplitAcrossPieces_areReadInOrder() throws {
        var text = ""
        for i in 0..<5000 { text += (i % 3 == 0 ? "" : "line \(i)") + (i % 2 == 0 ? "\r\n" : "\n") }
        let bytes = Array(text.utf8)
        let server = oneResponseServer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") { fd in
            var i = 0
            var size = 1
            while i < bytes.count {  // chunk sizes 1, 8, 64, 512, 4096, 1, ... cut lines anywhere
                let n = min(size, bytes.count - i)
                sendAll(fd, Array(String(n, radix: 16).utf8) + [13, 10] + Array(bytes[i..<(i + n)]) + [13, 10])
                i += n
                size = size >= 4096 ? 1 : size * 8
            }
            sendAll(fd, "5\r\ntail!\r\n0\r\n\r\n")
        }
        defer { server.stop() }
        let stream = try openWatch(server)
        for i in 0..<5000 {
            let line = try stream.readLine(deadline: .now + .seconds(10))
            #expect(line == (i % 3 == 0 ? "" : "line \(i)"))
            if line != (i % 3 == 0 ? "" : "line \(i)") { break }
        }
        #expect(try stream.readLine(deadline: .now + .seconds(10)) == "tail!")  // a last line without LF
        #expect(try stream.readLine(deadline: .now + .seconds(10)) == nil)
    }

    @Test(.timeLimit(.minutes(1)))
    func streamedLineTrickling_timesOutAtEachDeadlineAndStaysUsable() throws {
        let server = oneResponseServer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") { fd in
            trickle(fd, Array("1\r\nq\r\n".utf8), pauseMicros: 1000, forever: true)
        }
        defer { server.stop() }
        let stream = try openWatch(server)
        for _ in 0..<2 {
            let start = MonotonicClock.now
            let e = #expect(throws: TransportError.self) { try stream.readLine(deadline: start + .milliseconds(300)) }
            #expect(e?.code == .timedOut)
            #expect(MonotonicClock.now - start < .milliseconds(300) + hostileSlack)
        }
        stream.close()
    }

    @Test(.timeLimit(.minutes(1)))
    func watchErrorBodyOverTheCap_isAnError() throws {
        let server = oneResponseServer("HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n") { fd in
            flood(fd, "e")
        }
        defer { server.stop() }
        let stream = try openWatch(server, limits: HTTPLimits(maxBodyBytes: 64 * 1024))
        let e = #expect(throws: TransportError.self) { try stream.readAll(deadline: .now + .seconds(20)) }
        #expect(e?.code == .tooLarge)
    }
}

/// Header injection: a token file ending in CRLF kept its `\r`,
/// which ended the request headers early.
@Suite("Header injection")
struct HeaderInjectionTests {
    @Test func controlCharactersInHeaderValues_areRefusedNamingTheHeader() {
        for bad in ["abc\r\nX-Injected: 1", "abc\n", "abc\r", "a\u{0}b", "a\u{7f}"] {
            let e = #expect(throws: TransportError.self) {
                try encodeRequest(HTTPRequest(method: "GET", path: "/", headers: [("Authorization", "Bearer " + bad)]), hostHeader: "h", pathPrefix: "")
            }
            #expect(e?.code == .invalidRequest)
            #expect(e?.message.contains("\"Authorization\" contains a control character") == true, "\(String(describing: e))")
            #expect(e?.message.contains("abc") == false)  // never the value: it may be a token
        }
        // A tab is allowed in a header value (RFC 9110 field-vchar / OWS).
        #expect(throws: Never.self) { try encodeRequest(HTTPRequest(method: "GET", path: "/", headers: [("X-A", "a\tb")]), hostHeader: "h", pathPrefix: "") }
    }

    @Test func controlCharactersOrSpacesInThePathOrHeaderName_areRefused() {
        for path in ["/a b", "/a\r\nHost: evil", "/a\u{0}"] {
            let e = #expect(throws: TransportError.self) { try encodeRequest(HTTPRequest(method: "GET", path: path), hostHeader: "h", pathPrefix: "") }
            #expect(e?.code == .invalidRequest)
        }
        for name in ["X-A\r\nX-B", "X A", "X:A", ""] {
            let e = #expect(throws: TransportError.self) { try encodeRequest(HTTPRequest(method: "GET", path: "/", headers: [(name, "v")]), hostHeader: "h", pathPrefix: "") }
            #expect(e?.code == .invalidRequest)
        }
    }
}

/// A blocked election thread: `getaddrinfo` for `--api-server https://name` while DNS is
/// down blocked the election thread past the renew deadline.
@Suite("Name resolution with a deadline")
struct HostResolverTests {
    /// A resolver whose look-ups block until `gate` opens, then answer 127.0.0.1.
    final class Counter: Sendable {
        let n = Atomic<Int>(0)
        var value: Int { n.load(ordering: .sequentiallyConsistent) }
    }

    func blockedResolver(_ gate: Gate, calls: Counter) -> HostResolver {
        HostResolver(lookup: { ep in
            calls.n.add(1, ordering: .sequentiallyConsistent)
            gate.wait()
            return systemLookup(Endpoint(host: "127.0.0.1", port: ep.port))
        })
    }

    @Test(.timeLimit(.minutes(1)))
    func hangingLookup_endsAtTheDeadline_andOnlyOneLookupRuns() throws {
        let gate = Gate()
        let calls = Counter()
        let resolver = blockedResolver(gate, calls: calls)
        let ep = Endpoint(host: "api.example.invalid", port: 443)
        for _ in 0..<3 {
            let start = MonotonicClock.now
            let e = #expect(throws: TransportError.self) { try resolver.resolve(ep, deadline: start + .milliseconds(200)) }
            #expect(e?.code == .timedOut)
            #expect(e?.message == "Timed out resolving the host name of api.example.invalid:443: DNS did not answer in time; check /etc/resolv.conf and the server URL (a numeric IP needs no DNS).")
            #expect(MonotonicClock.now - start < .milliseconds(200) + hostileSlack)
        }
        #expect(resolver.lookupsStarted == 1)  // callers wait for the running look-up
        gate.open()
        // The late answer is kept for the next caller.
        let addresses = try resolver.resolve(ep, deadline: .now + .seconds(10))
        #expect(addresses.count >= 1)
        #expect(resolver.lookupsStarted == 1)
        // Used once: the next caller looks the name up again.
        gate.open()  // (each look-up takes one opening)
        _ = try resolver.resolve(ep, deadline: .now + .seconds(10))
        #expect(resolver.lookupsStarted == 2)
        #expect(calls.value == 2)
    }

    @Test func numericHosts_areNeverLookedUpOnAThread() throws {
        let resolver = HostResolver(lookup: systemLookup)
        let a = try resolver.resolve(Endpoint(host: "127.0.0.1", port: 80), deadline: .now + .seconds(5))
        #expect(a.count == 1)
        #expect(resolver.lookupsStarted == 0)
    }

    @Test func failedLookup_isConnectFailedNamingTheHost() {
        let resolver = HostResolver(lookup: { ep in .failure(TransportError(.connectFailed, "Cannot resolve the host of \(ep.text): no such host.")) })
        let e = #expect(throws: TransportError.self) { try resolver.resolve(Endpoint(host: "nope.invalid", port: 1), deadline: .now + .seconds(5)) }
        #expect(e?.code == .connectFailed)
        #expect(e?.message.contains("nope.invalid:1") == true)
    }

    @Test(.timeLimit(.minutes(1)))
    func requestToANameWhileDNSHangs_endsAtTheRequestDeadline_thenWorksOnceDNSAnswers() throws {
        let server = TestServer(keepAliveHandler("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"))
        defer { server.stop() }
        let gate = Gate()
        let calls = Counter()
        let client = try HTTPClient(baseURL: "http://api.example.invalid:\(server.port)", tls: TLSOptions(),
                                    connectTimeout: .seconds(5), limits: HTTPLimits(), resolver: blockedResolver(gate, calls: calls))
        let start = MonotonicClock.now
        let e = #expect(throws: TransportError.self) { try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .milliseconds(300)) }
        #expect(e?.code == .timedOut)
        #expect(e?.message.hasPrefix("Timed out after 300ms resolving the host name of api.example.invalid:") == true, "\(String(describing: e))")
        #expect(MonotonicClock.now - start < .milliseconds(300) + hostileSlack)
        #expect(server.connections == 0)
        gate.open()
        let r = try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(10))
        #expect(r.status == 200)
        #expect(server.connections == 1)
    }
}
