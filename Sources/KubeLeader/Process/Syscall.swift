#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Calls `body` until it does not fail with EINTR (swift-system
/// `valueOrErrno`/`nothingOrErrno` retry loop). Returns the result and the
/// errno read on the line right after the failing call (0 on success).
@inline(__always)
func retryingEINTR<T: BinaryInteger>(_ body: () -> T) -> (result: T, errno: Int32) {
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

/// Sets O_NONBLOCK on a descriptor (our end of a child's pipe).
func setNonBlocking(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
}

/// Closes a descriptor once; EINTR from close is not retried (Linux closes it anyway).
func closeQuietly(_ fd: Int32) {
    if fd >= 0 { _ = close(fd) }
}
