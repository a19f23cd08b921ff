import KLSystem

/// Sets O_NONBLOCK on a descriptor (our end of a child's pipe).
func setNonBlocking(_ fd: Int32) {
    let flags = fcntl(fd, F_GETFL)
    if flags >= 0 { _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK) }
}

/// Closes a descriptor once; EINTR from close is not retried (Linux closes it anyway).
func closeQuietly(_ fd: Int32) {
    if fd >= 0 { _ = close(fd) }
}
