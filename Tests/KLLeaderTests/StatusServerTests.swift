import KLSystem
import KLCore
import Testing
@testable import KLLeader
import KLKube
import KLTransport

/// The status endpoint over real sockets: routes, and clients that are slow,
/// greedy or wrong never hold up anyone else.
@Suite("Status endpoint", .timeLimit(.minutes(1)))
struct StatusServerTests {
    func status(leadingSince sentAgo: Duration? = nil) -> LeaderStatus {
        var s = LeaderStatus(identity: "me", namespace: "ns", lockName: "lock", kind: .lease)
        if let sentAgo {
            var object = LockCodec.newObject(.lease, namespace: "ns", name: "lock", record: LeaderElectionRecord(
                holderIdentity: "me", leaseDurationSeconds: 15, acquireTime: nil, renewTime: nil, leaderTransitions: 4))
            object[path: "metadata", "resourceVersion"] = "99"
            _ = s.wrote(LockCodec.decode(.lease, object: object), sentAt: MonotonicClock.now - sentAgo, now: MonotonicClock.now)
        }
        return s
    }

    func serve(_ s: LeaderStatus, headTimeout: Duration = .seconds(5)) throws -> StatusServer {
        let server = try StatusServer(address: StatusAddress("127.0.0.1:0")!, sharedStatus: SharedLeaderStatus(s),
                                      renewDeadline: .seconds(10), headTimeout: headTimeout)
        server.start()
        return server
    }

    @Test func routes() throws {
        let server = try serve(status(leadingSince: .zero))
        let health = try Raw(server).exchange("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(health.hasPrefix("HTTP/1.1 200 OK\r\n") && health.hasSuffix("\r\n\r\nok\n"))
        let leader = try Raw(server).exchange("GET /leader?x=1 HTTP/1.1\r\n\r\n")
        #expect(leader.contains("Content-Type: application/json\r\n"))
        let body = try JSON.parse(String(leader.split(separator: "\r\n\r\n", maxSplits: 1)[1]))
        #expect(body["leading"] == true && body["fencing_token"] == "99" && body["kind"] == "lease" && body["transitions"] == 4)
        let metrics = try Raw(server).exchange("GET /metrics HTTP/1.0\r\n\r\n")
        #expect(metrics.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"))
        #expect(metrics.contains("\nleader_election_master_status{name=\"lock\"} 1\n"))
        let head = try Raw(server).exchange("HEAD /metrics HTTP/1.1\r\n\r\n")
        #expect(head.hasPrefix("HTTP/1.1 200 OK") && head.hasSuffix("\r\n\r\n"))
        #expect(try Raw(server).exchange("GET /nope HTTP/1.1\r\n\r\n").hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(try Raw(server).exchange("POST /healthz HTTP/1.1\r\nContent-Length: 0\r\n\r\n").hasPrefix("HTTP/1.1 405 "))
        #expect(try Raw(server).exchange("garbage\r\n\r\n").hasPrefix("HTTP/1.1 400 Bad Request\r\n"))
    }

    /// client-go's HealthzAdaptor semantics: a leader whose last renew is older
    /// than the renew deadline answers 500, so a liveness probe restarts it.
    @Test func healthz_wedgedLeader_is500() throws {
        let server = try serve(status(leadingSince: .seconds(11)))
        let reply = try Raw(server).exchange("GET /healthz HTTP/1.1\r\n\r\n")
        #expect(reply.hasPrefix("HTTP/1.1 500 Internal Server Error\r\n"))
        #expect(reply.contains("no successful renew of ns/lock"))
    }

    @Test func hugeHead_is431_andClosed() throws {
        let server = try serve(status())
        // 9000 bytes and no end of head: past the 8192-byte limit, and all of
        // it read by then (so the close sends no reset that could eat the answer).
        let start = "GET /healthz HTTP/1.1\r\nX-Big: "
        let reply = try Raw(server).exchange(start + String(repeating: "a", count: 9000 - start.utf8.count))
        #expect(reply.hasPrefix("HTTP/1.1 431 Request Header Fields Too Large\r\n"))
    }

    /// A client that never finishes its head (slowloris), or trickles it byte
    /// by byte, is cut off at the head timeout; others are served meanwhile.
    @Test func slowClients_areCutOff_andDoNotDelayOthers() throws {
        let server = try serve(status(), headTimeout: .milliseconds(800))
        let silent = try Raw(server)
        #expect(silent.send("GET /healthz HTTP/1.1\r\n"))
        let trickle = try Raw(server)
        // Many idle connections, beyond the server's limit of open ones.
        let idle = try (0..<(HTTPServer.maxConnections + 8)).map { _ in try Raw(server) }

        // Still served: the idle ones only take slots until their head timeout.
        let started = MonotonicClock.now
        let fast = try Raw(server).exchange("GET /healthz HTTP/1.1\r\n\r\n", timeout: .seconds(10))
        #expect(fast.hasPrefix("HTTP/1.1 200 OK"))

        var cutOff = false
        for byte in "GET /healthz HTTP/1.1\r\nX-Slow: ".utf8 {
            if !trickle.send(String(UnicodeScalar(byte))) { cutOff = true; break }
            if trickle.readAll(timeout: .milliseconds(100)).closed { cutOff = true; break }
        }
        #expect(cutOff, "a trickling client was never cut off")
        let s = silent.readAll(timeout: .seconds(10))
        #expect(s.closed && s.text.isEmpty, "the silent client got \(s.text)")
        #expect(MonotonicClock.now - started < .seconds(10))
        _ = idle
    }

    @Test func addressInUse_namesTheAddress() throws {
        let server = try serve(status())
        let error = #expect(throws: UsageError.self) {
            _ = try StatusServer(address: StatusAddress(server.boundAddress)!, sharedStatus: SharedLeaderStatus(status()), renewDeadline: .seconds(10))
        }
        #expect(error?.message.contains("cannot listen on the status address \(server.boundAddress)") == true)
    }
}

/// A raw TCP client with deadlines, for talking to the status endpoint.
final class Raw {
    let fd: Int32

    init(_ server: StatusServer) throws {
        let port = UInt16(server.boundAddress.split(separator: ":").last!)!
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw TransportError(.connectFailed, "connect: \(errno)") }
    }

    deinit { close(fd) }

    func send(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        return bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, bytes.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Reads until the peer closes or `timeout` passes.
    func readAll(timeout: Duration) -> (text: String, closed: Bool) {
        let deadline = MonotonicClock.now + timeout
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while MonotonicClock.now < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 20) <= 0 { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return (String(decoding: out, as: UTF8.self), true) }
            out += buffer[0..<n]
        }
        return (String(decoding: out, as: UTF8.self), false)
    }

    func exchange(_ request: String, timeout: Duration = .seconds(10)) throws -> String {
        guard send(request) else { throw TransportError(.connectionClosed, "send failed") }
        let r = readAll(timeout: timeout)
        guard r.closed else { throw TransportError(.timedOut, "no complete answer: \(r.text)") }
        return r.text
    }
}
