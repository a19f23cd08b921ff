import KLSystem

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
    runOnNewThread {
        var set = blocked
        var signal: Int32 = 0
        while sigwait(&set, &signal) != 0 {}
        handler(signal)
    }
}
