import KLCore
import KLSupport

/// The lock in the API server: one ConfigMap or Lease, read with a LIST
/// (`fieldSelector=metadata.name=NAME`), written with create/update carrying
/// the read `resourceVersion`, and watched by standbys so a release is seen
/// at once without polling.
///
/// Reads are LISTs, as client-go's reflector does, because the list's
/// `resourceVersion` is one the API server's watch history still has: an
/// object unchanged for a while cannot be watched from its own version (410
/// Expired, then the same again: issue 10, row 2). A Role without `list`
/// falls back to GET and watches without a version (the server starts with
/// the current object), with one warning.
///
/// Time: the watch's bookkeeping (the standby's deadline, when the watch
/// opened, its expiry, events per retry period) is on the injected `clock`,
/// the runner's; tests pass a `VirtualClock`. Request timeouts and socket
/// deadlines stay on the real monotonic clock (`MonotonicClock`): the
/// kernel's `poll` waits in real time. A deadline on `clock` is handed to
/// the socket layer as the same time left on the real clock (`realDeadline`).
///
/// Pacing: every watch failure (410, an answer that ends at once, junk or
/// unknown events, events for other objects, too many events) is thrown to
/// the `ElectionRunner`, which waits a retry period before the next read and
/// watch: at most one read and one watch per retry period after any error.
public final class KubeLockStore: LockStore {
    let client: KubeClient
    let kind: LockKind
    let namespace: String
    let name: String
    let logger: Logger
    /// Pacing of watches: a watch that ends sooner than this after it opened
    /// counts as a failure.
    let retryPeriod: Duration
    /// The open watch of a standby, and where it has got to.
    private var watch: KubeWatch?
    private var watchResourceVersion: String?
    private var watchOpenedAt: MonotonicClock.Instant?
    private var watchEvents = 0
    /// When the open watch must have ended by itself (server-side
    /// `timeoutSeconds` plus a margin): past it the connection is presumed
    /// half-open (dead without a FIN) and is reopened.
    private var watchExpiry: MonotonicClock.Instant?
    /// How long one watch request may stay open (the server ends it then).
    let watchSeconds: Int
    /// False once a LIST was forbidden (a Role with get/watch but no list).
    private var listAllowed = true
    /// Pods whose lookup failed with something other than 404 (warned once).
    private var podWarned = false
    /// The watch's time (see the type's comment). Default: the real monotonic clock.
    let clock: any BlockingClock<MonotonicInstant>

    public init(client: KubeClient, kind: LockKind, namespace: String, name: String, logger: Logger,
                retryPeriod: Duration = .seconds(2), watchSeconds: Int = 300,
                clock: any BlockingClock<MonotonicInstant> = MonotonicClock()) {
        self.clock = clock
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.logger = logger
        self.retryPeriod = retryPeriod
        self.watchSeconds = watchSeconds
    }

    var resource: KubeResource { kind == .configMap ? .configMaps : .leases }

    public var describe: String { "\(kind.rawValue) \(namespace)/\(name)" }

    var selector: String { "metadata.name=\(name)" }

    public func get(timeout: Duration) throws(KubeError) -> Election.Observation {
        // A read means the election needs a fresh view (start, lost race,
        // failed watch): the next watch starts from what this read returns.
        stopWatching()
        // The requests' budget: on the real clock, like their sockets.
        let deadline = MonotonicClock.now + timeout
        if listAllowed {
            var list: JSON?
            do {
                list = try client.list(resource, namespace: namespace, fieldSelector: selector, timeout: timeout)
            } catch {
                guard error.code == .forbidden else { throw error }
                listAllowed = false
                logger.warning("cannot list the lock; reading it with GET instead (add \"list\" next to \"watch\" in the Role so watches can resume)",
                               ("error", .string(error.description)))
            }
            if let list {
                let (observation, listRV) = try parseList(list)
                watchResourceVersion = listRV
                return try checkOwner(observation, deadline: deadline)
            }
        }
        let object: JSON
        do {
            object = try client.get(resource, namespace: namespace, name: name, timeout: max(.milliseconds(1), MonotonicClock.now.duration(to: deadline)))
        } catch {
            if error.code == .notFound { return .absent }
            throw error
        }
        guard object.objectValue != nil, object[path: "metadata", "name"]?.stringValue == name else {
            throw KubeError(.badResponse, "the API server answered the GET of \(describe) with something that is not that object")
        }
        watchResourceVersion = nil  // watch from the current state (no version): never 410
        return try checkOwner(.present(LockCodec.decode(kind, object: object)), deadline: deadline)
    }

