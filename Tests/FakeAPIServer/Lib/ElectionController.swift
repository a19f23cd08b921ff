import KLCore
import KLSystem
import Synchronization

/// How the fake's coordinated-leader-election controller behaves (KEP-4355;
/// the kube-controller-manager's `leaderelection` controller). Off unless
/// `FakeAPIServerOptions.electionController` is set.
public struct ElectionControllerOptions: Sendable {
    /// How long the controller waits for pinged candidates to answer (by
    /// updating `renewTime`) before it elects; a candidate whose `renewTime`
    /// is younger than this needs no ping. 5 s on a real cluster.
    public var electionDuration: Duration = .seconds(5)
    /// `leaseDurationSeconds` the controller writes when it names a holder.
    public var leaseDurationSeconds = 5
    /// How often the controller looks at the candidates and Leases.
    public var pollInterval: Duration = .milliseconds(100)

    public init() {}
}

/// The election controller: for every Lease named by `LeaseCandidate`s it
///
/// 1. does nothing while the Lease is held (holder set, `renewTime +
///    leaseDurationSeconds` not past by the server's wall clock) by the best
///    candidate, or while `preferredHolder` already names the best;
/// 2. otherwise pings every candidate whose `renewTime` is older than the
///    election duration (writes `pingTime`), and waits until each ping is
///    answered (`renewTime` ≥ `pingTime`) or the election duration has
///    passed;
/// 3. elects among the candidates that answered (or were fresh) by
///    `OldestEmulationVersion`: lowest `emulationVersion`, then lowest
///    `binaryVersion`, then oldest `creationTimestamp` (then name);
/// 4. writes the holder (`holderIdentity`, `strategy`, its lease, `renewTime`;
///    `preferredHolder` cleared) when the Lease is absent, free or expired, and
///    `preferredHolder` when a better candidate exists than a valid holder.
///
/// Candidates that disagree on `strategy`, or a strategy other than
/// `OldestEmulationVersion` (a third-party controller's), are left alone.
/// Every write is conditional on the resourceVersion read, like any client.
final class ElectionController: Sendable {
    let store: Store
    let options: ElectionControllerOptions
    let log: Logger
    let stopped = Atomic(false)

    init(store: Store, options: ElectionControllerOptions, log: Logger) {
        self.store = store
        self.options = options
        self.log = log
    }

    func start() {
        spawnThread { [self] in
            while !stopped.load(ordering: .relaxed) {
                reconcileAll(now: wallNow())
                blockingSleep(options.pollInterval)
            }
        }
    }

    func stop() { stopped.store(true, ordering: .relaxed) }

    struct Candidate {
        var object: JSON
        var name: String { object[path: "metadata", "name"]?.stringValue ?? "" }
        var strategy: String { object[path: "spec", "strategy"]?.stringValue ?? "" }
        var pingTime: WallTime? { object[path: "spec", "pingTime"]?.stringValue.flatMap(RFC3339.parse) }
        var renewTime: WallTime? { object[path: "spec", "renewTime"]?.stringValue.flatMap(RFC3339.parse) }
        var emulation: SemVer? { object[path: "spec", "emulationVersion"]?.stringValue.flatMap(SemVer.init) }
        var binary: SemVer? { object[path: "spec", "binaryVersion"]?.stringValue.flatMap(SemVer.init) }
        var created: WallTime? { object[path: "metadata", "creationTimestamp"]?.stringValue.flatMap(RFC3339.parse) }
    }

    func reconcileAll(now: WallTime) {
        var groups: [String: [Candidate]] = [:]
        for item in store.list(.leaseCandidates, ObjectFilter()).items {
            let c = Candidate(object: item)
            guard let lease = item[path: "spec", "leaseName"]?.stringValue, !lease.isEmpty else { continue }
            groups["\(item[path: "metadata", "namespace"]?.stringValue ?? "")/\(lease)", default: []].append(c)
        }
        for (key, candidates) in groups.sorted(by: { $0.key < $1.key }) {
            let parts = key.split(separator: "/", maxSplits: 1).map(String.init)
            guard parts.count == 2 else { continue }
            reconcile(namespace: parts[0], lease: parts[1], candidates, now: now)
        }
    }

