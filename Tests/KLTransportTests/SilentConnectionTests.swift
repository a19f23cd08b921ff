import Testing
import Synchronization
import KLCore
import KLSystem
import KLNetworkTestSupport
@testable import KLTransport

@Suite("Silent kept-alive connections (docs/safety.md: dead connections)")
struct SilentConnectionTests {
    let get = HTTPRequest(method: "GET", path: "/x")

    /// A client whose first GET to `s` was answered: one kept-alive
    /// connection (connection 0) waits in its pool.
    func keptAliveClient(_ s: SilentAfterServer) throws -> HTTPClient {
        let client = try HTTPClient(baseURL: s.url)
        #expect(try client.send(get, timeout: .seconds(5)).status == 200)
        #expect(client.connectionsOpened == 1)
        return client
    }

    @Test(.timeLimit(.minutes(1)))
    func silentKeptAliveConnection_timesOut_isClosed_andTheNextAttemptGoesOnAFreshConnection() throws {
        let s = SilentAfterServer(silent: [0])
        defer { s.stop() }
        let client = try keptAliveClient(s)

        // The kept-alive connection is reused and does not answer: the call
        // ends at its own timeout, not later.
        let started = MonotonicClock.now
        #expect(throws: TransportError.self) { try client.send(get, timeout: .milliseconds(300)) }
        #expect(started.duration(to: .now) < .milliseconds(300) + timingSlack + .milliseconds(50))

        // The retry goes on a new connection and is answered.
        #expect(try client.send(get, timeout: .seconds(5)).status == 200)
        #expect(try client.send(get, timeout: .seconds(5)).status == 200)
        // The silent connection got its two requests and never a third: it
        // was closed when the call timed out, never handed out again.
        #expect(s.requests(on: 0) == 2)
        #expect(s.connections >= 2)
        #expect(s.requests(on: 1) + s.requests(on: 2) >= 2)
    }

    @Test(.timeLimit(.minutes(1)))
    func timeoutOnAPutThatWasSent_isNotRetriedOnAnyConnection() throws {
        // A PUT that went out and timed out may have been applied: the HTTP
        // layer never sends it again by itself (the election decides).
        let s = SilentAfterServer(silent: [0])
        defer { s.stop() }
        let client = try keptAliveClient(s)
        do {
            _ = try client.send(HTTPRequest(method: "PUT", path: "/lock", body: Array("{}".utf8)), timeout: .milliseconds(300))
            Issue.record("the PUT on the silent connection succeeded")
        } catch {
            #expect(error.code == .timedOut)
            #expect(error.message.contains("300ms"), "\(error.message)")
        }
        #expect(s.requests(on: 0) == 2)
        #expect(s.connections == 1, "the timed-out PUT was sent again on another connection")
    }

    @Test(.timeLimit(.minutes(1)))
    func afterATimeout_noOtherIdleConnectionIsReused() throws {
        // Two connections in the pool, both to the API server that died.
        // The first attempt times out on one; the second must not take the
        // other (it would time out too and the renew deadline would pass).
        let s = SilentAfterServer(silent: [0, 1], holdFirst: true)
        defer { s.stop() }
        let client = try HTTPClient(baseURL: s.url)
        let firstDone = Gate()
        startThread {
            _ = try? client.send(HTTPRequest(method: "GET", path: "/held"), timeout: .seconds(10))
            firstDone.open()
        }
        // Connection 0 holds its answer: this request opens connection 1.
        s.firstArrived.wait()
        #expect(try client.send(get, timeout: .seconds(5)).status == 200)
        s.letFirstAnswer()
        firstDone.wait()
        #expect(client.connectionsOpened == 2)

        let attempt1 = MonotonicClock.now
        do {
            _ = try client.send(get, timeout: .milliseconds(400))
            Issue.record("a silent connection answered")
        } catch {
            #expect(error.code == .timedOut)
        }
        #expect(attempt1.duration(to: .now) < .milliseconds(400) + timingSlack)
        let attempt2 = MonotonicClock.now
        #expect(try client.send(get, timeout: .milliseconds(1500)).status == 200)
        #expect(attempt2.duration(to: .now) < .milliseconds(1000))
        #expect(client.connectionsOpened == 3, "the second attempt did not go on a fresh connection")
        #expect(s.requests(on: 0) + s.requests(on: 1) == 3, "a request went to a silent connection after the timeout")
    }

    @Test func everySocket_hasKeepAliveAndAUserTimeout() throws {
        let server = TestServer { fd, _ in _ = readRequest(fd) }
        defer { server.stop() }
        let fd = try tcpConnect(Endpoint(host: "127.0.0.1", port: server.port), deadline: .now + .seconds(5))
        defer { close(fd) }
        func option(_ level: Int32, _ name: Int32) -> Int32 {
            var v: Int32 = -1
            var len = socklen_t(MemoryLayout<Int32>.size)
            #expect(getsockopt(fd, level, name, &v, &len) == 0)
            return v
        }
        let tcp = Int32(IPPROTO_TCP)
        #expect(option(SOL_SOCKET, SO_KEEPALIVE) == 1)
        #expect(option(tcp, TCP_NODELAY) == 1)
        #expect(option(tcp, TCP_KEEPIDLE) == 5)
        #expect(option(tcp, TCP_KEEPINTVL) == 2)
        #expect(option(tcp, TCP_KEEPCNT) == 3)
        #expect(option(tcp, TCP_USER_TIMEOUT) == 8000)
        // The probing ends a dead idle connection well before the default
        // renew deadline (10 s), and the user timeout is not shorter than
        // five retransmissions need (0.2 + 0.4 + 0.8 + 1.6 + 3.2 s).
        let idleDeath = Int(TCPTuning.keepAliveIdleSeconds + TCPTuning.keepAliveIntervalSeconds * TCPTuning.keepAliveProbes)
        #expect(idleDeath * 1000 > Int(TCPTuning.userTimeoutMilliseconds))
        #expect(idleDeath < 15)
        #expect(TCPTuning.userTimeoutMilliseconds >= 6200)
    }
}
