import KLCore
import KLSystem
import Synchronization

/// The answer to an API call: HTTP status and JSON body (object or Status).
struct APIResult {
    var status: Int
    var body: JSON
    var headers: [(String, String)] = []
    init(_ status: Int, _ body: JSON, headers: [(String, String)] = []) { self.status = status; self.body = body; self.headers = headers }
    static func error(_ status: JSON) -> APIResult { APIResult(status["code"]?.intValue ?? 500, status) }
}

/// Everything the fake stores, guarded by one mutex.
struct StoreState {
    /// resource.qualified → "namespace/name" → object.
    var objects: [String: [String: JSON]] = [:]
    var resourceVersion = 0
    var history: [StoredEvent] = []
    /// Events with an RV at or below this were dropped from the history: a
    /// watch from an older RV gets 410 Expired.
    var historyFloor = 0
    var watchers: [ObjectIdentifier: Watcher] = [:]
    var random = RandomSource()
}

/// The object store: CRUD with resourceVersion semantics, watch fan-out,
/// and the state file.
final class Store: Sendable {
    let state = Mutex(StoreState())
    let historySize: Int
    let stateFile: String?
    let log: Logger
    /// Seconds a deleted pod stays terminating (deletionTimestamp set) before it goes.
    let podGraceSeconds: Int

