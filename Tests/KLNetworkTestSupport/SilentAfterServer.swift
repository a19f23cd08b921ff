import Synchronization

/// Dead connections (docs/safety.md): a kept-alive connection goes silent (the API server
/// behind the ClusterIP died without a RST; conntrack still sends there)
/// while new connections are answered. Real sockets on loopback: the test
/// server answers the first `answered` requests of a connection, then reads
/// the next one and never answers it (the connection stays open, silent);
/// connections the test does not name as silent answer everything.
public final class SilentAfterServer: @unchecked Sendable {
    public let server: TestServer
    /// Requests each connection received (by accept order).
    private final class Counts: Sendable {
        let byConnection = Mutex<[Int: Int]>([:])
        func add(_ index: Int) { byConnection.withLock { $0[index, default: 0] += 1 } }
    }
    private let seen = Counts()
    private let release = Gate()
    /// Opened when connection 0 has read its first request (with `holdFirst`).
    public let firstArrived = Gate()

    /// - Parameters:
    ///   - silent: connections (by accept order) that go silent.
    ///   - answered: requests such a connection answers before it goes silent.
    ///   - holdFirst: connection 0 answers its first request only once
    ///     `letFirstAnswer()` is called (to get two connections into the pool).
    public init(silent: Set<Int>, answered: Int = 1, holdFirst: Bool = false, response: String = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") {
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

    public func letFirstAnswer() { release.open() }
    public func requests(on connection: Int) -> Int { seen.byConnection.withLock { $0[connection] ?? 0 } }
    public var connections: Int { server.connections }
    public var url: String { server.url }
    public func stop() { server.stop() }
}
