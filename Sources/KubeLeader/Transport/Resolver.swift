import KLCore
import KLSystem
import Synchronization
import CShims

// Name resolution for `tcpConnect` (Socket.swift): host name to addresses,
// bounded by the caller's deadline. Socket.swift connects, reads and writes;
// this file only turns an `Endpoint` into `ResolvedAddress`es.

/// True for a numeric IPv4 or IPv6 address (no brackets): it needs no DNS.
func isIPAddress(_ host: String) -> Bool {
    var buf = [UInt8](repeating: 0, count: 16)
    return inet_pton(AF_INET, host, &buf) == 1 || inet_pton(AF_INET6, host, &buf) == 1
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
private final class PendingLookup: Sendable {
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
