import KLCore
import KLSystem
import Synchronization
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
/// function for each caller (issue 24).
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

func isIPAddress(_ host: String) -> Bool {
    var buf = [UInt8](repeating: 0, count: 16)
    return inet_pton(AF_INET, host, &buf) == 1 || inet_pton(AF_INET6, host, &buf) == 1
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
/// `resolver`, waiting no longer than the deadline. Every socket gets
/// `TCPTuning`'s options.
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

/// One address of a resolved host, copied out of getaddrinfo's list.
struct ResolvedAddress: @unchecked Sendable {
    var family: Int32
    var storage: sockaddr_storage
    var length: socklen_t
}

/// Resolves host names with a deadline. `getaddrinfo` cannot be interrupted
/// (while DNS is down it blocks for its own timeouts: 5 s per try and server
/// in resolv.conf's defaults), so a name is looked up on a helper thread and
/// the caller waits for it with `poll` on a pipe, only until its deadline.
///
/// - At most one look-up per host and port is in flight: a caller that comes
///   while one runs waits for that one instead of starting another, so a
///   resolver that hangs costs one blocked thread, not one per retry.
/// - A look-up that ends after its caller gave up is not wasted: its result
///   is kept for the next caller (once; a result older than `reuseFor` is
///   dropped), so a slow but working DNS still lets a request through.
/// - Numeric IPs (the in-cluster case) are converted at once, no thread.
///
/// Connections are kept alive, so a renew normally resolves nothing; this
/// bounds the rare new connection.
final class HostResolver: Sendable {
    typealias Lookup = @Sendable (Endpoint) -> Result<[ResolvedAddress], TransportError>

    /// The process-wide resolver over `getaddrinfo`.
    static let shared = HostResolver(lookup: systemLookup)

    let lookup: Lookup
    let reuseFor: Duration
    private let pending = Mutex<[Endpoint: PendingLookup]>([:])
    private let started = Atomic<Int>(0)

    init(lookup: @escaping Lookup, reuseFor: Duration = .seconds(30)) {
        self.lookup = lookup
        self.reuseFor = reuseFor
    }

    /// Look-ups started so far (tests).
    var lookupsStarted: Int { started.load(ordering: .relaxed) }

    /// The addresses of `ep`, or `.timedOut` at the deadline, or `.connectFailed`.
    func resolve(_ ep: Endpoint, deadline: MonotonicClock.Instant) throws(TransportError) -> [ResolvedAddress] {
        if isIPAddress(ep.host) { return try systemLookup(ep).get() }  // AI_NUMERICHOST: never blocks
        let now = MonotonicClock.now
        let job = try pending.withLock { (map) throws(TransportError) -> PendingLookup in
            if let job = map[ep], !job.isStale(now: now, reuseFor: reuseFor) { return job }
            let job = try PendingLookup()
            map[ep] = job
            started.add(1, ordering: .relaxed)
            let lookup = self.lookup
            try startHelperThread(ep) { job.finish(lookup(ep)) }
            return job
        }
        var ready = [pollfd(fd: job.readFD, events: Int16(POLLIN), revents: 0)]
        while true {
            let (r, _) = pollUntil(&ready, deadline: deadline)
            if r > 0 { break }
            if r < 0 || MonotonicClock.now >= deadline {
                throw TransportError(.timedOut, "Timed out resolving the host name of \(ep.text): DNS did not answer in time; check /etc/resolv.conf and the server URL (a numeric IP needs no DNS).")
            }
        }
        // Done: the result is used once; the next caller looks the name up again.
        pending.withLock { map in if map[ep] === job { map[ep] = nil } }
        return try job.result().get()
    }
}

/// A look-up running (or finished) on a helper thread; its pipe becomes
/// readable when it is done, for every waiter (the byte is never consumed).
final class PendingLookup: Sendable {
    /// Readable once the result is in (never drained: every waiter sees it).
    private let done: WakePipe
    var readFD: Int32 { done.readFD }
    private let state = Mutex<(Result<[ResolvedAddress], TransportError>?, MonotonicClock.Instant?)>((nil, nil))

    init() throws(TransportError) {
        do {
            done = try WakePipe()
        } catch {
            throw TransportError(.connectFailed, "Cannot create a pipe for a host name look-up: \(errnoMessage(error.errno)).")
        }
    }

    func finish(_ result: Result<[ResolvedAddress], TransportError>) {
        state.withLock { $0 = (result, MonotonicClock.now) }
        done.wake()
    }

    func result() -> Result<[ResolvedAddress], TransportError> {
        state.withLock { $0.0 } ?? .failure(TransportError(.connectFailed, "A host name look-up ended without a result."))
    }

    /// A finished look-up older than `reuseFor` is not handed out again.
    func isStale(now: MonotonicClock.Instant, reuseFor: Duration) -> Bool {
        guard let at = state.withLock({ $0.1 }) else { return false }
        return now - at > reuseFor
    }
}

/// Runs `body` on a new detached thread (it inherits the caller's signal mask).
private func startHelperThread(_ ep: Endpoint, _ body: @escaping @Sendable () -> Void) throws(TransportError) {
    let rc = KLSystem.startDetachedThread(body)
    if rc != 0 {
        throw TransportError(.connectFailed, "Cannot start a thread to resolve the host of \(ep.text): \(errnoMessage(rc)).")
    }
}

/// `getaddrinfo` for a TCP connection, addresses copied out.
func systemLookup(_ ep: Endpoint) -> Result<[ResolvedAddress], TransportError> {
    var hints = addrinfo()
    hints.ai_socktype = SocketType.stream
    hints.ai_family = AF_UNSPEC
    if isIPAddress(ep.host) { hints.ai_flags = AI_NUMERICHOST }
    var list: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(ep.host, String(ep.port), &hints, &list)
    if rc != 0 {
        return .failure(TransportError(.connectFailed, "Cannot resolve the host of \(ep.text): \(String(cString: gai_strerror(rc))); check the server URL (DNS names need /etc/resolv.conf)."))
    }
    defer { freeaddrinfo(list) }
    var out: [ResolvedAddress] = []
    var cursor = list
    while let ai = cursor {
        cursor = ai.pointee.ai_next
        guard let addr = ai.pointee.ai_addr, Int(ai.pointee.ai_addrlen) <= MemoryLayout<sockaddr_storage>.size else { continue }
        var storage = sockaddr_storage()
        withUnsafeMutableBytes(of: &storage) { dst in
            dst.copyMemory(from: UnsafeRawBufferPointer(start: addr, count: Int(ai.pointee.ai_addrlen)))
        }
        out.append(ResolvedAddress(family: ai.pointee.ai_family, storage: storage, length: ai.pointee.ai_addrlen))
    }
    if out.isEmpty {
        return .failure(TransportError(.connectFailed, "Cannot resolve the host of \(ep.text): no address; check the server URL."))
    }
    return .success(out)
}
