import Testing
import Synchronization
import KLCore
import KLSystem
@testable import KLKube
@testable import KLTransport

/// Issue 20, row 4: a kept-alive connection goes silent (the API server
/// behind the ClusterIP died without a RST; conntrack still sends there)
/// while new connections are answered. Real sockets on loopback: the test
/// server answers the first `answered` requests of a connection, then reads
/// the next one and never answers it (the connection stays open, silent);
/// connections the test does not name as silent answer everything.
final class SilentAfterServer: @unchecked Sendable {
    let server: TestServer
    /// Requests each connection received (by accept order).
    private final class Counts: Sendable {
        let byConnection = Mutex<[Int: Int]>([:])
        func add(_ index: Int) { byConnection.withLock { $0[index, default: 0] += 1 } }
    }
    private let seen = Counts()
    private let release = Gate()
    /// Opened when connection 0 has read its first request (with `holdFirst`).
    let firstArrived = Gate()

    /// - Parameters:
    ///   - silent: connections (by accept order) that go silent.
    ///   - answered: requests such a connection answers before it goes silent.
    ///   - holdFirst: connection 0 answers its first request only once
    ///     `letFirstAnswer()` is called (to get two connections into the pool).
    init(silent: Set<Int>, answered: Int = 1, holdFirst: Bool = false, response: String = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") {
        let seen = self.seen
        let release = self.release
        let firstArrived = self.firstArrived
        server = TestServer { fd, index in
            var n = 0
            while readRequest(fd) != nil {
                n += 1
                seen.add(index)
                if silent.contains(index) && n > answered {
                    // Silent from here on: no answer, no FIN, no RST. Bytes
                    // that still arrive are counted (there must be none).
                    while readRequest(fd) != nil { seen.add(index) }
                    return
                }
                if holdFirst && index == 0 && n == 1 {
                    firstArrived.open()
                    release.wait()
                }
                if !sendAll(fd, response) { return }
            }
        }
    }

    func letFirstAnswer() { release.open() }
    func requests(on connection: Int) -> Int { seen.byConnection.withLock { $0[connection] ?? 0 } }
    var connections: Int { server.connections }
    var url: String { server.url }
    func stop() { server.stop() }
}

@Suite("Silent kept-alive connections (issue 20, row 4)")
struct SilentConnectionTests {
    let get = HTTPRequest(method: "GET", path: "/x")

    @Test(.timeLimit(.minutes(1)))
    func silentKeptAliveConnection_timesOut_isClosed_andTheNextAttemptGoesOnAFreshConnection() throws {
        let s = SilentAfterServer(silent: [0])
        defer { s.stop() }
        let client = try HTTPClient(baseURL: s.url)
        #expect(try client.send(get, timeout: .seconds(5)).status == 200)
        #expect(client.connectionsOpened == 1)

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
        let client = try HTTPClient(baseURL: s.url)
        #expect(try client.send(get, timeout: .seconds(5)).status == 200)
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

    @Test(.timeLimit(.minutes(1)))
    func renewOnASilentConnection_secondAttemptWithinTheBudgetSucceeds() throws {
        // The renew of issue 20 row 4 at the API-client level: a budget of
        // 2 s (time left to the renew deadline), attempts of at most half of
        // what is left; the second goes out on a fresh connection and the
        // renew lands well before the budget ends.
        let body = #"{"kind":"ConfigMap","metadata":{"name":"lock","resourceVersion":"7"}}"#
        let s = SilentAfterServer(silent: [0], response: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        defer { s.stop() }
        let kube = try KubeClient(config: KubeConfig(server: s.url, caFile: nil, tokenFile: nil, token: "t", userAgent: "test"))
        _ = try kube.get(.configMaps, namespace: "ns", name: "lock", timeout: .seconds(5))
        let budgetEnd = MonotonicClock.now + .seconds(2)
        var attempts = 0
        var result: JSON?
        while result == nil, MonotonicClock.now < budgetEnd {
            attempts += 1
            let left = MonotonicClock.now.duration(to: budgetEnd)
            do {
                result = try kube.update(.configMaps, namespace: "ns", name: "lock", body: ["metadata": ["name": "lock"]], timeout: left / 2)
            } catch {
                #expect(error.code == .timedOut, "\(error)")
            }
        }
        #expect(result?[path: "metadata", "resourceVersion"]?.stringValue == "7")
        #expect(attempts == 2)
        #expect(s.requests(on: 0) == 2)
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