    /// The lock from a LIST answer, and the list's resourceVersion.
    private func parseList(_ list: JSON) throws(KubeError) -> (Election.Observation, String) {
        guard let items = list["items"]?.arrayValue, let rv = list[path: "metadata", "resourceVersion"]?.stringValue, !rv.isEmpty else {
            throw KubeError(.badResponse, "the API server answered the LIST of \(describe) without items or resourceVersion")
        }
        let mine = items.filter { $0[path: "metadata", "name"]?.stringValue == name }
        guard mine.count <= 1, mine.count == items.count else {
            throw KubeError(.badResponse, "the API server answered the LIST of \(describe) with other objects (its fieldSelector was ignored)")
        }
        guard let object = mine.first else { return (.absent, rv) }
        return (.present(LockCodec.decode(kind, object: object)), rv)
    }

    /// An original kube-leader's lock is held while its owner Pod exists:
    /// GET the Pod; 404 frees the lock, any other answer keeps it held.
    private func checkOwner(_ observation: Election.Observation, deadline: MonotonicClock.Instant) throws(KubeError) -> Election.Observation {
        guard case .present(var snapshot) = observation, case .ownerPod(let pod, _) = snapshot.state else { return observation }
        do {
            _ = try client.get(.pods, namespace: namespace, name: pod, timeout: max(.milliseconds(1), MonotonicClock.now.duration(to: deadline)))
        } catch {
            if error.code == .notFound {
                snapshot.state = .ownerPod(pod, alive: false)
                snapshot.fingerprint += ":gone"
                logger.info("the original kube-leader's pod is gone; its lock is free", ("pod", .string(pod)))
                return .present(snapshot)
            }
            if !podWarned {
                podWarned = true
                logger.warning("cannot check the original kube-leader's pod; its lock stays held (grant \"get pods\")",
                               ("pod", .string(pod)), ("error", .string(error.description)))
            }
        }
        return observation
    }

    public func create(_ record: LeaderElectionRecord, timeout: Duration) throws(KubeError) -> LockSnapshot {
        let object = LockCodec.newObject(kind, namespace: namespace, name: name, record: record)
        do {
            return LockCodec.decode(kind, object: try client.create(resource, namespace: namespace, body: object, timeout: timeout))
        } catch {
            if error.code == .notFound {
                // A create cannot lose a race with 404: the namespace does not
                // exist, or the API URL's path is wrong. Retrying cannot help.
                throw KubeError(.namespaceMissing, "cannot create \(describe): the API server answered 404 Not Found (\(error.message)). "
                    + "Does namespace '\(namespace)' exist? Check --namespace / POD_NAMESPACE, and that --api-server has no extra path.")
            }
            throw error
        }
    }

    public func update(_ record: LeaderElectionRecord, base: LockSnapshot, timeout: Duration) throws(KubeError) -> LockSnapshot {
        let object = LockCodec.updatedObject(kind, base: base, record: record)
        return LockCodec.decode(kind, object: try client.update(resource, namespace: namespace, name: name, body: object, timeout: timeout))
    }

