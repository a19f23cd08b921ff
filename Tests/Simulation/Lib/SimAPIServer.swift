import KLCore

/// A request a replica sends to the API server.
enum SimRequest {
    /// GET the lock object.
    case get
    /// LIST the lock's resource with `fieldSelector=metadata.name=LOCK`: the
    /// item (if any) and the list's resourceVersion (the server's current one).
    case list
    /// POST a new lock object.
    case create(JSON)
    /// PUT the lock object; `metadata.resourceVersion` is the precondition.
    case update(JSON)
    /// Open a watch on the lock from a resourceVersion (nil: from now, with a
    /// synthetic ADDED of the current object).
    case watch(from: String?)
    /// GET a Pod (owner of an operator-sdk "leader for life" lock).
    case getPod(String)

    /// The request the election's `LockSession` asked for.
    init(_ request: LockSession.Request) {
        switch request {
        case .list: self = .list
        case .get: self = .get
        case .getPod(let pod): self = .getPod(pod)
        case .create(let o): self = .create(o)
        case .update(let o): self = .update(o)
        case .watch(let rv, _): self = .watch(from: rv)
        }
    }

    var isWrite: Bool {
        switch self { case .create, .update: true; default: false }
    }

    var isRead: Bool {
        switch self { case .get, .list, .getPod: true; default: false }
    }
    var isWatch: Bool { if case .watch = self { return true }; return false }
    var name: String {
        switch self {
        case .get: "GET"
        case .list: "LIST"
        case .create: "CREATE"
        case .update: "UPDATE"
        case .watch(let from): "WATCH(from=\(from ?? "now"))"
        case .getPod(let p): "GET pod/\(p)"
        }
    }
}

/// What the replica gets back.
enum SimResponse {
    case object(LockSnapshot)
    /// An HTTP error status with its Kubernetes reason (NotFound, Conflict,
    /// AlreadyExists, InternalError, ...).
    case status(Int, String)
    case list(LockSnapshot?, resourceVersion: String)
    case watchOpened(Int)
    case podExists(Bool)
    /// No response before the client's deadline.
    case timedOut
    /// The connection failed (reset, refused).
    case transport(String)

    /// The answer as the client sees it: the JSON body of a 2xx, or the
    /// failure (`.watchOpened` is handled by the caller).
    var answer: LockSession.Answer {
        switch self {
        case .object(let s): .ok(s.object)
        case .list(let s, let rv):
            .ok(.object(["kind": .string("List"), "apiVersion": .string("v1"),
                         "metadata": .object(["resourceVersion": .string(rv)]),
                         "items": .array(s.map { [$0.object] } ?? [])]))
        case .podExists: .ok(.object(["kind": .string("Pod"), "metadata": .object(["name": .string("pod")])]))
        case .status(let code, let reason):
            .failed(LockSession.Failure(.status(code), "\(code) \(reason)"))
        case .timedOut: .failed(LockSession.Failure(.timedOut, "timed out"))
        case .transport(let m): .failed(LockSession.Failure(.transport, m))
        case .watchOpened: .failed(LockSession.Failure(.transport, "unexpected watch"))
        }
    }

    var traceText: String {
        switch self {
        case .object(let s): "\(s.resourceVersion) holder=\(s.record?.holderIdentity ?? "-")"
        case .status(let c, let r): "\(c) \(r)"
        case .list(let s, let rv): "list rv=\(rv) item=\(s?.resourceVersion ?? "none")"
        case .watchOpened(let w): "watch#\(w) open"
        case .podExists(let e): "pod exists=\(e)"
        case .timedOut: "timed out"
        case .transport(let m): "transport: \(m)"
        }
    }
}

/// A lock snapshot shared by every watcher of one version (one reference
/// count per copy instead of one per field).
final class SnapshotBox {
    let snapshot: LockSnapshot
    init(_ snapshot: LockSnapshot) { self.snapshot = snapshot }
    private var added: String?
    private var modified: String?
    private var deleted: String?

