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

/// Blocks SIGTERM and SIGINT in the calling thread (and the threads it starts
/// later), then waits for one of them on a thread of its own and calls
/// `handler` there. Call before starting any other thread.
/// The corresponding C functions are `pthread_sigmask` and `sigwait`.
public func onTerminationSignal(_ handler: @escaping @Sendable (Int32) -> Void) {
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGTERM)
    sigaddset(&set, SIGINT)
    pthread_sigmask(SIG_BLOCK, &set, nil)
    let blocked = set
    startThread {
        var set = blocked
        var signal: Int32 = 0
        while sigwait(&set, &signal) != 0 {}
        handler(signal)
    }
}
