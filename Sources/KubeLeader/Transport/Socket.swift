import KLCore
import KLSystem
import CShims

/// A byte stream to one server: plain TCP or TLS. Every call is bounded by
/// `deadline`; `read` returns 0 at end of stream.
///
/// Deadlines here, and everywhere in the HTTP layer, are on the real
/// monotonic clock (`MonotonicClock`), never an injected one: the kernel's
/// `poll` waits in real time. Callers with their own clock (the lock store)
/// convert their deadline into the same time left on the real clock. Used by one thread at a
/// time (the pool hands a channel to exactly one request).
protocol HTTPChannel: AnyObject, Sendable {
    /// `host:port` for messages.
    var endpoint: String { get }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicClock.Instant) throws(TransportError) -> Int
    /// Writes all bytes. `written` counts what the kernel accepted, so a
    /// caller can tell "nothing was sent" from "partly sent".
    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicClock.Instant, written: inout Int) throws(TransportError)
    /// True when an idle kept-alive connection still looks usable: the peer
    /// has not closed it and sent nothing unexpected.
    func isIdleUsable() -> Bool
    func close()
    /// The descriptor to poll for POLLIN before a read (-1: none).
    var pollFD: Int32 { get }
    /// Bytes already received and decoded but not yet read (TLS).
    var pendingBytes: Int { get }
}

extension HTTPChannel {
    var pollFD: Int32 { -1 }
    var pendingBytes: Int { 0 }
}

/// Throws `.timedOut` once `deadline` has passed. Called before every read and
/// write: a socket that always has a byte ready never reaches `poll`, so the
/// clock, not the socket, must end a request whatever the peer sends.
func checkDeadline(_ deadline: MonotonicClock.Instant, endpoint: String, what: String) throws(TransportError) {
    if MonotonicClock.now >= deadline {
        throw TransportError(.timedOut, "Timed out \(what) \(endpoint); check that the server is up and reachable.")
    }
}

/// Waits until `fd` is ready for `events` (POLLIN/POLLOUT) or the deadline
/// passes (then throws `.timedOut` naming `what`). `what` is a plain String
/// (callers pass literals): an autoclosure made the optimiser clone this
/// function for each caller (a larger binary).
func waitReady(fd: Int32, events: Int16, deadline: MonotonicClock.Instant, endpoint: String, what: String) throws(TransportError) {
    try checkDeadline(deadline, endpoint: endpoint, what: what)
    while true {
        var p = [pollfd(fd: fd, events: events, revents: 0)]
        let (r, e) = pollUntil(&p, deadline: deadline)
        if r > 0 { return }  // ready, or an error/hang-up the next call reports
        if r < 0 {
            throw TransportError(.connectFailed, "poll failed on the connection to \(endpoint): \(errnoMessage(e)).")
        }
        if MonotonicClock.now >= deadline {
            throw TransportError(.timedOut, "Timed out \(what) \(endpoint); check that the server is up and reachable.")
        }
    }
}

