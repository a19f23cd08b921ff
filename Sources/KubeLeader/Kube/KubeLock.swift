import KLCore
import KLTransport
import KLSystem

/// The lock's I/O for the election thread: performs the requests of a
/// `LockSession` (KLCore, where every decision is) against the API server and
/// keeps the one open watch of a standby. It decides nothing: it turns a
/// `LockSession.Request` into a `KubeClient` call and the outcome into a
/// `LockSession.Answer`, and a `KubeError` into the pure `LockSession.Failure`
/// the session classifies.
public protocol LockStore: AnyObject {
    /// The lock (kind, namespace, name) and the watch's server timeout.
    var lockConfig: LockSession.Config { get }
    func send(_ request: LockSession.Request, timeout: Duration) -> LockSession.Answer
    /// The next line of the open watch, until `until` (real monotonic time).
    func readWatch(until: MonotonicClock.Instant) -> LockSession.WatchRead
    /// Closes the open watch, if any.
    func closeWatch()
    /// The descriptor to poll, with the host's wake-up pipe, before
    /// `readWatch` (nil: read at once).
    var watchWaitFD: Int32? { get }
    /// The session's report for the status surfaces (`StatusReportingLockStore`).
    func report(_ report: LockSession.Report, now: MonotonicClock.Instant)
}

extension LockStore {
    public var describe: String { lockConfig.describe }
    public func report(_ report: LockSession.Report, now: MonotonicClock.Instant) {}
    public var watchWaitFD: Int32? { nil }
}

/// The lock in the API server: one ConfigMap or Lease. Reads are LISTs with
/// `fieldSelector=metadata.name=NAME` (or GETs after a 403), writes carry the
/// read `resourceVersion`, and standbys watch it (see `LockSession`).
public final class KubeLockStore: LockStore {
    let client: KubeClient
    public let lockConfig: LockSession.Config
    private var watch: KubeWatch?

    public init(client: KubeClient, kind: LockKind, namespace: String, name: String, logger: Logger,
                retryPeriod: Duration = .seconds(2), watchSeconds: Int = 300) {
        self.client = client
        lockConfig = LockSession.Config(kind: kind, namespace: namespace, name: name, requestTimeout: client.requestTimeout,
                                        watchSeconds: watchSeconds)
    }

    var resource: KubeResource { lockConfig.kind == .configMap ? .configMaps : .leases }
    var namespace: String { lockConfig.namespace }
    var name: String { lockConfig.name }

    public func send(_ request: LockSession.Request, timeout: Duration) -> LockSession.Answer {
        do throws(KubeError) {
            switch request {
            case .list:
                return .ok(try client.list(resource, namespace: namespace, fieldSelector: lockConfig.fieldSelector, timeout: timeout))
            case .get:
                return .ok(try client.get(resource, namespace: namespace, name: name, timeout: timeout))
            case .getPod(let pod):
                return .ok(try client.get(.pods, namespace: namespace, name: pod, timeout: timeout))
            case .create(let object):
                return .ok(try client.create(resource, namespace: namespace, body: object, timeout: timeout))
            case .update(let object):
                return .ok(try client.update(resource, namespace: namespace, name: name, body: object, timeout: timeout))
            case .watch(let resourceVersion, let timeoutSeconds):
                closeWatch()
                watch = try client.watch(resource, namespace: namespace, fieldSelector: lockConfig.fieldSelector,
                                         resourceVersion: resourceVersion, timeoutSeconds: timeoutSeconds, timeout: timeout)
                return .ok(.null)
            }
        } catch {
            return .failed(LockSession.Failure(error))
        }
    }

    public func readWatch(until: MonotonicClock.Instant) -> LockSession.WatchRead {
        guard let watch else { return .failed(LockSession.Failure(.transport, "no watch of \(describe) is open")) }
        do {
            switch try watch.nextLine(deadline: until) {
            case .line(let line): return .line(line)
            case .timedOut: return .timedOut
            case .ended: return .ended
            }
        } catch {
            closeWatch()
            return .failed(LockSession.Failure(error))
        }
    }

    public var watchWaitFD: Int32? { watch?.waitFD }

    public func closeWatch() {
        watch?.close()
        watch = nil
    }
}

extension LockSession.Failure {
    /// The pure description of a `KubeError`: the HTTP status when the API
    /// server answered, else the kind of trouble; decided by the code, never
    /// by the message text.
    public init(_ error: KubeError) {
        let kind: Kind
        switch error.code {
        case .notFound: kind = .status(404)
        case .alreadyExists, .conflict: kind = .status(409)
        case .unauthorized: kind = error.httpStatus == nil ? .credentials : .status(401)
        case .forbidden: kind = .status(403)
        case .gone: kind = .status(410)
        case .invalid: kind = .status(error.httpStatus ?? 422)
        case .tooManyRequests: kind = .status(429)
        case .serverError: kind = .status(error.httpStatus ?? 500)
        case .timedOut: kind = .timedOut
        case .namespaceMissing: kind = .status(404)
        case .certificateRejected, .caUnusable: kind = .untrustedServer
        case .badResponse, .invalidURL, .connectFailed, .connectionClosed, .protocolError, .tls, .tooLarge,
             .invalidRequest, .watchFailed:
            kind = .transport
        }
        self.init(kind, error.description)
    }
}
