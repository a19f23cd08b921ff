import Glibc

/// Starts a detached POSIX thread running `body`.
///
/// The fake serves one connection per thread with blocking I/O: simple to
/// reason about, and 500 idle watch connections cost only their stacks.
func spawnThread(_ body: @escaping @Sendable () -> Void) {
    final class Box { let body: @Sendable () -> Void; init(_ b: @escaping @Sendable () -> Void) { body = b } }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    defer { pthread_attr_destroy(&attr) }
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    pthread_attr_setstacksize(&attr, 2 << 20)
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context)
    if rc != 0 {
        // Out of threads: run inline rather than drop the work silently.
        Unmanaged<Box>.fromOpaque(context).takeRetainedValue().body()
    }
}

/// Sleeps for a number of milliseconds (fault latency only; never in tests).
func sleepMillis(_ ms: Int) {
    guard ms > 0 else { return }
    var ts = timespec(tv_sec: ms / 1000, tv_nsec: (ms % 1000) * 1_000_000)
    var rem = timespec()
    while nanosleep(&ts, &rem) == -1 && errno == EINTR { ts = rem }
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
