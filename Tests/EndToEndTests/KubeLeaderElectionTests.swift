import KLCore
import KLProcess
import Testing
import KLSystem

/// kube-leader as a black box: several replicas on one lock against
/// kube-apiserver-fake over TLS. Durations are short (lease 4s, renew
/// deadline 2s, retry 500ms, kill grace 1s) to keep the suite quick.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct KubeLeaderElectionTests {
    @Test(arguments: [LockKind.configMap, .lease])
    func oneLeaderAmongThree_thenGracefulHandOver(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        for name in ["a", "b", "c"] { try cluster.start(name) }
        #expect(eventually { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        let first = try #require(cluster.log.starts.first?.id)
        #expect(cluster.holder == first)
        // Only one child runs: give the others time to (wrongly) start.
        #expect(!eventually(.seconds(1)) { cluster.log.starts.count > 1 })

        // The leader's child exits by itself: the lock is released and a
        // standby's child starts quickly (no lease to wait out).
        let leader = try #require(cluster.replica(first))
        leader.signal(.terminate)  // forwarded to the worker, which exits 143
        #expect(leader.wait()?.exitCode == 143)
        #expect(eventually { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        let log = cluster.log
        let stop = try #require(log.stops.first { $0.id == first })
        let next = try #require(log.starts.last)
        #expect(next.id != first)
        let handOver = Duration.nanoseconds(next.time - stop.time)
        #expect(handOver < .seconds(3), "hand-over took \(handOver)")
        cluster.expectNoOverlap()
        let record = try #require(cluster.server.lock(kind, name: cluster.lockName)?.record)
        #expect(record.holderIdentity == next.id)
        #expect(record.leaderTransitions == 1)
    }

    @Test(arguments: [LockKind.configMap, .lease])
    func releaseOnExit_writesEmptyHolderAndOneSecondLease(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        let r = try cluster.start("solo", worker: ["--exit-after", "0.2", "--exit-code", "42"])
        #expect(r.wait()?.exitCode == 42)
        let record = try #require(cluster.server.lock(kind, name: cluster.lockName)?.record)
        #expect(record.holderIdentity == "")
        #expect(record.leaseDurationSeconds == 1)
        #expect(r.log.contains("\"msg\":\"released lock\""), "\(r.log)")
    }

    /// The leader dies with SIGKILL (no release): its child dies with it
    /// (PR_SET_PDEATHSIG) and a standby takes over after the lease expires.
    @Test(arguments: [LockKind.configMap, .lease])
    func sigkillOfLeader_failsOverAfterLease(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        try cluster.start("a")
        #expect(eventually { cluster.log.starts.count == 1 })
        try cluster.start("b")
        #expect(eventually { cluster.replica("b")!.log.contains("held by another replica") }, "\(cluster.diagnostics)")
        let killedAt = MonotonicClock.now
        cluster.replica("a")!.signal(.kill)
        #expect(cluster.replica("a")!.wait()?.exitCode == 137)
        #expect(eventually(.seconds(12)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        let failover = killedAt.duration(to: MonotonicClock.now)
        #expect(failover >= .seconds(3), "took over before the 4s lease could expire: \(failover)")
        #expect(failover < .seconds(4) + .seconds(2), "failover took \(failover)")
        #expect(cluster.holder == "b")
        cluster.expectNoOverlap()
    }

    /// The leader is cut off from the API (its token's requests hang): it must
    /// stop its child before the standby can start one.
    @Test(arguments: [LockKind.configMap, .lease])
    func partitionedLeader_stopsChildBeforeAnotherStarts(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        try cluster.server.registerToken("token-a")
        try cluster.server.registerToken("token-b")
        let a = try cluster.start("a", token: "token-a")
        #expect(eventually { cluster.log.starts.count == 1 })
        try cluster.start("b", token: "token-b")
        #expect(eventually { cluster.replica("b")!.log.contains("held by another replica") }, "\(cluster.diagnostics)")
        try cluster.server.setFaults(["partitionedTokens": ["token-a"], "partitionMode": "hang"])
        #expect(a.wait(.seconds(15))?.exitCode == 3, "\(a.log)")
        #expect(a.log.contains("leadership lost"))
        #expect(eventually(.seconds(15)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        let log = cluster.log
        let stopA = try #require(log.stops.first { $0.id == "a" })
        let startB = try #require(log.starts.first { $0.id == "b" })
        #expect(stopA.time < startB.time)
        cluster.expectNoOverlap()
    }

    /// SIGTERM while still waiting for the lock: exits at once, runs nothing.
    @Test func sigtermWhileWaiting_exitsWithoutRunningTheCommand() throws {
        let cluster = try Cluster()
        try cluster.start("a")
        #expect(eventually { cluster.log.starts.count == 1 })
        let b = try cluster.start("b")
        #expect(eventually { b.log.contains("held by another replica") })
        let sent = MonotonicClock.now
        b.signal(.terminate)
        #expect(b.wait(.seconds(5))?.exitCode == 143)
        #expect(sent.duration(to: .now) < .seconds(2))
        #expect(cluster.log.starts.count == 1)
    }

    /// A lock written by the Python client (string numbers, zone-less times),
    /// held by someone who stopped renewing: waited out, then taken over.
    @Test func foreignPythonRecord_isWaitedOutThenTakenOver() throws {
        let cluster = try Cluster()
        let raw = #"{"holderIdentity": "py-worker", "leaseDurationSeconds": "3", "acquireTime": "2026-11-28 05:27:02.706271", "renewTime": "2026-11-28 05:27:02.706271", "leaderTransitions": "6"}"#
        let (status, _) = try cluster.server.request("POST", "/api/v1/namespaces/default/configmaps", body: [
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": ["name": .string(cluster.lockName), "annotations": [LockKind.annotation: .string(raw), "keep": "me"]],
            "data": ["k": "v"],
        ])
        #expect(status == 201)
        let start = MonotonicClock.now
        try cluster.start("a")
        #expect(eventually(.seconds(10)) { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        #expect(start.duration(to: .now) >= .seconds(2))
        let lock = try #require(cluster.server.lock(.configMap, name: cluster.lockName))
        #expect(lock.record?.leaderTransitions == 7)
        #expect(lock.object[path: "metadata", "annotations", "keep"] == "me")
        #expect(lock.object[path: "data", "k"] == "v")
    }
}
