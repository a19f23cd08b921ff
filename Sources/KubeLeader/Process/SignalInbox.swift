import CShims
import Synchronization
import KLCore
import KLSystem

/// Receives signals synchronously, through a signalfd, instead of handlers
/// (a `@convention(c)` handler touching Swift state races), plus a wake pipe
/// so another thread can interrupt a `wait`.
///
/// Blocking is per thread and inherited by threads created later. Create the
/// inbox in `main` BEFORE any other thread starts (Dispatch, a Task, the
/// HTTP client), so every thread blocks these signals: a process-directed
/// signal is otherwise delivered to a thread that does not block it, where
/// the default action runs (SIGTERM ends the process; SIGCHLD is dropped).
///
/// SIGCHLD is always blocked as well. For a child that must not be missed
/// even so, `watchExit(of:)` adds its pidfd: its exit is reported as
/// `.signal(.child, senderPID: pid)` whether or not a SIGCHLD arrived.
///
/// The signals stay blocked after the inbox is gone; children started with
/// `ChildProcess.spawn` get an empty mask regardless.
public final class SignalInbox: @unchecked Sendable {
    public enum Event: Sendable, Equatable {
        /// A signal; `senderPID` is the sender's pid (ssi_pid; for SIGCHLD the child's).
        case signal(Signal, senderPID: Int32)
        /// `wake()` was called since the last `wait`.
        case wake
        /// A descriptor given to `watchReadable` turned readable (reported once).
        case readable(Int32)
    }

    /// The signals this inbox blocked and reports (SIGCHLD included).
    public let signals: [Signal]
    private let signalFD: Int32
    private let wakePipe: WakePipe
    /// pid -> pidfd of children whose exit `wait` reports.
    private let watched = Mutex<[Int32: Int32]>([:])
    /// Descriptors whose readability `wait` reports (once each).
    private let readables = Mutex<Set<Int32>>([])

    /// Blocks `signals` and SIGCHLD in the calling thread (pthread_sigmask)
    /// and opens the signalfd and the wake pipe.
    public init(signals: [Signal]) throws(ProcessError) {
        var all = signals
        if !all.contains(.child) { all.append(.child) }
        self.signals = all
        var mask = sigset_t()
        sigemptyset(&mask)
        for signal in all { sigaddset(&mask, signal.rawValue) }
        let rc = pthread_sigmask(SIG_BLOCK, &mask, nil)
        if rc != 0 {
            throw ProcessError(.ioFailed, errno: rc, context: "Cannot block signals \(all.map(\.name))")
        }
        let fd = cshims_signalfd(&mask)
        if fd < 0 {
            let error = errno
            throw ProcessError(.ioFailed, errno: error, context: "Cannot open a signalfd for \(all.map(\.name))")
        }
        do {
            wakePipe = try WakePipe()
        } catch {
            closeQuietly(fd)
            throw ProcessError(.ioFailed, errno: error.errno, context: "Cannot create the wake pipe of the signal inbox")
        }
        signalFD = fd
    }

    deinit {
        closeQuietly(signalFD)
        watched.withLock { for fd in $0.values { closeQuietly(fd) } }
    }

    /// Reports the exit of `child` as `.signal(.child, senderPID: child.pid)`
    /// once, through a pidfd, without reaping it. Returns false when the
    /// kernel has no pidfd_open (before Linux 5.3) or the pid is gone; SIGCHLD
    /// still arrives then, if every thread blocks it. Safe from any thread.
    @discardableResult
    public func watchExit(of child: ChildProcess) -> Bool {
        let fd = cshims_pidfd_open(child.pid)
        if fd < 0 { return false }
        watched.withLock { map in
            if let old = map[child.pid] { closeQuietly(old) }
            map[child.pid] = fd
        }
        wake()
        return true
    }

    /// Reports `.readable(fd)` once `fd` is readable (data, EOF or error),
    /// then forgets it; the caller keeps and closes the descriptor.
    public func watchReadable(_ fd: Int32) {
        readables.withLock { _ = $0.insert(fd) }
        wake()
    }

    /// Waits until a signal arrives, a watched child exits, `wake()` is
    /// called, or `timeout` passes (nil: no limit). Returns everything
    /// available at that moment, signals first; [] on timeout.
    ///
    /// Call from one thread at a time (the supervisor's loop).
    public func wait(timeout: Duration?) -> [Event] {
        let deadline = timeout.map { MonotonicClock.now + $0 }
        let children = watched.withLock { $0 }
        var fds = [pollfd(fd: signalFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakePipe.readFD, events: Int16(POLLIN), revents: 0)]
        for fd in children.values { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
        let readable = readables.withLock { $0 }
        for fd in readable { fds.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0)) }
        guard pollUntil(&fds, deadline: deadline).ready > 0 else { return [] }
        var events: [Event] = []
        // 1. Every pending signal (standard signals coalesce: at most one each).
        while true {
            var sender: Int32 = 0
            let number = cshims_signalfd_read(signalFD, &sender)
            if number <= 0 { break }
            events.append(.signal(Signal(rawValue: number), senderPID: sender))
        }
        // 2. Watched children that exited: reported once, then forgotten.
        for entry in fds.dropFirst(2).prefix(children.count) where entry.revents != 0 {
            let pid = watched.withLock { map -> Int32? in
                guard let (pid, fd) = map.first(where: { $0.value == entry.fd }) else { return nil }
                closeQuietly(fd)
                map[pid] = nil
                return pid
            }
            if let pid { events.append(.signal(.child, senderPID: pid)) }
        }
        // 3. Watched descriptors that turned readable: reported once.
        for entry in fds.dropFirst(2 + children.count) where entry.revents != 0 {
            readables.withLock { _ = $0.remove(entry.fd) }
            events.append(.readable(entry.fd))
        }
        // 4. The wake pipe, drained: any number of wake() calls is one event.
        if wakePipe.drain() { events.append(.wake) }
        return events
    }

    /// Interrupts a `wait` in another thread (or the next one). Thread-safe
    /// and async-signal-safe: one non-blocking write(2); a full pipe already
    /// means "wake".
    public func wake() { wakePipe.wake() }
}

extension Signal {
    /// Every signal kube-leader forwards to its child's group, with this C
    /// library's real-time range (`Signal.forwarded(realtime:)`).
    public static var forwardedHere: [Signal] {
        forwarded(realtime: Int32(cshims_sigrtmin())...Int32(cshims_sigrtmax()))
    }
}
