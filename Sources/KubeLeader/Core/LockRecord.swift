/// client-go's `LeaderElectionRecord`: who holds the lock and since when.
///
/// Wire names are Kubernetes' own (`resourcelock/interface.go`). The times are
/// for people; expiry is judged only by our monotonic clock (see `Election`).
public struct LeaderElectionRecord: Sendable, Equatable {
    public var holderIdentity: String
    public var leaseDurationSeconds: Int
    public var acquireTime: WallTime?
    public var renewTime: WallTime?
    public var leaderTransitions: Int
    /// Fields we do not own (`strategy`, `preferredHolder`, future ones):
    /// kept as read and written back unchanged.
    public var otherFields: JSONObject

    public init(holderIdentity: String, leaseDurationSeconds: Int, acquireTime: WallTime?, renewTime: WallTime?,
                leaderTransitions: Int, otherFields: JSONObject = JSONObject()) {
        self.holderIdentity = holderIdentity
        self.leaseDurationSeconds = leaseDurationSeconds
        self.acquireTime = acquireTime
        self.renewTime = renewTime
        self.leaderTransitions = leaderTransitions
        self.otherFields = otherFields
    }

    public var isReleased: Bool { holderIdentity.isEmpty }
}

/// Which Kubernetes object holds the lock.
public enum LockKind: String, Sendable, CaseIterable {
    /// A ConfigMap with the record as JSON in the annotation
    /// `control-plane.alpha.kubernetes.io/leader` (the original kube-leader and
    /// client-go before 1.24).
    case configMap = "configmap"
    /// A `coordination.k8s.io/v1` Lease: the record is the Lease `spec`.
    case lease

    /// The annotation of the ConfigMap lock.
    public static let annotation = "control-plane.alpha.kubernetes.io/leader"

    public var resourceDescription: String { self == .configMap ? "configmaps" : "leases.coordination.k8s.io" }
}

/// What the lock object held when we read it.
public enum LockRecordState: Sendable, Equatable {
    /// The object exists but carries no record (no annotation, empty Lease spec).
    case none
    case readable(LeaderElectionRecord)
    /// A record is there but we cannot understand it (the reason says why).
    case unreadable(String)
}

/// A lock object as read from the API server.
public struct LockSnapshot: Sendable, Equatable {
    /// The whole object, so an update keeps every field and annotation.
    public var object: JSON
    public var resourceVersion: String
    public var state: LockRecordState
    /// The record's raw text: any change to it is a change of the lock.
    public var fingerprint: String

    public var record: LeaderElectionRecord? {
        if case .readable(let r) = state { return r }
        return nil
    }
}

/// Reads and writes the record inside ConfigMap and Lease objects.
///
/// Reads leniently (numbers as strings, times without a zone, as the Python
/// client writes them); writes exactly what client-go writes.
public enum LockCodec {
    public static func decode(_ kind: LockKind, object: JSON) -> LockSnapshot {
        let rv = object[path: "metadata", "resourceVersion"]?.stringValue ?? ""
        switch kind {
        case .configMap:
            guard let raw = object[path: "metadata", "annotations", LockKind.annotation]?.stringValue else {
                return LockSnapshot(object: object, resourceVersion: rv, state: .none, fingerprint: "")
            }
            let state: LockRecordState
            do {
                let json = try JSON.parse(raw)
                state = decodeRecord(json, transitionsKey: "leaderTransitions")
            } catch {
                state = .unreadable("annotation \(LockKind.annotation) is not JSON: \(error)")
            }
            return LockSnapshot(object: object, resourceVersion: rv, state: state, fingerprint: raw)
        case .lease:
            let spec = object["spec"] ?? .object(JSONObject())
            let fingerprint = spec.serialized()
            if spec.objectValue?.isEmpty ?? true {
                return LockSnapshot(object: object, resourceVersion: rv, state: .none, fingerprint: fingerprint)
            }
            return LockSnapshot(object: object, resourceVersion: rv,
                                state: decodeRecord(spec, transitionsKey: "leaseTransitions"), fingerprint: fingerprint)
        }
    }

    static let ownedKeys = ["holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime"]