    init(historySize: Int, stateFile: String?, podGraceSeconds: Int = 0, log: Logger) throws(FakeServerError) {
        self.historySize = max(1, historySize)
        self.podGraceSeconds = max(0, podGraceSeconds)
        self.stateFile = stateFile
        self.log = log
        if let stateFile, let text = readFile(stateFile) {
            let loaded: JSON
            do { loaded = try JSON.parse(text) } catch {
                throw FakeServerError(.state, "the state file \(stateFile) is not valid JSON (\(error)); delete it to start empty")
            }
            state.withLock { s in
                s.resourceVersion = loaded["resourceVersion"]?.intValue ?? 0
                s.historyFloor = s.resourceVersion
                for entry in loaded["objects"]?.arrayValue ?? [] {
                    guard let key = entry["resource"]?.stringValue, let object = entry["object"] else { continue }
                    s.objects[key, default: [:]][Self.key(object)] = object
                }
            }
        }
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            if get(.namespaces, nil, ns) == nil {
                _ = put(.namespaces, namespace: nil, name: ns,
                        ["apiVersion": "v1", "kind": "Namespace", "metadata": ["name": .string(ns)],
                         "spec": ["finalizers": ["kubernetes"]], "status": ["phase": "Active"]])
            }
        }
    }

    static func key(_ object: JSON) -> String {
        "\(object[path: "metadata", "namespace"]?.stringValue ?? "")/\(object[path: "metadata", "name"]?.stringValue ?? "")"
    }

    // MARK: Reads

    func get(_ r: ResourceType, _ namespace: String?, _ name: String) -> JSON? {
        state.withLock { s in
            guard let o = s.objects[r.qualified]?["\(namespace ?? "")/\(name)"] else { return nil }
            return decorate(r, o, s)
        }
    }

    func list(_ r: ResourceType, _ filter: ObjectFilter) -> (items: [JSON], rv: Int) {
        state.withLock { s in
            let items = (s.objects[r.qualified] ?? [:]).sorted { $0.key < $1.key }.map(\.value)
                .filter(filter.matches).map { decorate(r, $0, s) }
            return (items, s.resourceVersion)
        }
    }

    /// Objects with computed parts filled in (PodDisruptionBudget status).
    func decorate(_ r: ResourceType, _ o: JSON, _ s: StoreState) -> JSON {
        guard r == .pdbs else { return o }
        var o = o
        let ns = o[path: "metadata", "namespace"]?.stringValue ?? ""
        let pods = (s.objects[ResourceType.pods.qualified] ?? [:]).values.filter { $0[path: "metadata", "namespace"]?.stringValue == ns }
        o["status"] = DisruptionBudget(o).status(pods: Array(pods))
        return o
    }

    // MARK: Writes

    /// Stores `object` (or removes it when nil) under a new RV, records the
    /// event, wakes matching watchers and saves the state file.
    private func commit(_ s: inout StoreState, _ r: ResourceType, key: String, _ object: JSON?, type: String) -> JSON {
        s.resourceVersion += 1
        let rv = s.resourceVersion
        let old = s.objects[r.qualified]?[key]
        var stored = object ?? old ?? .null
        stored[path: "metadata", "resourceVersion"] = .string(String(rv))
        if object == nil { s.objects[r.qualified]?[key] = nil } else { s.objects[r.qualified, default: [:]][key] = stored }
        let event = StoredEvent(rv: rv, type: type, resource: r, object: stored, old: type == "MODIFIED" ? old : nil)
        s.history.append(event)
        if s.history.count > historySize {
            let drop = s.history.count - historySize
            s.historyFloor = s.history[drop - 1].rv
            s.history.removeFirst(drop)
        }
        var lines: [String: String] = [:]   // serialize once per event type, not per watcher
        for w in s.watchers.values {
            guard let type = w.eventType(for: event) else { continue }
            let line = lines[type] ?? Watcher.line(type: type, object: stored)
            lines[type] = line
            w.push(line)
        }
        save(s)
        return stored
    }

    private func save(_ s: StoreState) {
        guard let stateFile else { return }
        var entries: [JSON] = []
        for (resource, objects) in s.objects.sorted(by: { $0.key < $1.key }) {
            for (_, o) in objects.sorted(by: { $0.key < $1.key }) { entries.append(["resource": .string(resource), "object": o]) }
        }
        let doc: JSON = ["resourceVersion": JSON(s.resourceVersion), "objects": .array(entries)]
        if !writeFileAtomically(stateFile, doc.serialized() + "\n") {
            log.error("saving the state file failed", ("path", .string(stateFile)), ("errno", JSON(Int(errno))))
        }
    }

    /// Fills the server-owned metadata of a new object.
    private func stamp(_ o: inout JSON, _ r: ResourceType, _ s: inout StoreState) {
        o[path: "metadata", "uid"] = .string(s.random.uuid())
        o[path: "metadata", "creationTimestamp"] = .string(RFC3339.format(wallNow()))
        o = typeFirst(o, r)
        if r == .namespaces {
            if o[path: "status", "phase"] == nil { o[path: "status", "phase"] = "Active" }
        }
        if r == .pods, o[path: "status", "phase"] == nil { o[path: "status", "phase"] = "Pending" }
    }

    /// Direct create-or-replace for tests (no validation, no conflicts).
    func put(_ r: ResourceType, namespace: String?, name: String, _ object: JSON) -> JSON {
        state.withLock { s in
            var o = object
            o[path: "metadata", "name"] = .string(name)
            if let namespace { o[path: "metadata", "namespace"] = .string(namespace) }
            let key = "\(namespace ?? "")/\(name)"
            if let old = s.objects[r.qualified]?[key] {
                o[path: "metadata", "uid"] = old[path: "metadata", "uid"]
                o[path: "metadata", "creationTimestamp"] = old[path: "metadata", "creationTimestamp"]
                o = typeFirst(o, r)
                return commit(&s, r, key: key, o, type: "MODIFIED")
            }
            stamp(&o, r, &s)
            return commit(&s, r, key: key, o, type: "ADDED")
        }
    }

    func create(_ r: ResourceType, namespace: String?, _ body: JSON) -> APIResult {
        var o = body
        if let problem = checkBody(r, namespace: namespace, &o) { return .error(problem) }
        return state.withLock { s in
            var name = o[path: "metadata", "name"]?.stringValue ?? ""
            if name.isEmpty, let prefix = o[path: "metadata", "generateName"]?.stringValue, !prefix.isEmpty {
                name = prefix + s.random.nameSuffix()
                o[path: "metadata", "name"] = .string(name)
            }
            if name.isEmpty {
                return .error(Status.invalid(r, name: "", causes: [("metadata.name", "Required value: name or generateName is required", "FieldValueRequired")]))
            }
            if let problem = Validation.nameProblem(name, label: r == .namespaces) {
                return .error(Status.invalid(r, name: name, causes: [("metadata.name", problem, "FieldValueInvalid")]))
            }
            let key = "\(namespace ?? "")/\(name)"
            if s.objects[r.qualified]?[key] != nil { return .error(Status.alreadyExists(r, name)) }
            if r == .leaseCandidates {
                let causes = CandidateValidation.causes(o, old: nil)
                if !causes.isEmpty { return .error(Status.invalid(r, name: name, causes: causes)) }
            }
            o[path: "metadata", "resourceVersion"] = nil
            stamp(&o, r, &s)
            return APIResult(201, decorate(r, commit(&s, r, key: key, o, type: "ADDED"), s))
        }
    }

    /// Kind/namespace/body checks shared by create and update.
    private func checkBody(_ r: ResourceType, namespace: String?, _ o: inout JSON) -> JSON? {
        guard o.objectValue != nil else {
            return Status.badRequest("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf")
        }
        if let kind = o["kind"]?.stringValue, kind != r.kind {
            return Status.badRequest("the API version in the data (\(o["apiVersion"]?.stringValue ?? "")) does not match the expected API version (\(r.apiVersion))")
        }
        if let namespace {
            if let given = o[path: "metadata", "namespace"]?.stringValue, !given.isEmpty, given != namespace {
                return Status.badRequest("the namespace of the provided object does not match the namespace sent on the request")
            }
            o[path: "metadata", "namespace"] = .string(namespace)
        }
        if r == .leases, let problem = Validation.leaseProblem(o) { return Status.badRequest(problem) }
        if r == .leaseCandidates, let problem = CandidateValidation.decodeProblem(o) { return Status.badRequest(problem) }
        if let problem = Validation.stringMapProblem(o, r) { return Status.badRequest(problem) }
        return nil
    }

    /// PUT: replaces the object; a given, stale `metadata.resourceVersion` is
    /// a Conflict, a missing one means "unconditional" as on the real server.
    /// `subresource == "status"` replaces only `status`.
    func update(_ r: ResourceType, namespace: String?, name: String, subresource: String?, _ body: JSON) -> APIResult {
        var o = body
        if let problem = checkBody(r, namespace: namespace, &o) { return .error(problem) }
        if let given = o[path: "metadata", "name"]?.stringValue, given != name {
            return .error(Status.badRequest("the name of the object (\(given)) does not match the name on the URL (\(name))"))
        }
        o[path: "metadata", "name"] = .string(name)
        return state.withLock { s in
            let key = "\(namespace ?? "")/\(name)"
            guard let old = s.objects[r.qualified]?[key] else { return .error(Status.notFound(r, name)) }
            if let rv = o[path: "metadata", "resourceVersion"]?.stringValue, !rv.isEmpty,
               rv != old[path: "metadata", "resourceVersion"]?.stringValue {
                return .error(Status.conflict(r, name))
            }
            if r == .leaseCandidates {
                let causes = CandidateValidation.causes(o, old: old)
                if !causes.isEmpty { return .error(Status.invalid(r, name: name, causes: causes)) }
            }
            if subresource == "status" {
                var merged = old
                merged["status"] = o["status"]
                o = merged
            }
            for field in ["uid", "creationTimestamp", "deletionTimestamp"] {
                o[path: "metadata", field] = old[path: "metadata", field]
            }
            o = typeFirst(o, r)
            if o == old { return APIResult(200, decorate(r, old, s)) }   // no-op: no new RV, as the real server
            return APIResult(200, decorate(r, commit(&s, r, key: key, o, type: "MODIFIED"), s))
        }
    }

    func patch(_ r: ResourceType, namespace: String?, name: String, subresource: String?, contentType: String, _ body: [UInt8]) -> APIResult {
        let patchDoc: JSON
        do { patchDoc = try JSON.parse(bytes: body) } catch {
            return .error(Status.badRequest("error decoding patch: \(error)"))
        }
        let type = contentType.split(separator: ";").first.map { String($0).trimmingWhitespace.lowercased() } ?? ""
        guard let current = state.withLock({ $0.objects[r.qualified]?["\(namespace ?? "")/\(name)"] }) else {
            return .error(Status.notFound(r, name))
        }
        var patched: JSON
        switch type {
        case "application/merge-patch+json", "application/strategic-merge-patch+json":
            patched = mergePatch(current, patchDoc)
        case "application/json-patch+json":
            do { patched = try jsonPatch(current, patchDoc) } catch {
                return .error(Status.failure(code: 422, reason: "Invalid", message: error.message))
            }
        default:
            return .error(Status.failure(code: 415, reason: "UnsupportedMediaType",
                                         message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"))
        }
        // A resourceVersion the patch sets is a precondition; otherwise the
        // patch applies to the version it was computed from.
        let wanted = patchRV(patchDoc, type: type)
        if wanted == nil { patched[path: "metadata", "resourceVersion"] = current[path: "metadata", "resourceVersion"] }
        let result = update(r, namespace: namespace, name: name, subresource: subresource, patched)
        if result.status == 409, wanted == nil {   // lost a race with another writer: retry like the real server
            return patch(r, namespace: namespace, name: name, subresource: subresource, contentType: contentType, body)
        }
        return result
    }

    private func patchRV(_ patch: JSON, type: String) -> String? {
        if type == "application/json-patch+json" {
            for op in patch.arrayValue ?? [] where op["path"]?.stringValue == "/metadata/resourceVersion" {
                return op["value"]?.stringValue
            }
            return nil
        }
        return patch[path: "metadata", "resourceVersion"]?.stringValue
    }

    /// DELETE with optional `preconditions` (uid, resourceVersion). Pods
    /// first become terminating for `gracePeriodSeconds` (default
    /// `podGraceSeconds`), then go.
    func delete(_ r: ResourceType, namespace: String?, name: String, options: JSON?) -> APIResult {
        let grace = r == .pods ? (options?["gracePeriodSeconds"]?.intValue ?? podGraceSeconds) : 0
        return state.withLock { s in
            let key = "\(namespace ?? "")/\(name)"
            guard let old = s.objects[r.qualified]?[key] else { return .error(Status.notFound(r, name)) }
            if let rv = options?[path: "preconditions", "resourceVersion"]?.stringValue,
               let have = old[path: "metadata", "resourceVersion"]?.stringValue, rv != have {
                return .error(Status.conflict(r, name, "the ResourceVersion in the precondition (\(rv)) does not match the ResourceVersion in record (\(have)). The object might have been modified"))
            }
            if let uid = options?[path: "preconditions", "uid"]?.stringValue,
               let have = old[path: "metadata", "uid"]?.stringValue, uid != have {
                return .error(Status.conflict(r, name, "Precondition failed: UID in precondition: \(uid), UID in object meta: \(have)"))
            }
            var gone = old
            if r == .pods, grace > 0 {
                if old[path: "metadata", "deletionTimestamp"] != nil { return APIResult(200, old) }
                gone[path: "metadata", "deletionTimestamp"] = .string(RFC3339.format(wallNow().adding(.seconds(grace))))
                gone[path: "metadata", "deletionGracePeriodSeconds"] = JSON(grace)
                let terminating = commit(&s, r, key: key, gone, type: "MODIFIED")
                let uid = old[path: "metadata", "uid"]
                spawnThread { [self] in
                    sleepMillis(grace * 1000)
                    state.withLock { s in
                        guard let current = s.objects[r.qualified]?[key], current[path: "metadata", "uid"] == uid else { return }
                        _ = commit(&s, r, key: key, nil, type: "DELETED")
                    }
                }
                return APIResult(200, terminating)
            }
            if r == .pods { gone[path: "metadata", "deletionTimestamp"] = .string(RFC3339.format(wallNow())) }
            s.objects[r.qualified]?[key] = gone
            let deleted = commit(&s, r, key: key, nil, type: "DELETED")
            if r == .pods { return APIResult(200, deleted) }
            var details = Status.details(r, name: name)
            details["uid"] = old[path: "metadata", "uid"]
            return APIResult(200, Status.success(details: details))
        }
    }

    /// Serializes evictions: the decision and the delete are one step, as
    /// the real API server makes them one (it decrements the budget's
    /// `disruptionsAllowed` with optimistic concurrency before deleting), so
    /// two concurrent evictions can never both take the last disruption.
    let evictionGate = Mutex(0)

    /// POST pods/NAME/eviction: deletes the pod unless a PodDisruptionBudget forbids it.
    func evict(namespace: String, name: String) -> APIResult {
        evictionGate.withLock { _ in evictLocked(namespace: namespace, name: name) }
    }

    private func evictLocked(namespace: String, name: String) -> APIResult {
        let decision: APIResult? = state.withLock { s in
            let key = "\(namespace)/\(name)"
            guard let pod = s.objects[ResourceType.pods.qualified]?[key] else { return .error(Status.notFound(.pods, name)) }
            let podsInNS = (s.objects[ResourceType.pods.qualified] ?? [:]).values.filter { $0[path: "metadata", "namespace"]?.stringValue == namespace }
            let budgets = (s.objects[ResourceType.pdbs.qualified] ?? [:]).values
                .filter { $0[path: "metadata", "namespace"]?.stringValue == namespace }
                .map(DisruptionBudget.init)
                .filter { $0.selects(pod) }
            return DisruptionBudget.evictionDecision(pod: pod, budgets: budgets, pods: Array(podsInNS))
        }
        if let decision { return decision }
        let deleted = delete(.pods, namespace: namespace, name: name, options: nil)
        if deleted.status != 200 { return deleted }
        return APIResult(201, Status.success(code: 201))
    }

}