/// Host and port of a server, already split out of a URL. `host` has no brackets.
struct Endpoint: Sendable, Hashable {
    var host: String
    var port: Int
    /// `host:port`, with brackets around an IPv6 host.
    var text: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The socket options of every connection kube-leader opens (docs/kube-client.md,
/// "Dead connections"). A kept-alive connection can die without a FIN or RST
/// (the API server behind a ClusterIP was killed, conntrack still sends its
/// packets there): then nothing on the socket ever says so. These options let
/// the kernel end such a connection by itself; the per-request deadline ends
/// the request that is waiting on it, and the pool never hands the connection
/// out again.
///
/// - `TCP_NODELAY`: requests are written whole; no Nagle delay.
/// - `SO_KEEPALIVE` after 5 s idle, probes 2 s apart, 3 of them: an idle
///   connection (a pooled one, a standby's watch between events) whose peer is
///   gone is found out about 9 s after its last byte, not after the kernel's
///   2 h default. A live peer's kernel answers the probes: a slow or silent
///   API *process* is not a dead connection (the watch's own bookmark rule
///   covers that).
/// - `TCP_USER_TIMEOUT` 8 s: bytes we sent that stay unacknowledged for 8 s
///   end the connection (`ETIMEDOUT`); it also bounds the keep-alive probing
///   above. 8 s lets about five retransmissions go out (the retransmission
///   timer starts at 200 ms and doubles: 0.2 + 0.4 + 0.8 + 1.6 + 3.2 s), so
///   a lossy but working path is not cut; a request is a few KiB, which the
///   kernel takes into its send buffer at once, so no slow write waits on the
///   peer's window that long. The per-attempt deadline of a renew (at most half
///   the time left to the renew deadline, 10 s by default) usually ends a
///   stuck request first; this catches what no deadline watches.
enum TCPTuning {
    static let keepAliveIdleSeconds: Int32 = 5
    static let keepAliveIntervalSeconds: Int32 = 2
    static let keepAliveProbes: Int32 = 3
    static let userTimeoutMilliseconds: Int32 = 8000

    /// Sets the options on a new TCP socket. Failures are ignored: a kernel
    /// without one of them still connects (the deadlines keep every request bounded).
    static func apply(_ fd: Int32) {
        func set(_ level: Int32, _ name: Int32, _ value: Int32) {
            var v = value
            _ = setsockopt(fd, level, name, &v, socklen_t(MemoryLayout<Int32>.size))
        }
        let tcp = Int32(IPPROTO_TCP)
        set(tcp, TCP_NODELAY, 1)
        set(SOL_SOCKET, SO_KEEPALIVE, 1)
        set(tcp, TCP_KEEPIDLE, keepAliveIdleSeconds)
        set(tcp, TCP_KEEPINTVL, keepAliveIntervalSeconds)
        set(tcp, TCP_KEEPCNT, keepAliveProbes)
        set(tcp, TCP_USER_TIMEOUT, userTimeoutMilliseconds)
    }
}

/// Opens a non-blocking TCP connection, trying each address of `host` in
/// turn until one connects or the deadline passes. The name is resolved by
/// `resolver` (`HostResolver`, Resolver.swift), waiting no longer than the
/// deadline. Every socket gets `TCPTuning`'s options.
func tcpConnect(_ ep: Endpoint, deadline: MonotonicClock.Instant, resolver: HostResolver = .shared) throws(TransportError) -> Int32 {
    let addresses = try resolver.resolve(ep, deadline: deadline)
    var lastError = "no address"
    for address in addresses {
        try checkDeadline(deadline, endpoint: ep.text, what: "connecting to")
        let fd = socket(address.family, SocketType.stream | SocketType.nonBlockingCloexec, 0)
        if fd < 0 { lastError = errnoMessage(errno); continue }
        TCPTuning.apply(fd)
        var storage = address.storage
        var r = withUnsafePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, address.length) }
        }
        if r < 0 && errno == EINTR { r = -1; errno = EINPROGRESS }
        if r == 0 { return fd }
        let e = errno
        if e != EINPROGRESS {
            lastError = errnoMessage(e)
            closeDescriptor(fd)
            continue
        }
        do {
            try waitReady(fd: fd, events: Int16(POLLOUT), deadline: deadline, endpoint: ep.text, what: "connecting to")
        } catch {
            closeDescriptor(fd)
            throw error
        }
        var soError: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
        if soError == 0 { return fd }
        lastError = errnoMessage(soError)
        closeDescriptor(fd)
    }
    throw TransportError(.connectFailed, "Cannot connect to \(ep.text): \(lastError); check the server URL and that the server is running.")
}

/// Plain TCP (`http://`).
final class PlainChannel: HTTPChannel, @unchecked Sendable {
    let fd: Int32
    let endpoint: String
    private var closed = false

    init(fd: Int32, endpoint: String) {
        self.fd = fd
        self.endpoint = endpoint
    }

    deinit { close() }

    var pollFD: Int32 { closed ? -1 : fd }

    /// After `recv` or `send` failed with `e`: true to call it again (EINTR,
    /// or EAGAIN once the socket is ready for `events`), false for a real error.
    private func shouldRetry(_ e: Int32, events: Int16, deadline: MonotonicClock.Instant, what: String) throws(TransportError) -> Bool {
        if e == EINTR { return true }
        guard e == EAGAIN || e == EWOULDBLOCK else { return false }
        try waitReady(fd: fd, events: events, deadline: deadline, endpoint: endpoint, what: what)
        return true
    }

    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicClock.Instant) throws(TransportError) -> Int {
        while true {
            try checkDeadline(deadline, endpoint: endpoint, what: "waiting for a response from")
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            let e = errno
            if try shouldRetry(e, events: Int16(POLLIN), deadline: deadline, what: "waiting for a response from") { continue }
            throw TransportError(.connectionClosed, "The connection to \(endpoint) failed while reading: \(errnoMessage(e)).")
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicClock.Instant, written: inout Int) throws(TransportError) {
        var offset = 0
        while offset < bytes.count {
            try checkDeadline(deadline, endpoint: endpoint, what: "sending a request to")
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n >= 0 {
                offset += n
                written += n
                continue
            }
            let e = errno
            if try shouldRetry(e, events: Int16(POLLOUT), deadline: deadline, what: "sending a request to") { continue }
            throw TransportError(.connectionClosed, "The connection to \(endpoint) failed while sending: \(errnoMessage(e)).")
        }
    }

    func isIdleUsable() -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    func close() {
        if closed { return }
        closed = true
        closeDescriptor(fd)
    }
}