    /// The best candidate by OldestEmulationVersion; nil when none is eligible.
    static func best(_ candidates: [Candidate]) -> Candidate? {
        let valid = candidates.filter { $0.emulation != nil && $0.binary != nil }
        return valid.min { a, b in
            if a.emulation! != b.emulation! { return a.emulation! < b.emulation! }
            if a.binary! != b.binary! { return a.binary! < b.binary! }
            let ca = a.created ?? WallTime(seconds: 0), cb = b.created ?? WallTime(seconds: 0)
            if ca != cb { return ca < cb }
            return a.name < b.name
        }
    }

    static func expired(_ lease: JSON, now: WallTime) -> Bool {
        guard let renew = lease[path: "spec", "renewTime"]?.stringValue.flatMap(RFC3339.parse) else { return true }
        let seconds = lease[path: "spec", "leaseDurationSeconds"]?.intValue ?? 0
        return renew.adding(.seconds(max(0, min(seconds, 86_400)))) < now
    }

    func reconcile(namespace: String, lease name: String, _ candidates: [Candidate], now: WallTime) {
        let strategies = Set(candidates.map(\.strategy))
        guard strategies.count == 1, strategies.first == CandidateValidation.oldestEmulationVersion else { return }
        let lease = store.get(.leases, namespace, name)
        let holder = lease?[path: "spec", "holderIdentity"]?.stringValue ?? ""
        let held = lease.map { !holder.isEmpty && !Self.expired($0, now: now) } ?? false
        // Candidates pinged long ago that never answered are out of the running.
        let contenders = candidates.filter { c in
            guard let ping = c.pingTime, !(now < ping.adding(options.electionDuration)) else { return true }
            return !(c.renewTime.map { $0 < ping } ?? true)
        }
        if held {
            guard let best = Self.best(contenders), best.name != holder,
                  lease?[path: "spec", "preferredHolder"]?.stringValue != best.name else { return }
        }
        // Ping the candidates not heard from lately; wait for the answers.
        let window = options.electionDuration
        var waiting = false
        for c in candidates {
            let ping = c.pingTime, renew = c.renewTime
            if let ping, now < ping.adding(window), renew.map({ $0 < ping }) ?? true { waiting = true; continue }
            if let renew, now < renew.adding(window) { continue }
            let answered = ping.map { p in renew.map { !($0 < p) } ?? false } ?? true
            if answered {
                var pinged = c.object
                pinged[path: "spec", "pingTime"] = .string(RFC3339.formatMicro(now))
                let result = store.update(.leaseCandidates, namespace: namespace, name: c.name, subresource: nil, pinged)
                log.debug("election controller: pinged", ("candidate", .string("\(namespace)/\(c.name)")), ("status", JSON(result.status)))
                waiting = true
            }
            // Pinged more than the election duration ago and never answered: not eligible.
        }
        if waiting { return }
        let eligible = candidates.filter { c in c.renewTime.map { now < $0.adding(window) } ?? false }
        guard let best = Self.best(eligible) else { return }
        var spec = lease?["spec"]?.objectValue ?? JSONObject()
        spec["strategy"] = .string(CandidateValidation.oldestEmulationVersion)
        if held {
            guard best.name != holder, spec["preferredHolder"]?.stringValue != best.name else { return }
            spec["preferredHolder"] = .string(best.name)
        } else {
            spec["holderIdentity"] = .string(best.name)
            spec["leaseDurationSeconds"] = JSON(options.leaseDurationSeconds)
            spec["acquireTime"] = .string(RFC3339.formatMicro(now))
            spec["renewTime"] = .string(RFC3339.formatMicro(now))
            spec["preferredHolder"] = nil
        }
        let result: APIResult
        if var lease {
            lease["spec"] = .object(spec)
            result = store.update(.leases, namespace: namespace, name: name, subresource: nil, lease)
        } else {
            let object: JSON = ["apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                "metadata": ["name": .string(name), "namespace": .string(namespace)], "spec": .object(spec)]
            result = store.create(.leases, namespace: namespace, object)
        }
        log.info(held ? "election controller: preferred holder" : "election controller: elected",
                 ("lease", .string("\(namespace)/\(name)")), ("candidate", .string(best.name)),
                 ("previous_holder", .string(holder)), ("status", JSON(result.status)))
    }
}