    /// The watch line of an event of `type` with this object, as the API
    /// server writes it (serialized once per version, shared by every watcher).
    func line(_ type: String) -> String {
        func make() -> String { JSON.object(["type": .string(type), "object": snapshot.object]).serialized() }
        switch type {
        case "ADDED": if added == nil { added = make() }; return added!
        case "MODIFIED": if modified == nil { modified = make() }; return modified!
        default: if deleted == nil { deleted = make() }; return deleted!
        }
    }
}

/// One item on a watch stream, as the client reads it.
enum WatchItem {
    case added(SnapshotBox)
    case modified(SnapshotBox)
    /// The last state of the object, under the deletion's resourceVersion.
    case deleted(SnapshotBox)
    /// `{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":...}}}`.
    case bookmark(resourceVersion: String)
    /// `{"type":"ERROR","object":{"code":410,"reason":"Expired"}}`: the
    /// requested resourceVersion is older than the server's history.
    case expired
    /// The server closed the stream (its `timeoutSeconds`, a restart, a drop).
    case ended
    /// The connection broke (reset): the client's read fails.
    case broken

    /// What the client's read of the stream returns.
    var read: LockSession.WatchRead {
        switch self {
        case .added(let b): .line(b.line("ADDED"))
        case .modified(let b): .line(b.line("MODIFIED"))
        case .deleted(let b): .line(b.line("DELETED"))
        case .bookmark(let rv):
            .line(#"{"type":"BOOKMARK","object":{"kind":"ConfigMap","apiVersion":"v1","metadata":{"resourceVersion":"\#(rv)"}}}"#)
        case .expired:
            .line(#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#)
        case .ended: .ended
        case .broken: .failed(LockSession.Failure(.transport, "connection reset by peer"))
        }
    }

    var traceText: String {
        switch self {
        case .added(let b): "ADDED rv=\(b.snapshot.resourceVersion) holder=\(b.snapshot.record?.holderIdentity ?? "-")"
        case .modified(let b): "MODIFIED rv=\(b.snapshot.resourceVersion) holder=\(b.snapshot.record?.holderIdentity ?? "-")"
        case .deleted(let b): "DELETED rv=\(b.snapshot.resourceVersion)"
        case .bookmark(let rv): "BOOKMARK rv=\(rv)"
        case .expired: "ERROR 410 Expired"
        case .ended: "end of stream"
        case .broken: "connection reset"
        }
    }
}

/// A watch connection: items the server sent (in transit) and items that
/// have reached the client, in order.
final class WatchConnection {
    let id: Int
    let replica: Int
    let incarnation: Int
    /// The server still sends on it.
    var serverAlive = true
    /// The client has closed it.
    var clientClosed = false
    var inTransit = FIFO<WatchItem>()
    var arrived = FIFO<WatchItem>()
    var lastArrival: SimTime = 0

    init(id: Int, replica: Int, incarnation: Int) {
        self.id = id
        self.replica = replica
        self.incarnation = incarnation
    }

    func popArrived() -> WatchItem? { arrived.popFirst() }

    func popInTransit() -> WatchItem? { inTransit.popFirst() }
}

/// The API server with the semantics that matter to leader election, as the
/// real one has them:
/// - one global resourceVersion counter (etcd's revision), advanced by every
///   write of the lock and by writes of *other* objects of the same resource
///   ("noise", at `noisePerSecond`);
/// - create answers 409 AlreadyExists when the object exists, 404 when the
///   namespace does not;
/// - update with a stale `metadata.resourceVersion` answers 409 Conflict, on a
///   missing object 404; an update that changes nothing is a no-op: same
///   resourceVersion, no watch event;
/// - a bounded watch history (the watch cache): a watch from a
///   resourceVersion older than the last `historyCapacity` writes, or older
///   than the last API server restart, gets `ERROR 410 Expired`;
/// - a watch without a resourceVersion starts with a synthetic ADDED;
/// - others delete the lock, add annotations, clear the holder.
///
/// The lock object is real JSON written by kube-leader's own `LockCodec`, and
/// read back with `LockCodec.decode`, once per version.
public final class SimAPIServer {
    public let kind: LockKind
    let namespace = "sim"
    let name = "lock"
    /// The server ends a watch after this many seconds (`timeoutSeconds`).
    let watchSeconds = 300
    /// A BOOKMARK goes to every watch this often (true time, ns).
    let bookmarkInterval: SimTime = 60 * SimTime.second
    var noisePerSecond: Double
    var historyCapacity: Int64
    /// Watches from before this resourceVersion are expired (API server restart).
    var historyFloor: Int64 = 0
    private var lockWrites: Int64 = 0
    private(set) var object: JSON?
    private(set) var snapshot: LockSnapshot?
    /// Recent events of the lock, for watches that start in the past.
    private var events: [(rv: Int64, item: WatchItem)] = []
    var namespaceExists = true
    /// A mutating webhook that rewrites every write of the lock to this
    /// `leaseDurationSeconds` (nil: none).
    var webhookLeaseSeconds: Int?
    var pods: [String] = []
    private var uids = 0
    /// Open watches (server side).
    var watchers: [WatchConnection] = []
    /// Counters for the report.
    var writes = 0, noOps = 0, conflicts = 0

    init(kind: LockKind, noisePerSecond: Double, historyCapacity: Int64) {
        self.kind = kind
        self.noisePerSecond = noisePerSecond
        self.historyCapacity = historyCapacity
    }

    func currentRV(_ t: SimTime) -> Int64 {
        1000 + lockWrites + Int64(Double(t) / 1e9 * noisePerSecond)
    }

    /// The oldest resourceVersion a watch may start from.
    func historyStart(_ t: SimTime) -> Int64 { max(historyFloor, currentRV(t) - historyCapacity) }

    // MARK: Requests

    func handle(_ request: SimRequest, at t: SimTime, deliver: (WatchConnection, WatchItem) -> Void,
                openWatch: () -> WatchConnection) -> SimResponse {
        switch request {
        case .get:
            guard namespaceExists, let snapshot else { return .status(404, "NotFound") }
            return .object(snapshot)
        case .list:
            // A LIST in a namespace that does not exist is an empty list.
            return .list(namespaceExists ? snapshot : nil, resourceVersion: String(currentRV(t)))
        case .getPod(let pod):
            return pods.contains(pod) ? .podExists(true) : .status(404, "NotFound")
        case .create(let body):
            guard namespaceExists else { return .status(404, "NotFound") }
            if object != nil { return .status(409, "AlreadyExists") }
            var o = rewritten(body)
            uids += 1
            o[path: "metadata", "uid"] = .string("uid-\(uids)")
            return .object(store(o, type: .added, at: t, deliver: deliver))
        case .update(let body):
            guard namespaceExists, let current = object, let snapshot else { return .status(404, "NotFound") }
            guard body[path: "metadata", "resourceVersion"]?.stringValue == snapshot.resourceVersion else {
                conflicts += 1
                return .status(409, "Conflict")
            }
            var o = rewritten(body)
            o[path: "metadata", "uid"] = current[path: "metadata", "uid"]
            if recordPart(o) == recordPart(current) && o == current {
                noOps += 1
                return .object(snapshot)  // no-op: same resourceVersion, no event
            }
            return .object(store(o, type: .modified, at: t, deliver: deliver))
        case .watch(let from):
            let conn = openWatch()
            if let from {
                guard let v = Int64(from), v >= historyStart(t) else {
                    deliver(conn, .expired)
                    deliver(conn, .ended)
                    conn.serverAlive = false
                    return .watchOpened(conn.id)
                }
                for e in events where e.rv > v { deliver(conn, e.item) }
            } else if let snapshot {
                deliver(conn, .added(SnapshotBox(snapshot)))
            }
            watchers.append(conn)
            return .watchOpened(conn.id)
        }
    }

    /// What a mutating webhook makes of a write.
    private func rewritten(_ body: JSON) -> JSON {
        guard let lease = webhookLeaseSeconds else { return body }
        let s = LockCodec.decode(kind, object: body)
        guard var record = s.record, !record.isReleased else { return body }
        record.leaseDurationSeconds = lease
        return LockCodec.updatedObject(kind, base: s, record: record)
    }

    /// The part a renew changes (compared first: the whole-object comparison
    /// is only needed when it is equal).
    private func recordPart(_ o: JSON) -> JSON? {
        kind == .configMap ? o[path: "metadata", "annotations", LockKind.annotation] : o["spec"]
    }

    private enum Change { case added, modified }

    private func store(_ o: JSON, type: Change, at t: SimTime, deliver: (WatchConnection, WatchItem) -> Void) -> LockSnapshot {
        lockWrites += 1
        writes += 1
        let rv = currentRV(t)
        var o = o
        o[path: "metadata", "resourceVersion"] = .string(String(rv))
        let s = LockCodec.decode(kind, object: o)
        object = o
        snapshot = s
        let box = SnapshotBox(s)
        publish(rv, type == .added ? .added(box) : .modified(box), at: t, deliver: deliver)
        return s
    }

    private func publish(_ rv: Int64, _ item: WatchItem, at t: SimTime, deliver: (WatchConnection, WatchItem) -> Void) {
        let start = historyStart(t)
        if let first = events.first, first.rv <= start { events.removeAll { $0.rv <= start } }
        events.append((rv, item))
        var i = 0
        while i < watchers.count {
            let w = watchers[i]
            if !w.serverAlive || w.clientClosed { watchers.remove(at: i); continue }
            deliver(w, item)
            i += 1
        }
    }

    // MARK: Others

    /// `kubectl delete`: the object is gone (a DELETED event).
    func delete(at t: SimTime, deliver: (WatchConnection, WatchItem) -> Void) -> Bool {
        guard var last = object else { return false }
        lockWrites += 1
        writes += 1
        let rv = currentRV(t)
        last[path: "metadata", "resourceVersion"] = .string(String(rv))
        object = nil
        snapshot = nil
        publish(rv, .deleted(SnapshotBox(LockCodec.decode(kind, object: last))), at: t, deliver: deliver)
        return true
    }

    /// Another writer changes the object (`kubectl annotate`, `kubectl edit`).
    func edit(at t: SimTime, deliver: (WatchConnection, WatchItem) -> Void, _ change: (inout JSON) -> Void) -> Bool {
        guard var o = object else { return false }
        change(&o)
        if o == object { return false }
        _ = store(o, type: .modified, at: t, deliver: deliver)
        return true
    }

    /// Another writer creates the object (foreign leaders in scenarios).
    func put(_ o: JSON, at t: SimTime, deliver: (WatchConnection, WatchItem) -> Void) {
        let existed = object != nil
        _ = store(o, type: existed ? .modified : .added, at: t, deliver: deliver)
    }

    /// An API server restart: every watch ends and the history starts again
    /// at the current resourceVersion (older versions get 410).
    func restart(at t: SimTime, deliver: (WatchConnection, WatchItem) -> Void) {
        historyFloor = currentRV(t)
        events.removeAll()
        for w in watchers where w.serverAlive && !w.clientClosed {
            deliver(w, .ended)
            w.serverAlive = false
        }
        watchers.removeAll()
    }
}

/// A first-in first-out queue with amortised O(1) pops (an array and a head
/// index; the consumed front is dropped once it is most of the array).
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    mutating func append(_ item: Element) { items.append(item) }

    mutating func popFirst() -> Element? {
        guard head < items.count else { return nil }
        let item = items[head]
        head += 1
        if head > 64 && head * 2 > items.count {
            items.removeFirst(head); head = 0
        }
        return item
    }
}
