import KLCore
import KLSupport

/// The lock in the API server: one ConfigMap or Lease, read with GET, written
/// with create/update carrying the read `resourceVersion`, and watched by
/// standbys so a release is seen at once without polling.
public final class KubeLockStore: LockStore {
    let client: KubeClient
    let kind: LockKind
    let namespace: String
    let name: String
    let logger: Logger
    /// The open watch of a standby, and where it has got to.
    private var watch: KubeWatch?
    private var watchResourceVersion: String?
    /// When the open watch must have ended by itself (server-side
    /// `timeoutSeconds` plus a margin): past it the connection is presumed
    /// half-open (dead without a FIN) and is reopened.
    private var watchExpiry: MonotonicClock.Instant?
    /// How long one watch request may stay open (the server ends it then).
    let watchSeconds: Int

    public init(client: KubeClient, kind: LockKind, namespace: String, name: String, logger: Logger, watchSeconds: Int = 300) {
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.name = name
        self.logger = logger
        self.watchSeconds = watchSeconds
    }

    var resource: KubeResource { kind == .configMap ? .configMaps : .leases }

    public var describe: String { "\(kind.rawValue) \(namespace)/\(name)" }

    public func get(timeout: Duration) throws(LockError) -> Election.Observation {
        // A GET means the election needs a fresh view (start, lost race,
        // expired watch): the next watch starts from what this GET returns.
        stopWatching()
        do {
            let object = try client.get(resource, namespace: namespace, name: name, timeout: timeout)
            return .present(LockCodec.decode(kind, object: object))
        } catch {
            if error.code == .notFound { return .absent }
            throw Self.classify(error)
        }
    }

    public func create(_ record: LeaderElectionRecord, timeout: Duration) throws(LockError) -> LockSnapshot {
        let object = LockCodec.newObject(kind, namespace: namespace, name: name, record: record)
        do {
            return LockCodec.decode(kind, object: try client.create(resource, namespace: namespace, body: object, timeout: timeout))
        } catch {
            throw Self.classify(error)
        }
    }

    public func update(_ record: LeaderElectionRecord, base: LockSnapshot, timeout: Duration) throws(LockError) -> LockSnapshot {
        let object = LockCodec.updatedObject(kind, base: base, record: record)
        do {
            return LockCodec.decode(kind, object: try client.update(resource, namespace: namespace, name: name, body: object, timeout: timeout))
        } catch {
            throw Self.classify(error)
        }
    }

    /// Standby wait: the next change of the lock from a watch, nil when
    /// `deadline` comes first. A watch that ends is reopened from the last
    /// resourceVersion; one whose version is too old (410 Expired) falls back
    /// to a GET.
    public func waitForChange(known: LockSnapshot?, deadline: MonotonicClock.Instant) throws(LockError) -> Election.Observation? {
        while MonotonicClock.now < deadline {
            if let expiry = watchExpiry, MonotonicClock.now >= expiry {
                logger.debug("watch outlived its server timeout; reopening")
                stopWatching(keepingVersion: true)
            }
            if watch == nil {
                let from = watchResourceVersion ?? known?.resourceVersion
                do {
                    watch = try client.watch(resource, namespace: namespace, fieldSelector: "metadata.name=\(name)",
                                             resourceVersion: from, timeoutSeconds: watchSeconds,
                                             timeout: min(.seconds(10), max(.milliseconds(1), MonotonicClock.now.duration(to: deadline))))
                    watchExpiry = MonotonicClock.now + .seconds(watchSeconds + 30)
                } catch {
                    if error.code == .timedOut { return nil }
                    throw Self.classify(error)
                }
            }
            let next: KubeWatch.Next
            do {
                next = try watch!.next(deadline: min(deadline, watchExpiry ?? deadline))
            } catch {
                stopWatching()
                throw Self.classify(error)
            }
            switch next {
            case .timedOut:
                if MonotonicClock.now >= deadline { return nil }  // else the watch expired: reopen
            case .ended:
                // The server closed the watch (timeoutSeconds): reopen from where we were.
                stopWatching(keepingVersion: true)
            case .event(let event):
                switch event.type {
                case "ADDED", "MODIFIED":
                    let snapshot = LockCodec.decode(kind, object: event.object)
                    watchResourceVersion = snapshot.resourceVersion
                    return .present(snapshot)
                case "DELETED":
                    watchResourceVersion = event.object[path: "metadata", "resourceVersion"]?.stringValue
                    return .absent
                case "BOOKMARK":
                    watchResourceVersion = event.object[path: "metadata", "resourceVersion"]?.stringValue ?? watchResourceVersion
                case "ERROR":
                    // Typically 410 Expired: our version is too old. Re-read.
                    logger.debug("watch expired; re-reading the lock", ("status", .string(event.object["message"]?.stringValue ?? "")))
                    stopWatching()
                    let remaining = MonotonicClock.now.duration(to: deadline)
                    return try get(timeout: max(.milliseconds(1), min(.seconds(10), remaining)))
                default:
                    break
                }
            }
        }
        return nil
    }

    public func stopWatching() { stopWatching(keepingVersion: false) }

    private func stopWatching(keepingVersion: Bool) {
        watch?.close()
        watch = nil
        watchExpiry = nil
        if !keepingVersion { watchResourceVersion = nil }
    }

    /// Maps API errors to what the election does next.
    static func classify(_ error: KubeError) -> LockError {
        switch error.code {
        case .conflict, .alreadyExists, .notFound:
            return LockError(.lostRace, error.description)
        case .unauthorized, .forbidden:
            return LockError(.configuration, error.description)
        case .transport where error.isCertificateProblem:
            return LockError(.configuration, error.description)
        default:
            return LockError(.transient, error.description)
        }
    }
}

extension KubeError {
    /// A TLS verification failure (unknown CA, host mismatch, expired) or an
    /// unusable CA file: configuration, not a passing network problem.
    var isCertificateProblem: Bool {
        code == .transport && (mentions(message, "TLS certificate verification") || mentions(message, "CA file")
            || mentions(message, "PEM certificate"))
    }
}

/// Whether `text` contains `part`. Not `String.contains(_:)`: that one lives
/// in `_StringProcessing`, which alone adds 1.2 MB to the static binary.
private func mentions(_ text: String, _ part: String) -> Bool {
    let t = Array(text.utf8), p = Array(part.utf8)
    guard !p.isEmpty, p.count <= t.count else { return p.isEmpty }
    for i in 0...(t.count - p.count) where t[i..<(i + p.count)].elementsEqual(p) { return true }
    return false
}