    static func decodeRecord(_ json: JSON, transitionsKey: String) -> LockRecordState {
        guard let object = json.objectValue else { return .unreadable("the record is not a JSON object") }
        func int(_ key: String) -> Int? {
            switch object[key] {
            case .number?: return object[key]?.intValue
            case .string(let s)?: return Int(s.trimmingWhitespace)
            default: return nil
            }
        }
        func time(_ key: String) -> WallTime?? {
            switch object[key] {
            case nil, .null?: return .some(nil)
            case .string(let s)?:
                if s.isEmpty { return .some(nil) }
                if let t = RFC3339.parse(s) { return .some(t) }
                return nil
            default: return nil
            }
        }
        let holder: String
        switch object["holderIdentity"] {
        case .string(let s)?: holder = s
        case nil, .null?: holder = ""
        default: return .unreadable("holderIdentity is not a string")
        }
        if object["leaseDurationSeconds"] != nil, object["leaseDurationSeconds"] != .null, int("leaseDurationSeconds") == nil {
            return .unreadable("leaseDurationSeconds is not a number")
        }
        guard let acquire = time("acquireTime") else { return .unreadable("acquireTime is not a time") }
        guard let renew = time("renewTime") else { return .unreadable("renewTime is not a time") }
        var others = JSONObject()
        for (k, v) in object where !ownedKeys.contains(k) && k != transitionsKey { others[k] = v }
        return .readable(LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: int("leaseDurationSeconds") ?? 0,
            acquireTime: acquire, renewTime: renew, leaderTransitions: int(transitionsKey) ?? 0, otherFields: others))
    }

    /// The record as client-go writes it into the ConfigMap annotation
    /// (metav1.Time: RFC 3339, whole seconds).
    public static func annotationText(_ r: LeaderElectionRecord) -> String {
        var o = JSONObject()
        o["holderIdentity"] = .string(r.holderIdentity)
        o["leaseDurationSeconds"] = JSON(r.leaseDurationSeconds)
        o["acquireTime"] = r.acquireTime.map { .string(RFC3339.format($0)) } ?? .null
        o["renewTime"] = r.renewTime.map { .string(RFC3339.format($0)) } ?? .null
        o["leaderTransitions"] = JSON(r.leaderTransitions)
        for (k, v) in r.otherFields { o[k] = v }
        return JSON.object(o).serialized()
    }

    /// The Lease spec as client-go writes it (MicroTime: exactly 6 digits).
    public static func leaseSpec(_ r: LeaderElectionRecord, keeping old: JSON?) -> JSON {
        var o = old?.objectValue ?? JSONObject()
        o["holderIdentity"] = .string(r.holderIdentity)
        o["leaseDurationSeconds"] = JSON(r.leaseDurationSeconds)
        o["acquireTime"] = r.acquireTime.map { .string(RFC3339.formatMicro($0)) }
        o["renewTime"] = r.renewTime.map { .string(RFC3339.formatMicro($0)) }
        o["leaseTransitions"] = JSON(r.leaderTransitions)
        for (k, v) in r.otherFields { o[k] = v }
        return .object(o)
    }

    /// A new lock object holding `record` (for create).
    public static func newObject(_ kind: LockKind, namespace: String, name: String, record: LeaderElectionRecord) -> JSON {
        switch kind {
        case .configMap:
            return [
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": ["name": .string(name), "namespace": .string(namespace),
                             "annotations": [LockKind.annotation: .string(annotationText(record))]],
            ]
        case .lease:
            return [
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": ["name": .string(name), "namespace": .string(namespace)],
                "spec": leaseSpec(record, keeping: nil),
            ]
        }
    }

    /// `base.object` with `record` written in and `base`'s resourceVersion kept
    /// (optimistic concurrency); every other field and annotation unchanged.
    public static func updatedObject(_ kind: LockKind, base: LockSnapshot, record: LeaderElectionRecord) -> JSON {
        var object = base.object
        object[path: "metadata", "resourceVersion"] = .string(base.resourceVersion)
        switch kind {
        case .configMap:
            object[path: "metadata", "annotations", LockKind.annotation] = .string(annotationText(record))
        case .lease:
            object["spec"] = leaseSpec(record, keeping: object["spec"])
        }
        return object
    }
}
