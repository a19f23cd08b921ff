import KLCore

/// A pod on the node being drained, reduced to what the drain decides on.
public struct DrainPod: Sendable, Equatable, Hashable {
    public var namespace: String
    public var name: String
    public var uid: String
    /// `metadata.ownerReferences[].kind` of the controller, if any.
    public var controllerKind: String?
    /// Has the `kubernetes.io/config.mirror` annotation (a static pod's API copy).
    public var isMirror: Bool
    /// `status.phase` is `Succeeded` or `Failed`: nothing left to stop.
    public var isFinished: Bool
    /// Has an `emptyDir` volume (kubectl: "local storage").
    public var hasEmptyDir: Bool
    /// `spec.terminationGracePeriodSeconds` (the API default is 30).
    public var terminationGracePeriodSeconds: Int

    public init(namespace: String, name: String, uid: String, controllerKind: String? = nil,
                isMirror: Bool = false, isFinished: Bool = false, hasEmptyDir: Bool = false,
                terminationGracePeriodSeconds: Int = 30) {
        self.namespace = namespace
        self.name = name
        self.uid = uid
        self.controllerKind = controllerKind
        self.isMirror = isMirror
        self.isFinished = isFinished
        self.hasEmptyDir = hasEmptyDir
        self.terminationGracePeriodSeconds = terminationGracePeriodSeconds
    }

    /// Reads a Pod object from the API.
    public init?(json: JSON) {
        guard let name = json[path: "metadata", "name"]?.stringValue else { return nil }
        self.name = name
        namespace = json[path: "metadata", "namespace"]?.stringValue ?? "default"
        uid = json[path: "metadata", "uid"]?.stringValue ?? ""
        controllerKind = json[path: "metadata", "ownerReferences"]?.arrayValue?
            .first { $0["controller"]?.boolValue == true }?["kind"]?.stringValue
        isMirror = json[path: "metadata", "annotations", "kubernetes.io/config.mirror"] != nil
        let phase = json[path: "status", "phase"]?.stringValue
        isFinished = phase == "Succeeded" || phase == "Failed"
        hasEmptyDir = (json[path: "spec", "volumes"]?.arrayValue ?? []).contains { $0["emptyDir"] != nil }
        // Clamped: an absurd value from the API must not trap arithmetic later.
        let grace = json[path: "spec", "terminationGracePeriodSeconds"]?.doubleValue ?? 30
        terminationGracePeriodSeconds = grace.isFinite ? Int(max(0, min(grace, 31_536_000))) : 30
    }

    public var key: String { "\(namespace)/\(name)" }
    public var isDaemonSet: Bool { controllerKind == "DaemonSet" }
}

/// Why a pod is left on the node. The texts are kubectl drain's.
public enum SkipReason: String, Sendable, Equatable {
    /// `--ignore-daemonsets` (kubectl: "ignoring DaemonSet-managed Pods").
    case daemonSet = "DaemonSet pod (ignoring DaemonSet-managed Pods)"
    /// kubectl refuses these without `--ignore-daemonsets`.
    case daemonSetNotIgnored = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
    /// A static pod's API copy: it cannot be deleted through the API server.
    case mirror = "mirror pod (cannot be deleted through the API server)"
    /// kubectl: "cannot delete Pods with local storage (use --delete-emptydir-data to override)".
    case localStorage = "Pods with local storage (use --delete-emptydir-data to override)"
    /// kubectl: "cannot delete Pods declaring no controller (use --force to override)".
    case unmanaged = "Pods declaring no controller (use --force to override)"

    /// True when kubectl would refuse the drain for it (an error, not a
    /// warning): logged as a warning, the pod stays.
    public var isRefusal: Bool { self != .daemonSet && self != .mirror }
}

/// Result of one eviction call, as the adapter saw it.
public enum EvictionResult: Sendable, Equatable {
    /// 200/201: the pod is being deleted.
    case accepted
    /// 404: the pod is already gone.
    case notFound
    /// 429: a PodDisruptionBudget forbids it now; retry (after `retryAfter`
    /// if the server said so). `budget` is the PDB's name when the answer
    /// named it ("The disruption budget NAME needs …").
    case blocked(retryAfter: Duration?, budget: String? = nil)
    /// Anything else (500 for several PDBs, network errors): retry later.
    case failed(String)
}

/// What the adapter does next.
public enum DrainAction: Sendable, Equatable {
    /// POST pods/eviction for this pod.
    case evict(DrainPod)
    /// RecordLifecycleActionHeartbeat (keeps the instance alive).
    case heartbeat
    /// Nothing to do before this instant (then call `next` again, after
    /// listing the node's pods and passing them to `observe`).
    case wait(until: MonotonicClock.Instant)
    /// Stop: complete the lifecycle action.
    case finish(DrainOutcome)
}

