#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import KLCore
import KLSystem
import Synchronization
import CShims

extension KubeResource {
    /// coordination.k8s.io/v1beta1 LeaseCandidate (coordinated leader election).
    public static let leaseCandidates = KubeResource(group: "coordination.k8s.io", version: "v1beta1", plural: "leasecandidates", namespaced: true)
}

/// The thin I/O driver of `CandidateSession` (`--coordinated`): performs its
/// requests with a `KubeClient` and its sleeps on the monotonic clock (a
/// `poll` on a wake-up pipe, so a stop request ends them). Every decision is
/// in the session. Start-up (`startUp`) runs on the caller's thread until the
/// candidate exists, a start-up error, or the first retry; the rest
/// (`startInBackground`) on a thread of its own.
public final class CandidateRunner: @unchecked Sendable {
    public enum StartUp: Sendable, Equatable {
        case ready
        /// The API did not answer usably yet; the background thread retries.
        case retrying
        case configurationError(String)
    }

    private var session: CandidateSession
    private let client: KubeClient
    private let logger: Logger
    private let stopRequested = Atomic(false)
    private let finished = Atomic(false)
    private let wakeRead: Int32, wakeWrite: Int32
    /// Where start-up left off: the next input, or the sleep to perform first.
    private var resume: (input: CandidateSession.Input, sleepUntil: MonotonicInstant?) = (.start, nil)
    public private(set) var outcome: CandidateSession.Outcome?

    public init(config: CandidateSession.Config, client: KubeClient, logger: Logger) {
        session = CandidateSession(config: config)
        self.client = client
        self.logger = logger
        var fds: [Int32] = [-1, -1]
        if fds.withUnsafeMutableBufferPointer({ cshims_pipe_cloexec_nonblock($0.baseAddress!) }) != 0 { fds = [-1, -1] }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    /// Creates the candidate. `.configurationError` means exit 2.
    public func startUp() -> StartUp {
        var input = CandidateSession.Input.start
        while true {
            for command in session.step(input, now: MonotonicClock.now, wall: wallNow()) {
                switch command {
                case .log(let level, let message, let fields): logger.log(level, message, fields.map { ($0.key, $0.value) })
                case .send(let request, let timeout): input = .answer(perform(request, timeout: timeout))
                case .sleep(let until):
                    resume = (.woke, until)
                    return session.phase == .running ? .ready : .retrying
                case .done(let outcome):
                    self.outcome = outcome
                    finished.store(true, ordering: .releasing)
                    if case .configurationError(let message) = outcome { return .configurationError(message) }
                    return .ready
                }
            }
        }
    }

    /// Keeps the candidate (pings, renews) until `stop`.
    public func startInBackground() {
        guard !finished.load(ordering: .acquiring) else { return }
        let rc = startDetachedThread { [self] in run() }
        if rc != 0 {
            logger.error("cannot start the LeaseCandidate thread: the election controller will stop electing this replica",
                         ("error", JSON(Int(rc))))
            finished.store(true, ordering: .releasing)
        }
    }

    /// Asks the thread to delete the candidate and waits for it, at most `limit`.
    public func stop(within limit: Duration) {
        stopRequested.store(true, ordering: .releasing)
        var byte: UInt8 = 1
        if wakeWrite >= 0 { _ = write(wakeWrite, &byte, 1) }
        let deadline = MonotonicClock.now + limit
        while !finished.load(ordering: .acquiring), MonotonicClock.now < deadline {
            blockingSleep(.milliseconds(10))
        }
    }

    private func run() {
        var (input, sleepUntil) = resume
        if let until = sleepUntil { pause(until: until) }
        while true {
            if stopRequested.load(ordering: .acquiring) { session.noteStopRequested() }
            for command in session.step(input, now: MonotonicClock.now, wall: wallNow()) {
                switch command {
                case .log(let level, let message, let fields): logger.log(level, message, fields.map { ($0.key, $0.value) })
                case .send(let request, let timeout): input = .answer(perform(request, timeout: timeout))
                case .sleep(let until):
                    pause(until: until)
                    input = .woke
                case .done(let outcome):
                    self.outcome = outcome
                    if case .notDeleted(let why) = outcome {
                        logger.warning("the LeaseCandidate was not deleted; the election controller stops electing it once it no longer answers pings",
                                       ("error", .string(why)))
                    }
                    finished.store(true, ordering: .releasing)
                    return
                }
            }
        }
    }

    /// Sleeps until `until` on the monotonic clock, or until a stop request.
    private func pause(until: MonotonicInstant) {
        while !stopRequested.load(ordering: .acquiring) {
            let left = MonotonicClock.now.duration(to: until)
            if left <= .zero { return }
            let ms: Int32 = left >= .seconds(1) ? 1000 : Int32(max(1, (left.nanoseconds + 999_999) / 1_000_000))
            if wakeRead < 0 { blockingSleep(.milliseconds(Int(ms))); continue }
            var fd = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
            if poll(&fd, 1, ms) > 0 {
                var buffer = [UInt8](repeating: 0, count: 16)
                _ = read(wakeRead, &buffer, buffer.count)
            }
        }
    }

    private func perform(_ request: CandidateSession.Request, timeout: Duration) -> LockSession.Answer {
        let config = session.config
        do throws(KubeError) {
            switch request {
            case .create(let object):
                return .ok(try client.create(.leaseCandidates, namespace: config.namespace, body: object, timeout: timeout))
            case .get:
                return .ok(try client.get(.leaseCandidates, namespace: config.namespace, name: config.name, timeout: timeout))
            case .update(let object):
                return .ok(try client.update(.leaseCandidates, namespace: config.namespace, name: config.name, body: object, timeout: timeout))
            case .delete:
                try client.delete(.leaseCandidates, namespace: config.namespace, name: config.name, timeout: timeout)
                return .ok(.null)
            }
        } catch {
            return .failed(LockSession.Failure(error))
        }
    }
}
