// The platform layer: the C library is chosen here, once, and re-exported,
// so a module that imports KLSystem gets Glibc or Musl without naming
// either; what differs between the two is spelled out here (`SocketType`).
#if canImport(Glibc)
@_exported import Glibc
#elseif canImport(Musl)
@_exported import Musl
#endif
import KLCore

// The small POSIX helpers every binary needs, written once. kube-leader's
// process and network layers and the companions call these instead of
// wrapping the C functions again.

/// The C library's text for an errno value ("No such file or directory").
/// The corresponding C function is `strerror`.
public func errnoMessage(_ code: Int32) -> String {
    strerror(code).map { String(cString: $0) } ?? "errno \(code)"
}

/// socket(2) type flags, which Glibc imports as enum values and Musl as plain
/// integers: callers write `SocketType.stream | SocketType.cloexec` on both.
public enum SocketType {
    #if canImport(Glibc)
    public static let stream = Int32(SOCK_STREAM.rawValue)
    public static let cloexec = Int32(SOCK_CLOEXEC.rawValue)
    public static let nonBlockingCloexec = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
    #else
    public static let stream = Int32(SOCK_STREAM)
    public static let cloexec = Int32(SOCK_CLOEXEC)
    public static let nonBlockingCloexec = Int32(SOCK_NONBLOCK) | Int32(SOCK_CLOEXEC)
    #endif
}

/// Milliseconds for poll(2): -1 for no timeout, 0 when the time is up, else
/// the remainder rounded up (at least 1, so a caller never spins), clamped
/// to Int32.max.
public func pollTimeoutMilliseconds(_ timeout: Duration?) -> Int32 {
    guard let timeout else { return -1 }
    if timeout <= .zero { return 0 }
    let (seconds, attoseconds) = timeout.components
    let millis = seconds.multipliedReportingOverflow(by: 1000)
    if millis.overflow { return Int32.max }
    let total = millis.partialValue + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000
    return Int32(clamping: max(total, 1))
}

/// Milliseconds for poll(2) until `deadline` on `clock` (0 when passed).
public func pollTimeoutMilliseconds(until deadline: MonotonicInstant,
                                    clock: MonotonicClock = MonotonicClock()) -> Int32 {
    pollTimeoutMilliseconds(clock.now.duration(to: deadline))
}

/// close(2), for code inside a type that has a `close()` of its own. EINTR
/// is not retried: Linux has closed the descriptor anyway.
public func closeDescriptor(_ fd: Int32) {
    _ = close(fd)
}

/// Blocks the calling thread for `d` (nothing for zero or less); a signal
/// does not cut the sleep short (EINTR restarts it with the time left).
/// The corresponding C function is `nanosleep`.
public func blockingSleep(_ d: Duration) {
    let nanos = d.nanoseconds
    guard nanos > 0 else { return }
    var request = timespec(tv_sec: Int(nanos / 1_000_000_000), tv_nsec: Int(nanos % 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

private final class ThreadBody: @unchecked Sendable {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Starts `body` on a new detached POSIX thread (it inherits the caller's
/// signal mask). Returns 0, or pthread_create's error number; then `body`
/// has not run and will not. `stackSize` nil: the system default.
@discardableResult
public func startDetachedThread(stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) -> Int32 {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    if let stackSize { pthread_attr_setstacksize(&attr, stackSize) }
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { raw in
        Unmanaged<ThreadBody>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, box)
    if rc != 0 { Unmanaged<ThreadBody>.fromOpaque(box).release() }
    return rc
}

/// Runs `body` on a new detached thread, or inline on the calling thread
/// when no thread can be started (out of threads: late work beats lost work).
public func runOnNewThread(stackSize: Int? = nil, _ body: @escaping @Sendable () -> Void) {
    if startDetachedThread(stackSize: stackSize, body) != 0 { body() }
}

/// Why a whole file could not be read.
public struct FileReadFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        /// open(2) failed with this errno.
        case cannotOpen(errno: Int32)
        /// read(2) failed with this errno.
        case cannotRead(errno: Int32)
        /// The file is larger than the reader's limit (bytes).
        case tooLarge(limit: Int)
    }
    public var path: String
    public var reason: Reason

    public init(path: String, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    /// The reason as a fragment: "No such file or directory", "larger than 1 MiB".
    public var description: String {
        switch reason {
        case .cannotOpen(let code), .cannotRead(let code): errnoMessage(code)
        case .tooLarge(let limit): "larger than \(sizeText(limit))"
        }
    }

    private func sizeText(_ bytes: Int) -> String {
        if bytes >= 1 << 20, bytes % (1 << 20) == 0 { return "\(bytes >> 20) MiB" }
        if bytes >= 1 << 10, bytes % (1 << 10) == 0 { return "\(bytes >> 10) KiB" }
        return "\(bytes) bytes"
    }
}

/// Why `path` cannot be opened for reading, or nil when it can (it is
/// opened and closed at once, nothing is read): a start-up check that a
/// mounted credential is there before anything depends on it.
public func openForReadingFailure(_ path: String) -> FileReadFailure? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return FileReadFailure(path: path, reason: .cannotOpen(errno: errno)) }
    close(fd)
    return nil
}

/// Reads a whole file, at most `limit` bytes (more is an error, never a
/// silent cut). Retries EINTR; the descriptor is CLOEXEC and always closed.
/// A directory fails with EISDIR; a device that never ends hits the limit.
public func readWholeFile(_ path: String, limit: Int = 1 << 20) -> Result<[UInt8], FileReadFailure> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return .failure(FileReadFailure(path: path, reason: .cannotOpen(errno: errno))) }
    defer { close(fd) }
    return readToEnd(fd: fd, path: path, limit: limit)
}

/// Reads an open descriptor (standard input: 0) to its end, at most `limit`
/// bytes; `path` names it in errors. The caller keeps and closes `fd`.
public func readToEnd(fd: Int32, path: String, limit: Int = 1 << 20) -> Result<[UInt8], FileReadFailure> {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let (n, code) = retryingEINTR { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
        if n < 0 { return .failure(FileReadFailure(path: path, reason: .cannotRead(errno: code))) }
        if n == 0 { return .success(bytes) }
        if n > limit - bytes.count { return .failure(FileReadFailure(path: path, reason: .tooLarge(limit: limit))) }
        bytes += chunk[0..<n]
    }
}

/// `readWholeFile` as UTF-8 text (invalid bytes become U+FFFD).
public func readWholeTextFile(_ path: String, limit: Int = 1 << 20) -> Result<String, FileReadFailure> {
    readWholeFile(path, limit: limit).map { String(decoding: $0, as: UTF8.self) }
}