public enum DrainOutcome: Sendable, Equatable {
    /// Every pod that had to go is gone (or replaced: its UID changed).
    case drained
    /// `drainTimeout` ran out with these pods still there.
    case timedOut(remaining: [DrainPod])
}

/// Settings of a drain; defaults match kubectl and the Auto Scaling hook.
public struct DrainSettings: Sendable, Equatable {
    /// Give up (and complete with CONTINUE anyway) after this long. Default 10m.
    public var timeout: Duration = .seconds(600)
    /// Wait between eviction attempts blocked by a PDB (kubectl: 5 s).
    public var evictionRetry: Duration = .seconds(5)
    /// RecordLifecycleActionHeartbeat this often, well under the hook's
    /// `HeartbeatTimeout`. Default 60 s.
    public var heartbeatInterval: Duration = .seconds(60)
    /// List the node's pods this often while waiting for them to go. Default 2 s.
    public var pollInterval: Duration = .seconds(2)
    /// kubectl `--delete-emptydir-data`: evict pods with `emptyDir` volumes. Default false.
    public var deleteEmptyDirData = false
    /// kubectl `--force`: evict pods that declare no controller. Default false.
    public var force = false
    /// kubectl `--ignore-daemonsets`. Default true (kubectl: false, which
    /// refuses every node that runs a DaemonSet; either way they stay).
    public var ignoreDaemonSets = true
    /// kubectl `--pod-selector`: only pods with these labels are drained
    /// (sent to the API server as `labelSelector`). Default none.
    public var podSelector: String? = nil
    /// kubectl `--grace-period`: seconds each pod gets to stop; nil (kubectl
    /// -1) uses the pod's own. Always capped to the drain time left.
    public var gracePeriodSeconds: Int? = nil
}

/// The drain of one node as a pure state machine (`DrainPlan.make` builds it).
///
/// The adapter loops: `observe(pods:now:)` with the node's current pods,
/// `next(now:)` for the actions, carries them out, reports each eviction with
/// `record(_:for:now:)`, and waits at most until the `.wait` instant. Time is
/// only ever a parameter, so tests drive hours of drain with a fake clock.
///
/// Guarantees: `.finish` is returned once and then again on every later call
/// (the adapter completes the action exactly once); DaemonSet and mirror pods
/// are never evicted; a pod counts as gone when it is missing from the list or
/// its UID changed (a StatefulSet replacement with the same name).
public struct DrainPlan: Sendable {
    enum Progress: Sendable, Equatable {
        /// Evict at or after this instant.
        case pending(MonotonicClock.Instant)
        /// Eviction accepted; waiting for the pod (with this UID) to go.
        case evicted
        case gone
    }

    public let settings: DrainSettings
    public let started: MonotonicClock.Instant
    /// Pods left on the node on purpose, with the reason.
    public private(set) var skipped: [(DrainPod, SkipReason)]
    private(set) var pods: [DrainPod]
    private(set) var progress: [String: Progress]
    private var lastHeartbeat: MonotonicClock.Instant
    private var outcome: DrainOutcome?
    /// Eviction attempts per pod key (for logs).
    public private(set) var attempts: [String: Int] = [:]

    /// kubectl drain's filters, in its order (daemonSet, mirror, local
    /// storage, unreplicated; the first that objects decides): nil when the
    /// pod is evicted. Finished pods need nothing and are not listed here.
    public static func skipReason(_ pod: DrainPod, settings: DrainSettings) -> SkipReason? {
        if pod.isDaemonSet { return settings.ignoreDaemonSets ? .daemonSet : .daemonSetNotIgnored }
        if pod.isMirror { return .mirror }
        if pod.hasEmptyDir && !settings.deleteEmptyDirData { return .localStorage }
        if pod.controllerKind == nil && !settings.force { return .unmanaged }
        return nil
    }

    /// Builds the plan from the pods on the node (`spec.nodeName`), in list
    /// order: finished pods need nothing; the others pass `skipReason`.
    public static func make(pods: [DrainPod], settings: DrainSettings, now: MonotonicClock.Instant) -> DrainPlan {
        var skipped: [(DrainPod, SkipReason)] = []
        var evict: [DrainPod] = []
        for pod in pods {
            if pod.isFinished { continue }
            if let reason = skipReason(pod, settings: settings) { skipped.append((pod, reason)); continue }
            evict.append(pod)
        }
        return DrainPlan(settings: settings, started: now, skipped: skipped, pods: evict,
                         progress: Dictionary(uniqueKeysWithValues: evict.map { ($0.key, .pending(now)) }),
                         lastHeartbeat: now)
    }