    /// Standby wait: the next change of the lock from a watch, or the
    /// deadline. A watch that ends normally (after its `timeoutSeconds`) is
    /// reopened from the last resourceVersion; every failure is thrown (the
    /// runner paces the next read and watch). An open that times out at the
    /// deadline is `.deadlineWhileOpening`, so the runner paces the next one.
    public func waitForChange(known: LockSnapshot?, deadline: MonotonicClock.Instant) throws(KubeError) -> LockChange {
        while clock.now < deadline {
            if let expiry = watchExpiry, clock.now >= expiry {
                logger.debug("watch outlived its server timeout; reopening")
                stopWatching(keepingVersion: true)
            }
            if watch == nil {
                // The open is cut to the deadline; a server that does not
                // answer it in 10 s before then is a failure.
                let openTimeout = min(.seconds(10), max(.milliseconds(1), clock.now.duration(to: deadline)))
                do {
                    watch = try client.watch(resource, namespace: namespace, fieldSelector: selector,
                                             resourceVersion: watchResourceVersion, timeoutSeconds: watchSeconds,
                                             timeout: openTimeout)
                    watchOpenedAt = clock.now
                    watchEvents = 0
                    watchExpiry = clock.now + .seconds(watchSeconds + 30)
                } catch {
                    if error.code == .timedOut, openTimeout < .seconds(10) { return .deadlineWhileOpening }
                    throw error
                }
            }
            let next: KubeWatch.Next
            let waitUntil = min(deadline, watchExpiry ?? deadline)
            do {
                next = try watch!.next(deadline: realDeadline(waitUntil))
            } catch {
                stopWatching()
                throw error
            }
            switch next {
            case .timedOut:
                // The socket waited until then in real time; a virtual clock
                // is moved there too (on the real clock it has passed: no-op).
                clock.sleep(until: waitUntil)
                if clock.now >= deadline { return .deadline }  // else the watch expired: reopen
            case .ended:
                // The server closed the watch (timeoutSeconds): reopen from where
                // we were. One that ends at once (an empty answer) is a failure.
                let early = watchOpenedAt.map { $0.duration(to: clock.now) < retryPeriod } ?? true
                stopWatching(keepingVersion: true)
                if early { throw KubeError(.watchFailed, "the watch of \(describe) ended right after it started") }
            case .event(let event):
                watchEvents += 1
                if let opened = watchOpenedAt {
                    let periods = Int(opened.duration(to: clock.now) / max(retryPeriod, .milliseconds(1)))
                    if watchEvents > 10 * (periods + 1) {
                        stopWatching()
                        throw KubeError(.watchFailed, "the watch of \(describe) sends events faster than 10 per retry period")
                    }
                }
                if let observation = try handle(event) { return .observed(observation) }
            }
        }
        return .deadline
    }

    /// One watch event: an observation, nil for a bookmark, thrown when it
    /// cannot be right (the watch is closed then).
    private func handle(_ event: KubeWatchEvent) throws(KubeError) -> Election.Observation? {
        func fail(_ why: String) -> KubeError {
            stopWatching()
            return KubeError(.watchFailed, "watch of \(describe): \(why)")
        }
        switch event.type {
        case "ADDED", "MODIFIED", "DELETED":
            guard event.object[path: "metadata", "name"]?.stringValue == name else {
                throw fail("a \(event.type) event for another object, or without metadata")
            }
            let snapshot = LockCodec.decode(kind, object: event.object)
            if !snapshot.resourceVersion.isEmpty { watchResourceVersion = snapshot.resourceVersion }
            if event.type == "DELETED" { return .absent }
            let deadline = MonotonicClock.now + min(.seconds(10), retryPeriod)
            return try checkOwner(.present(snapshot), deadline: deadline)
        case "BOOKMARK":
            if let rv = event.object[path: "metadata", "resourceVersion"]?.stringValue, !rv.isEmpty { watchResourceVersion = rv }
            return nil
        case "ERROR":
            // Typically 410 Expired: the version is too old. Read again (paced).
            let code = event.object["code"]?.intValue.map(String.init) ?? "?"
            throw fail("error \(code): \(event.object["message"]?.stringValue ?? "(no message)")")
        default:
            throw fail("unknown event type \(quoteForMessage(String(event.type.prefix(40))))")
        }
    }

    /// `deadline` (on `clock`) for the socket layer, which waits on the real
    /// monotonic clock: the same instant when `clock` is the real one, else
    /// the same time left from now.
    private func realDeadline(_ deadline: MonotonicInstant) -> MonotonicInstant {
        if clock is MonotonicClock { return deadline }
        return MonotonicClock.now + clock.now.duration(to: deadline)
    }

    public func stopWatching() { stopWatching(keepingVersion: false) }

    public var isWatching: Bool { watch != nil }

    private func stopWatching(keepingVersion: Bool) {
        watch?.close()
        watch = nil
        watchExpiry = nil
        watchOpenedAt = nil
        if !keepingVersion { watchResourceVersion = nil }
    }
}
