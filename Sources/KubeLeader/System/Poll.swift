#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShims
import KLCore

// The one wake-up pipe and the one poll(2) loop of every binary: the
// supervisor's signal inbox, the election's pause, the label and Events
// worker and the status server all wait here.

/// Calls `body` until it does not fail with EINTR (swift-system
/// `valueOrErrno`/`nothingOrErrno` retry loop). Returns the result and the
/// errno read on the line right after the failing call (0 on success).
@inline(__always)
public func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> (result: T, errno: Int32) {
    while true {
        let result = body()
        if result == -1 {
            let error = errno
            if error == EINTR { continue }
            return (result, error)
        }
        return (result, 0)
    }
}

/// poll(2) until one of `fds` is ready or `deadline` passes (nil: no limit),
/// on the real monotonic clock. EINTR is retried with the time left, so a
/// signal neither ends the wait early nor stretches it. Returns the number of
/// ready descriptors (0: the deadline passed) and 0, or -1 and the errno.
public func pollUntil(_ fds: inout [pollfd], deadline: MonotonicInstant?) -> (ready: Int32, errno: Int32) {
    let (ready, error) = retryingEINTR {
        poll(&fds, nfds_t(fds.count), deadline.map { pollTimeoutMilliseconds(until: $0) } ?? -1)
    }
    return (ready, error)
}

/// A pipe that wakes a thread out of `wait`: any number of `wake()` calls
/// between two waits is one wake-up. Both ends are non-blocking and
/// close-on-exec; they close with the object.
public final class WakePipe: Sendable {
    /// The end to poll for POLLIN (what `wait` polls; exposed for loops that
    /// poll more descriptors).
    public let readFD: Int32
    let writeFD: Int32

    /// Opens the pipe. - Throws: the errno of pipe2(2).
    public init() throws(WakePipe.Failure) {
        var fds: [Int32] = [-1, -1]
        guard fds.withUnsafeMutableBufferPointer({ cshims_pipe_cloexec_nonblock($0.baseAddress!) }) == 0 else {
            throw Failure(errno: errno)
        }
        readFD = fds[0]
        writeFD = fds[1]
    }

    /// pipe2(2) failed with `errno` (EMFILE, ENFILE).
    public struct Failure: Error, Sendable, Equatable {
        public var errno: Int32
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    /// Wakes the waiting thread (or the next wait). Thread-safe and
    /// async-signal-safe: one non-blocking write(2); a full pipe already
    /// means "wake".
    public func wake() {
        var byte: UInt8 = 1
        _ = retryingEINTR { write(writeFD, &byte, 1) }
    }

    /// Empties the pipe. True when a wake-up was pending.
    @discardableResult
    public func drain() -> Bool {
        var buffer = [UInt8](repeating: 0, count: 64)
        var woke = false
        while retryingEINTR({ read(readFD, &buffer, buffer.count) }).result > 0 { woke = true }
        return woke
    }

    /// `wait`, also ending when `fd` is readable (a negative `fd` never is:
    /// poll(2) ignores it). Returns whether a wake-up came (the pipe is
    /// drained) and whether `fd` is readable.
    public func wait(until deadline: MonotonicInstant, orReadable fd: Int32) -> (woke: Bool, readable: Bool) {
        var fds = [pollfd(fd: readFD, events: Int16(POLLIN), revents: 0), pollfd(fd: fd, events: Int16(POLLIN), revents: 0)]
        _ = pollUntil(&fds, deadline: deadline)
        return (fds[0].revents != 0 && drain(), fds[1].revents != 0)
    }

    /// Waits until `wake()` is called or `deadline` passes (nil: no limit)
    /// and drains the pipe. True when woken.
    @discardableResult
    public func wait(until deadline: MonotonicInstant?) -> Bool {
        var fds = [pollfd(fd: readFD, events: Int16(POLLIN), revents: 0)]
        _ = pollUntil(&fds, deadline: deadline)
        return drain()
    }
}