    /// The deadline after which the drain gives up.
    public var deadline: MonotonicClock.Instant { started + settings.timeout }

    /// `DeleteOptions.gracePeriodSeconds` for evicting `pod` at `now`:
    /// `--grace-period` or the pod's own, capped to the whole seconds left
    /// before the deadline (at least 1), so the drain timeout holds. nil when
    /// the pod's own period fits (kubectl sends none then either).
    public func gracePeriod(for pod: DrainPod, now: MonotonicClock.Instant) -> Int? {
        let wanted = settings.gracePeriodSeconds ?? pod.terminationGracePeriodSeconds
        let left = max(1, Int((deadline - now).components.seconds))
        if wanted > left { return left }
        return settings.gracePeriodSeconds
    }

    /// Pods still to go (pending or evicted but not yet gone).
    public var remaining: [DrainPod] { pods.filter { progress[$0.key] != .gone } }

    /// Reports the node's pods as listed now: pods missing from the list, or
    /// present with another UID, are gone.
    /// Pods that arrived while the drain runs (bound just before the cordon
    /// took effect) are adopted: evicted too, or skipped for the same
    /// reasons. Returns the pods adopted for eviction.
    @discardableResult
    public mutating func observe(pods current: [DrainPod], now: MonotonicClock.Instant) -> [DrainPod] {
        var uidByKey: [String: String] = [:]
        for p in current where !p.isFinished { uidByKey[p.key] = p.uid }
        for pod in pods where progress[pod.key] != .gone {
            if let uid = uidByKey[pod.key], uid == pod.uid { continue }
            progress[pod.key] = .gone
        }
        var adopted: [DrainPod] = []
        guard outcome == nil else { return adopted }
        for pod in current where !pod.isFinished && progress[pod.key] == nil && !skipped.contains(where: { $0.0.key == pod.key }) {
            if let reason = Self.skipReason(pod, settings: settings) {
                skipped.append((pod, reason))
                continue
            }
            pods.append(pod)
            progress[pod.key] = .pending(now)
            adopted.append(pod)
        }
        return adopted
    }

    /// Reports what an eviction returned.
    public mutating func record(_ result: EvictionResult, for pod: DrainPod, now: MonotonicClock.Instant) {
        guard progress[pod.key] != nil, progress[pod.key] != .gone else { return }
        attempts[pod.key, default: 0] += 1
        switch result {
        case .accepted:
            progress[pod.key] = .evicted
        case .notFound:
            progress[pod.key] = .gone
        case .blocked(let retryAfter, _):
            // kubectl waits 5 s; honour a longer Retry-After from the server.
            let wait = max(settings.evictionRetry, retryAfter ?? .zero)
            progress[pod.key] = .pending(now + wait)
        case .failed:
            progress[pod.key] = .pending(now + settings.evictionRetry)
        }
    }

    /// Reports that a heartbeat was sent.
    public mutating func heartbeatSent(now: MonotonicClock.Instant) {
        lastHeartbeat = now
    }

    /// The actions due at `now`:
    /// 1. done when nothing remains, or when the deadline passed;
    /// 2. a heartbeat when one is due;
    /// 3. an eviction for each pod whose retry time has come, in list order;
    /// 4. otherwise wait until the earliest of: next retry, next poll (when a
    ///    pod is evicted but not gone), next heartbeat, deadline.
    public mutating func next(now: MonotonicClock.Instant) -> [DrainAction] {
        if let outcome { return [.finish(outcome)] }
        let left = remaining
        if left.isEmpty {
            outcome = .drained
            return [.finish(.drained)]
        }
        if now >= deadline {
            outcome = .timedOut(remaining: left)
            return [.finish(outcome!)]
        }
        var actions: [DrainAction] = []
        if now >= lastHeartbeat + settings.heartbeatInterval {
            actions.append(.heartbeat)
        }
        var wake = min(deadline, lastHeartbeat + settings.heartbeatInterval)
        if now >= lastHeartbeat + settings.heartbeatInterval {
            wake = min(deadline, now + settings.heartbeatInterval)
        }
        for pod in left {
            switch progress[pod.key] {
            case .pending(let at) where at <= now:
                actions.append(.evict(pod))
                wake = min(wake, now + settings.pollInterval)
            case .pending(let at):
                wake = min(wake, at)
            case .evicted:
                wake = min(wake, now + settings.pollInterval)
            default:
                break
            }
        }
        actions.append(.wait(until: wake))
        return actions
    }
}
