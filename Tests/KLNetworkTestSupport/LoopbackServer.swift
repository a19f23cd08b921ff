// Loopback test servers and small helpers shared by the transport tests
// (KLTransportTests) and the Kubernetes client tests (KLKubeTests): real
// sockets on 127.0.0.1, one pthread per connection.
import Synchronization
import KLSystem
import KLTestSupport

/// Runs `body` on a new detached pthread (test servers must not block the
/// Swift concurrency pool, which has only as many threads as cores).
public func startThread(_ body: @escaping @Sendable () -> Void) {
    let rc = KLSystem.startDetachedThread(body)
    precondition(rc == 0, "pthread_create failed")
}

/// Writes all bytes to a blocking socket; false when the peer is gone.
@discardableResult
public func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
    var off = 0
    while off < bytes.count {
        let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + off, bytes.count - off, Int32(MSG_NOSIGNAL)) }
        if n <= 0 { if n < 0 && errno == EINTR { continue }; return false }
        off += n
    }
    return true
}

@discardableResult
public func sendAll(_ fd: Int32, _ text: String) -> Bool { sendAll(fd, Array(text.utf8)) }

/// Reads one request head (up to the blank line) from a blocking socket, plus
/// a body of the given Content-Length. nil when the peer closed first.
public func readRequest(_ fd: Int32) -> (head: String, body: [UInt8])? {
    var data: [UInt8] = []
    var byte: UInt8 = 0
    while true {
        let n = recv(fd, &byte, 1, 0)
        if n <= 0 { if n < 0 && errno == EINTR { continue }; return nil }
        data.append(byte)
        if data.count >= 4 && data.suffix(4) == [13, 10, 13, 10] { break }
    }
    let head = String(decoding: data, as: UTF8.self)
    var length = 0
    for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
        length = Int(line.dropFirst(15).trimmingPrefix(" ")) ?? 0
    }
    var body: [UInt8] = []
    while body.count < length {
        let n = recv(fd, &byte, 1, 0)
        if n <= 0 { return nil }
        body.append(byte)
    }
    return (head, body)
}

/// A plain TCP server on 127.0.0.1 with an ephemeral port, one pthread per
/// accepted connection. `handler` gets the connection socket (blocking) and
/// its 0-based index; the socket is closed when the handler returns.
public final class TestServer: @unchecked Sendable {
    public let listenFD: Int32
    public let port: Int
    private let accepted = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    public var connections: Int { accepted.load(ordering: .sequentiallyConsistent) }
    public var url: String { "http://127.0.0.1:\(port)" }

    public init(_ handler: @escaping @Sendable (Int32, Int) -> Void) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let r = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        precondition(r == 0, "bind failed")
        listen(fd, 64)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listenFD = fd
        port = Int(UInt16(bigEndian: addr.sin_port))
        startThread { [self] in
            while !stopped.load(ordering: .sequentiallyConsistent) {
                var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 50) <= 0 { continue }
                let c = accept(fd, nil, nil)
                if c < 0 { continue }
                var one: Int32 = 1
                setsockopt(c, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                let index = accepted.add(1, ordering: .sequentiallyConsistent).oldValue
                startThread {
                    handler(c, index)
                    close(c)
                }
            }
            close(fd)
        }
    }

    public func stop() { stopped.store(true, ordering: .sequentiallyConsistent) }
    deinit { stop() }
}

/// A server whose every connection reads one request, sends `response`, then
/// runs `then` on the socket; the socket closes when it returns.
public func oneResponseServer(_ response: String, then: @escaping @Sendable (Int32) -> Void = { _ in }) -> TestServer {
    TestServer { fd, _ in
        _ = readRequest(fd)
        sendAll(fd, response)
        then(fd)
    }
}

/// A pipe used to release a server thread at a point the test chooses.
public final class Gate: @unchecked Sendable {
    private var fds: [Int32] = [0, 0]
    public init() { precondition(pipe(&fds) == 0) }
    public func open() { var b: UInt8 = 1; _ = write(fds[1], &b, 1) }
    /// Waits until opened (or 10 s, so a failing test cannot hang the suite).
    public func wait() {
        var p = pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, 10_000) > 0 { var b: UInt8 = 0; _ = read(fds[0], &b, 1) }
    }
    deinit { close(fds[0]); close(fds[1]) }
}

/// Runs a shell script; returns its exit status.
@discardableResult
public func shell(_ script: String) -> Int32 {
    var pid: pid_t = 0
    let args = ["/bin/sh", "-c", script]
    var cargs: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
    defer { for p in cargs { free(p) } }
    guard posix_spawn(&pid, "/bin/sh", nil, nil, &cargs, nil) == 0 else { return -1 }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    return (status >> 8) & 0xff
}

/// A fresh temporary directory.
public func makeTempDir(_ prefix: String) -> String { makeTemporaryDirectory(prefix: prefix) }

public func readTextFile(_ path: String) -> String? {
    guard case .success(let text) = readWholeTextFile(path, limit: .max) else { return nil }
    return text
}

public func writeTextFile(_ path: String, _ text: String) {
    let f = fopen(path, "w")!
    _ = text.utf8CString.withUnsafeBufferPointer { fputs($0.baseAddress!, f) }
    fclose(f)
}

/// How much later than its deadline a timed-out call may return: poll wakes
/// up on time, but this machine's 2 cores are shared by parallel builds.
/// A hang would take the full test time limit.
public let timingSlack: Duration = .milliseconds(700)
