#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore
import KLSupport

/// A byte stream to one server: plain TCP or TLS. Every call is bounded by
/// `deadline`; `read` returns 0 at end of stream. Used by one thread at a
/// time (the pool hands a channel to exactly one request).
protocol HTTPChannel: AnyObject, Sendable {
    /// `host:port` for messages.
    var endpoint: String { get }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicClock.Instant) throws(HTTPError) -> Int
    /// Writes all bytes. `written` counts what the kernel accepted, so a
    /// caller can tell "nothing was sent" from "partly sent".
    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicClock.Instant, written: inout Int) throws(HTTPError)
    /// True when an idle kept-alive connection still looks usable: the peer
    /// has not closed it and sent nothing unexpected.
    func isIdleUsable() -> Bool
    func close()
}

/// Milliseconds left until `deadline` for poll(2), rounded up; 0 when passed.
func pollMillis(until deadline: MonotonicClock.Instant) -> Int32 {
    let left = deadline - MonotonicClock.now
    if left <= .zero { return 0 }
    let (s, atto) = left.components
    let ms = s * 1000 + (atto + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: ms)
}

func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// Formats a duration for messages ("5s", "250ms").
func durationText(_ d: Duration) -> String {
    let (s, atto) = d.components
    let ms = s * 1000 + atto / 1_000_000_000_000_000
    if ms % 1000 == 0 { return "\(ms / 1000)s" }
    return "\(ms)ms"
}

/// Waits until `fd` is ready for `events` (POLLIN/POLLOUT) or the deadline
/// passes (then throws `.timedOut` naming `what`).
func waitReady(fd: Int32, events: Int16, deadline: MonotonicClock.Instant, endpoint: String, what: @autoclosure () -> String) throws(HTTPError) {
    while true {
        var p = pollfd(fd: fd, events: events, revents: 0)
        let ms = pollMillis(until: deadline)
        let r = poll(&p, 1, ms)
        if r > 0 { return }  // ready, or an error/hang-up the next call reports
        if r < 0 {
            let e = errno
            if e == EINTR { continue }
            throw HTTPError(.connectFailed, "poll failed on the connection to \(endpoint): \(errnoText(e)).")
        }
        if ms == 0 || MonotonicClock.now >= deadline {
            throw HTTPError(.timedOut, "Timed out \(what()) \(endpoint); check that the server is up and reachable.")
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

/// Opens a non-blocking TCP connection, trying each address of `host` in
/// turn until one connects or the deadline passes.
func tcpConnect(_ ep: Endpoint, deadline: MonotonicClock.Instant) throws(HTTPError) -> Int32 {
    var hints = addrinfo()
    hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
    hints.ai_family = AF_UNSPEC
    if isIPAddress(ep.host) { hints.ai_flags = AI_NUMERICHOST }
    var list: UnsafeMutablePointer<addrinfo>?
    let rc = getaddrinfo(ep.host, String(ep.port), &hints, &list)
    if rc != 0 {
        throw HTTPError(.connectFailed, "Cannot resolve the host of \(ep.text): \(String(cString: gai_strerror(rc))); check the server URL (DNS names need /etc/resolv.conf).")
    }
    defer { freeaddrinfo(list) }
    var lastError = "no address"
    var cursor = list
    while let ai = cursor {
        cursor = ai.pointee.ai_next
        let fd = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { lastError = errnoText(errno); continue }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var r = connect(fd, ai.pointee.ai_addr, ai.pointee.ai_addrlen)
        if r < 0 && errno == EINTR { r = -1; errno = EINPROGRESS }
        if r == 0 { return fd }
        let e = errno
        if e != EINPROGRESS {
            lastError = errnoText(e)
            Glibc.close(fd)
            continue
        }
        do {
            try waitReady(fd: fd, events: Int16(POLLOUT), deadline: deadline, endpoint: ep.text, what: "connecting to")
        } catch {
            Glibc.close(fd)
            throw error
        }
        var soError: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &soError, &len)
        if soError == 0 { return fd }
        lastError = errnoText(soError)
        Glibc.close(fd)
    }
    throw HTTPError(.connectFailed, "Cannot connect to \(ep.text): \(lastError); check the server URL and that the server is running.")
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

    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicClock.Instant) throws(HTTPError) -> Int {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n >= 0 { return n }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK {
                try waitReady(fd: fd, events: Int16(POLLIN), deadline: deadline, endpoint: endpoint, what: "waiting for a response from")
                continue
            }
            throw HTTPError(.connectionClosed, "The connection to \(endpoint) failed while reading: \(errnoText(e)).")
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicClock.Instant, written: inout Int) throws(HTTPError) {
        var offset = 0
        while offset < bytes.count {
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if n >= 0 {
                offset += n
                written += n
                continue
            }
            let e = errno
            if e == EINTR { continue }
            if e == EAGAIN || e == EWOULDBLOCK {
                try waitReady(fd: fd, events: Int16(POLLOUT), deadline: deadline, endpoint: endpoint, what: "sending a request to")
                continue
            }
            throw HTTPError(.connectionClosed, "The connection to \(endpoint) failed while sending: \(errnoText(e)).")
        }
    }

    func isIdleUsable() -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) == 0
    }

    func close() {
        if closed { return }
        closed = true
        Glibc.close(fd)
    }
}
