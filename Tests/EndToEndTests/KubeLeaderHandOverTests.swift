#if canImport(Glibc)
import Glibc
#endif
import KLCore
import KLKube
import KLProcess
import KLSystem
import KLTransport
import Testing

/// Hand-over when asked, on the built binary against
/// kube-apiserver-fake: the owner names a standby as preferred holder
/// (`kubectl annotate configmap … kube-leader.io/preferred-holder=c`, or
/// `kubectl patch lease … spec.preferredHolder`); the leader stops its worker,
/// releases keeping the name, and stands by again without exiting; the named
/// replica leads next, the other standby does not race it; never two workers.
/// Timing: lease 4s, renew deadline 2s, retry 500ms.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct KubeLeaderHandOverTests {
    @Test(arguments: [LockKind.configMap, .lease])
    func preferredHolderNamed_leadershipMovesToIt_once(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        let a = try cluster.start("a")
        #expect(eventually { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        let b = try cluster.start("b")
        let c = try cluster.start("c")
        #expect(eventually { b.log.contains("held by another replica") && c.log.contains("held by another replica") }, "\(cluster.diagnostics)")
        let edited = MonotonicClock.now
        try prefer(cluster, "c")
        #expect(eventually(.seconds(10)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        #expect(cluster.log.starts.map(\.id) == ["a", "c"], "\(cluster.diagnostics)")
        if let (toStop, toStart) = handOverTimes(cluster, from: "a", editedAt: edited, label: "hand-over (\(kind.rawValue))") {
            // Seen by the leader's watch (the next renew at the latest, ≤ retry
            // 500 ms) plus the worker's own stop; the release and the new
            // start follow within 250 ms (a loaded test machine gets a second).
            #expect(toStop < .milliseconds(500 + 700), "edit → old worker stopped: \(toStop)")
            #expect(toStart - toStop < .seconds(1), "old worker stopped → new started: \(toStart - toStop)")
        }
        #expect(eventually(.seconds(5)) { a.log.contains("handed over; standing by again") }, "\(a.log)")
        #expect(a.log.contains("the lock names another preferred holder; handing over"))
        #expect(a.wait(.milliseconds(1)) == nil, "kube-leader a exited: \(a.log)")
        #expect(cluster.holder == "c")
        #expect(preferred(cluster) == "c", "the release or the take-over dropped the preferred holder")
        // Nothing moves again: no ping-pong, b never led.
        blockingSleep(.seconds(3))
        #expect(cluster.log.starts.map(\.id) == ["a", "c"], "\(cluster.diagnostics)")
        #expect(a.wait(.milliseconds(1)) == nil && b.wait(.milliseconds(1)) == nil)
        cluster.expectNoOverlap()
    }

    /// A name nobody answers to: the leader hands over once; after a lease
    /// one replica leads again, and nobody hands over again.
    @Test func preferredHolderAbsent_oneHandOver_thenALeaderAfterALease() throws {
        let cluster = try Cluster(kind: .lease)
        let a = try cluster.start("a")
        #expect(eventually { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        let b = try cluster.start("b")
        #expect(eventually { b.log.contains("held by another replica") }, "\(cluster.diagnostics)")
        let edited = MonotonicClock.now
        try prefer(cluster, "nobody")
        #expect(eventually(.seconds(15)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        let took = edited.duration(to: MonotonicClock.now)
        #expect(took >= .seconds(4), "someone took the lock before the named one's lease: \(took)")
        #expect(took < .seconds(4) + .milliseconds(500 * 3 + 2_000), "\(took)")
        blockingSleep(.seconds(3))
        #expect(cluster.log.starts.count == 2, "ping-pong: \(cluster.diagnostics)")
        #expect(a.wait(.milliseconds(1)) == nil && b.wait(.milliseconds(1)) == nil)
        cluster.expectNoOverlap()
    }

    /// The leader watches the lock between renews: with a 3 s retry period
    /// and the edit made right after a renew (the next one is ~3 s away), the
    /// old worker is told at once and the new one starts within the old
    /// one's stop time + 250 ms (a loaded test machine gets a margin), far
    /// below the retry period that seeing it at the renew would cost.
    @Test(arguments: [LockKind.configMap, .lease])
    func preferredHolderEdit_seenByTheLeadersWatch_notAtTheRenew(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind, timing: ["--lease-duration", "15s", "--renew-deadline", "10s", "--retry-period", "3s"])
        let a = try cluster.start("a")
        #expect(eventually(.seconds(10)) { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        let b = try cluster.start("b")
        #expect(eventually(.seconds(10)) { b.log.contains("held by another replica") }, "\(cluster.diagnostics)")
        // Right after a renew (the lock's resourceVersion moves), the next is a retry period away.
        let before = version(cluster)
        #expect(eventually(.seconds(5)) { version(cluster) != before }, "no renew seen")
        let edited = MonotonicClock.now
        try prefer(cluster, "b")
        #expect(eventually(.seconds(10)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        #expect(cluster.log.starts.map(\.id) == ["a", "b"], "\(cluster.diagnostics)")
        guard let (toStop, toStart) = handOverTimes(cluster, from: "a", editedAt: edited, label: "hand-over watched (\(kind.rawValue))") else { return }
        // The worker records its stop within its 20 ms poll of SIGTERM: the
        // edit reached the old worker at once, not at the renew 3 s later.
        #expect(toStop < .milliseconds(1_000), "edit → old worker stopped: \(toStop) (the renew is 3 s after the edit)")
        #expect(toStart - toStop < .milliseconds(250 + 500), "old worker stopped → new started: \(toStart - toStop)")
        #expect(toStart < .milliseconds(1_500), "edit → new worker: \(toStart), not well below the 3 s retry period")
        #expect(a.log.contains("the leader's watch saw the lock change"), "\(a.log)")
        #expect(eventually(.seconds(5)) { a.log.contains("handed over; standing by again") }, "\(a.log)")
        #expect(a.wait(.milliseconds(1)) == nil && b.wait(.milliseconds(1)) == nil)
        cluster.expectNoOverlap()
    }

    @Test func help_explainsTheHandOver() throws {
        let help = try runCapturing([Paths.kubeLeader, "--help"], timeout: .seconds(10))
        let text = String(decoding: help.stdout, as: UTF8.self)
        #expect(text.contains("kube-leader.io/preferred-holder") && text.contains("spec.preferredHolder"), "\(text)")
    }

    // MARK: helpers

    /// Edit → the old worker's recorded stop, and edit → the new worker's
    /// start, from the workers' own log; records an issue (and nil) unless
    /// `from` stopped and a second worker started after that stop.
    func handOverTimes(_ cluster: Cluster, from old: String, editedAt edited: MonotonicClock.Instant,
                       label: String) -> (toStop: Duration, toStart: Duration)? {
        let log = cluster.log
        let editNs = Int64(edited.nanoseconds)
        guard log.starts.count == 2, let stop = log.stops.first(where: { $0.id == old }) else {
            Issue.record("no stop of \(old), or not two starts: \(cluster.diagnostics)"); return nil
        }
        let toStop = Duration.nanoseconds(stop.time - editNs), toStart = Duration.nanoseconds(log.starts[1].time - editNs)
        print("\(label): edit → old worker stopped \(toStop), edit → new worker started \(toStart), stop → start \(toStart - toStop)")
        #expect(stop.time < log.starts[1].time, "the new worker started before the old one stopped")
        return (toStop, toStart)
    }

    func path(_ cluster: Cluster) -> String {
        cluster.kind == .configMap
            ? "/api/v1/namespaces/default/configmaps/\(cluster.lockName)"
            : "/apis/coordination.k8s.io/v1/namespaces/default/leases/\(cluster.lockName)"
    }

    /// What `kubectl annotate` / `kubectl patch` does: read, change, write
    /// with the resourceVersion read (again on a conflict).
    func prefer(_ cluster: Cluster, _ name: String) throws {
        for _ in 0..<20 {
            let (status, body) = try cluster.server.request("GET", path(cluster))
            guard status == 200, var object = body else { throw HarnessError("GET of the lock answered \(status)") }
            switch cluster.kind {
            case .configMap: object[path: "metadata", "annotations", LockKind.preferredHolderAnnotation] = .string(name)
            case .lease: object[path: "spec", "preferredHolder"] = .string(name)
            }
            let (put, _) = try cluster.server.request("PUT", path(cluster), body: object)
            if put == 200 { return }
            if put != 409 { throw HarnessError("PUT of the lock answered \(put)") }
        }
        throw HarnessError("the lock kept conflicting")
    }

    func version(_ cluster: Cluster) -> String? {
        guard let answer = try? cluster.server.request("GET", path(cluster)), answer.0 == 200 else { return nil }
        return answer.1?[path: "metadata", "resourceVersion"]?.stringValue
    }

    func preferred(_ cluster: Cluster) -> String? {
        cluster.server.lock(cluster.kind, name: cluster.lockName)?.preferredHolder
    }
}
