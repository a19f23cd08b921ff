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
    /// The ConfigMap lock's counterpart of the Lease's `spec.preferredHolder`
    /// (hand-over when asked): `kubectl annotate` it to move leadership.
    public static let preferredHolderAnnotation = "kube-leader.io/preferred-holder"
}

/// What the lock object held when we read it.
public enum LockRecordState: Sendable, Equatable {
    /// The object exists but carries no record (no annotation, empty Lease spec).
    case none
    indirect case readable(LeaderElectionRecord)
    /// A record is there but we cannot understand it, or it is absurd (the
    /// reason says why). Treated as held, never as free.
    case unreadable(String)
    /// A ConfigMap lock of the original kube-leader (operator-sdk "leader for
    /// life"): no record, owned through `ownerReferences` by the leader Pod
    /// `pod`. Held while that Pod exists: `alive` is true unless a GET of the
    /// Pod answered 404 (decoding alone always says true).
    case ownerPod(String, alive: Bool)
}

/// Bounds on values read from a record: a record outside them is absurd
/// (held, see `LockRecordState.unreadable`) or, for counters, clamped, so no
/// arithmetic on API values can trap or wrap.
public enum LockBounds {
    /// The longest lease a record may claim (one day). Longer ones are absurd.
    public static let maxLeaseSeconds = 86_400
    /// `leaseTransitions` is an int32 in the Lease API; larger counts are clamped.
    public static let maxTransitions = Int(Int32.max)
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

    /// Who should hold the lock, as its owner asked (hand-over when asked): the
    /// Lease's `spec.preferredHolder`, else the annotation
    /// `kube-leader.io/preferred-holder` on the object (ConfigMap lock);
    /// nil when neither names anyone. Not part of the record's fingerprint.
    public var preferredHolder: String? {
        for value in [object[path: "spec", "preferredHolder"],
                      object[path: "metadata", "annotations", LockKind.preferredHolderAnnotation]] {
            if case .string(let name)? = value {
                let trimmed = name.trimmingWhitespace
                if !trimmed.isEmpty { return trimmed }
            }
        }
        return nil
    }

    /// Who holds the lock, for logs: the holder, "" when free, or what
    /// stands in for one (an unreadable record, the original kube-leader's Pod).
    public var holderDescription: String {
        switch state {
        case .none: return ""
        case .readable(let r): return r.holderIdentity
        case .unreadable(let why): return "(unreadable record: \(why))"
        case .ownerPod(let pod, let alive): return alive ? "pod \(pod) (original kube-leader)" : ""
        }
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
            let value = object[path: "metadata", "annotations", LockKind.annotation]
            switch value {
            case nil, .null?:
                if let pod = ownerPod(object) {
                    return LockSnapshot(object: object, resourceVersion: rv, state: .ownerPod(pod, alive: true), fingerprint: "ownerPod:" + pod)
                }
                return LockSnapshot(object: object, resourceVersion: rv, state: .none, fingerprint: "")
            case .string(let raw)?:
                let state: LockRecordState
                do {
                    let json = try JSON.parse(raw)
                    state = decodeRecord(json, transitionsKey: "leaderTransitions")
                } catch {
                    state = .unreadable("annotation \(LockKind.annotation) is not JSON: \(error)")
                }
                return LockSnapshot(object: object, resourceVersion: rv, state: state, fingerprint: raw)
            case let other?:
                return LockSnapshot(object: object, resourceVersion: rv,
                                    state: .unreadable("annotation \(LockKind.annotation) is not a string"), fingerprint: other.serialized())
            }
        case .lease:
            let spec = object["spec"] ?? .null
            let fingerprint = spec.serialized()
            if spec.isNull || spec.objectValue?.isEmpty == true {
                return LockSnapshot(object: object, resourceVersion: rv, state: .none, fingerprint: fingerprint)
            }
            return LockSnapshot(object: object, resourceVersion: rv,
                                state: decodeRecord(spec, transitionsKey: "leaseTransitions"), fingerprint: fingerprint)
        }
    }

    /// The leader Pod named in the `ownerReferences` of an original
    /// kube-leader's ConfigMap (operator-sdk `leader.Become`).
    static func ownerPod(_ object: JSON) -> String? {
        for ref in object[path: "metadata", "ownerReferences"]?.arrayValue ?? [] {
            if ref["kind"]?.stringValue == "Pod", let name = ref["name"]?.stringValue, !name.isEmpty { return name }
        }
        return nil
    }

    static let ownedKeys = ["holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime"]

    /// An integer field as a number or a numeric string, beyond any integer
    /// type if need be (`.big`), so nothing read can trap.
    enum Count: Equatable {
        case missing
        case value(Int)
        /// Larger than `Int.max` (or below `Int.min`): sign only.
        case big(negative: Bool)
        case invalid
    }

    static func count(_ value: JSON?) -> Count {
        let text: String
        switch value {
        case nil, .null?: return .missing
        case .number(let t)?: text = t
        case .string(let s)?: text = s.trimmingWhitespace
        default: return .invalid
        }
        if let i = Int(text) { return .value(i) }
        // Beyond Int, or written as 1e3 / 15.0: judge it as a Double.
        guard let d = Double(text), !d.isNaN else { return .invalid }
        if d.rounded() != d { return .invalid }
        if d >= 9.0e18 || d <= -9.0e18 { return .big(negative: d < 0) }
        return .value(Int(d))
    }

    static func decodeRecord(_ json: JSON, transitionsKey: String) -> LockRecordState {
        guard let object = json.objectValue else { return .unreadable("the record is not a JSON object") }
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
        let lease: Int
        switch count(object["leaseDurationSeconds"]) {
        case .missing: lease = 0
        case .value(let v) where v >= 0 && v <= LockBounds.maxLeaseSeconds: lease = v
        case .value, .big:
            return .unreadable("leaseDurationSeconds is outside 0…\(LockBounds.maxLeaseSeconds)")
        case .invalid: return .unreadable("leaseDurationSeconds is not a whole number")
        }
        let transitions: Int
        switch count(object[transitionsKey]) {
        case .missing: transitions = 0
        case .value(let v): transitions = min(max(v, 0), LockBounds.maxTransitions)
        case .big(let negative): transitions = negative ? 0 : LockBounds.maxTransitions
        case .invalid: return .unreadable("\(transitionsKey) is not a whole number")
        }
        guard let acquire = time("acquireTime") else { return .unreadable("acquireTime is not a time") }
        guard let renew = time("renewTime") else { return .unreadable("renewTime is not a time") }
        var others = JSONObject()
        for (k, v) in object where !ownedKeys.contains(k) && k != transitionsKey { others[k] = v }
        return .readable(LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: lease,
            acquireTime: acquire, renewTime: renew, leaderTransitions: transitions, otherFields: others))
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
        if case .ownerPod(let pod, _) = base.state, var refs = object[path: "metadata", "ownerReferences"]?.arrayValue {
            // Taking over an original kube-leader's lock whose Pod is gone: drop
            // that owner, or the garbage collector deletes the lock under us.
            refs.removeAll { $0["kind"]?.stringValue == "Pod" && $0["name"]?.stringValue == pod }
            object[path: "metadata", "ownerReferences"] = refs.isEmpty ? nil : .array(refs)
        }
        switch kind {
        case .configMap:
            object[path: "metadata", "annotations", LockKind.annotation] = .string(annotationText(record))
        case .lease:
            object["spec"] = leaseSpec(record, keeping: object["spec"])
        }
        return object
    }
}
