import KLSystem

// The fake's few operating-system calls: threads, sleep, monotonic time and
// random bytes.

/// Starts a detached POSIX thread running `body`.
///
/// The fake serves one connection per thread with blocking I/O: simple to
/// reason about, and 500 idle watch connections cost only their stacks.
func spawnThread(_ body: @escaping @Sendable () -> Void) {
    // Out of threads: run inline rather than drop the work silently.
    runOnNewThread(stackSize: 2 << 20, body)
}

/// Sleeps for a number of milliseconds (fault latency only; never in tests).
func sleepMillis(_ ms: Int) {
    blockingSleep(.milliseconds(ms))
}

/// Monotonic milliseconds, for deadlines.
func monotonicMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}

/// Fills a buffer from the kernel's random source.
func getrandomBytes(_ buffer: UnsafeMutableRawBufferPointer) -> Bool {
    let fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    return read(fd, buffer.baseAddress, buffer.count) == buffer.count
}
