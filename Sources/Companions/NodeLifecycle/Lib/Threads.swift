#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Sleeps the calling thread for `d` (restarts after EINTR).
public func blockingSleep(_ d: Duration) {
    let (s, atto) = d.components
    var req = timespec(tv_sec: Int(s), tv_nsec: Int(atto / 1_000_000_000))
    var rem = timespec()
    while nanosleep(&req, &rem) != 0 && errno == EINTR { req = rem }
}

private final class ThreadBody {
    let body: @Sendable () -> Void
    init(_ body: @escaping @Sendable () -> Void) { self.body = body }
}

/// Runs `body` on a new detached POSIX thread. Drains block on network calls
/// and sleeps for minutes, so they get their own threads rather than the
/// concurrency pool's few.
public func startThread(_ body: @escaping @Sendable () -> Void) {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(&thread, nil, { arg in
        let body = Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue()
        body.body()
        return nil
    }, box)
    if rc != 0 {
        // Could not start a thread: run inline rather than lose the work.
        Unmanaged<ThreadBody>.fromOpaque(box).takeRetainedValue().body()
    } else {
        pthread_detach(thread)
    }
}
