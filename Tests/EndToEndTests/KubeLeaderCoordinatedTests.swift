#if canImport(Glibc)
import Glibc
#endif
import KLCore
import KLProcess
import KLSystem
import Testing

/// `--coordinated` (docs/coordinated.md) on the built binary against
/// kube-apiserver-fake with its coordinated-election controller on.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct KubeLeaderCoordinatedTests {
    func candidatePath(_ name: String) -> String { "/apis/coordination.k8s.io/v1beta1/namespaces/default/leasecandidates/\(name)" }

    func coordinated(_ version: String) -> [String] { ["--coordinated", "--binary-version", version] }

    /// A rolling update: two replicas of 1.0.0 lead (one of them), two of
    /// 1.1.0 join, the old ones stop (standby first, then the leader).
    /// Leadership stays on the old version while any old replica leads, then
    /// moves exactly once, to a new replica; never two children.
    @Test func rollingUpdate_movesLeadershipExactlyOnce_toTheNewVersion() throws {
        let cluster = try Cluster(kind: .lease, serverArguments: ["--election-controller", "--election-duration", "2s", "--election-lease", "3"])
        for name in ["old-a", "old-b"] { try cluster.start(name, extra: coordinated("1.0.0")) }
        #expect(eventually(.seconds(20)) { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        let first = try #require(cluster.log.starts.first?.id)
        #expect(first.hasPrefix("old-"))
        for name in ["new-a", "new-b"] { try cluster.start(name, extra: coordinated("1.1.0")) }
        #expect(eventually { (try? cluster.server.request("GET", candidatePath("new-b")).0) == 200 }, "\(cluster.diagnostics)")
        // The newer version is not better: no hand-over is asked, no child starts.
        #expect(!eventually(.seconds(3)) { cluster.log.starts.count > 1 }, "\(cluster.diagnostics)")
        let lease = try #require(cluster.server.lock(.lease, name: cluster.lockName))
        #expect(lease.record?.holderIdentity == first)
        #expect(lease.record?.otherFields["preferredHolder"] == nil)
        #expect(lease.record?.otherFields["strategy"] == "OldestEmulationVersion")

        // Old standby goes first, then the old leader (its worker gets SIGTERM).
        let standby = try #require(cluster.replica(first == "old-a" ? "old-b" : "old-a"))
        standby.signal(.terminate)
        #expect(standby.wait()?.exitCode == 143)   // 128 + SIGTERM: it never led
        #expect((try cluster.server.request("GET", candidatePath(standby.identity))).0 == 404, "its LeaseCandidate is deleted on exit")
        let leader = try #require(cluster.replica(first))
        leader.signal(.terminate)
        #expect(leader.wait()?.exitCode == 143)
        #expect((try cluster.server.request("GET", candidatePath(first))).0 == 404)

        #expect(eventually(.seconds(20)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        let second = try #require(cluster.log.starts.last?.id)
        #expect(second.hasPrefix("new-"), "\(cluster.diagnostics)")
        #expect(!eventually(.seconds(3)) { cluster.log.starts.count > 2 }, "\(cluster.diagnostics)")
        #expect(cluster.holder == second)
        cluster.expectNoOverlap()
        let replica = try #require(cluster.replica(second))
        #expect(replica.log.contains("LeaseCandidate ready"), "\(replica.log)")
        for r in cluster.replicas where r.status == nil { r.signal(.terminate); r.wait() }
    }

    /// The controller, not a race, picks the next leader: with new replicas
    /// standing by (started first, so older candidates), the old leader's
    /// exit hands the lock to the remaining old replica, three times in a row.
    @Test func leaderExits_nextLeaderIsTheOldestVersion_notTheFastestStandby() throws {
        let cluster = try Cluster(kind: .lease, serverArguments: ["--election-controller", "--election-duration", "2s", "--election-lease", "3"])
        for name in ["new-a", "new-b"] { try cluster.start(name, extra: coordinated("2.0.0")) }
        #expect(eventually(.seconds(20)) { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        for round in 1...3 {
            let current = try #require(cluster.log.starts.last?.id)
            try cluster.start("old-\(round)", extra: coordinated("1.9.\(round)"))
            if round == 1 {
                // A better candidate appeared: the controller names it
                // preferred holder, and the leader hands over by itself
                // (hand-over when asked): its child stops, it releases keeping the
                // name, and it stands by again without exiting.
                #expect(eventually(.seconds(10)) { cluster.server.lock(.lease, name: cluster.lockName)?.record?.otherFields["preferredHolder"] == "old-1" },
                        "\(cluster.diagnostics)")
                let leader = try #require(cluster.replica(current))
                #expect(eventually(.seconds(10)) { leader.log.contains("handed over; standing by again") }, "\(leader.log)")
                #expect(leader.wait(.milliseconds(1)) == nil, "the leader exited instead of handing over: \(leader.log)")
            } else {
                let leader = try #require(cluster.replica("old-\(round - 1)"))
                leader.signal(.terminate)
                #expect(leader.wait()?.exitCode == 143)
            }
            #expect(eventually(.seconds(20)) { cluster.log.starts.last?.id == "old-\(round)" }, "\(cluster.diagnostics)")
        }
        #expect(cluster.log.starts.count == 4)
        cluster.expectNoOverlap()
        for r in cluster.replicas where r.status == nil { r.signal(.terminate); r.wait() }
    }

    /// A cluster without the LeaseCandidate API: one clear error, exit 2,
    /// nothing started, no retry loop.
    @Test func clusterWithoutLeaseCandidates_exits2AtStartUp() throws {
        let cluster = try Cluster(kind: .lease, serverArguments: ["--no-lease-candidates"])
        let marker = cluster.dir.file("child-ran")
        let started = MonotonicClock.now
        let r = try Replica(identity: "x", arguments: ["--lock-kind", "lease"] + cluster.timing + coordinated("1.0.0") + ["lock", "--", "touch", marker],
                            environment: cluster.environment(identity: "x"), dir: cluster.dir)
        #expect(r.wait()?.exitCode == 2, "\(r.log)")
        #expect(MonotonicClock.now - started < .seconds(5))
        #expect(!fileExists(marker))
        #expect(r.log.contains("does not serve coordination.k8s.io/v1beta1 leasecandidates"), "\(r.log)")
        #expect(r.log.split(separator: "\n").filter { $0.contains("cannot create leasecandidate") }.count == 2, "one error (log line and stderr), no loop: \(r.log)")
        #expect(cluster.server.lock(.lease, name: "lock") == nil)
    }

    @Test func configMapLock_exits2NamingTheRule() throws {
        let cluster = try Cluster(kind: .configMap)
        let r = try Replica(identity: "x", arguments: ["--lock-kind", "configmap"] + coordinated("1.0.0") + ["lock", "--", "true"],
                            environment: cluster.environment(identity: "x"), dir: cluster.dir)
        #expect(r.wait()?.exitCode == 2)
        #expect(r.log.contains("--coordinated needs --lock-kind lease"), "\(r.log)")
    }
}
