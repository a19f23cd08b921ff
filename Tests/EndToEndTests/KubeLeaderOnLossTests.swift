#if canImport(Glibc)
import Glibc
#endif
import KLCore
import KLKube
import KLProcess
import KLSystem
import KLTransport
import Testing

/// `--on-loss standby`, on the built binary against
/// kube-apiserver-fake: a leader that loses the lock stops its child (the
/// worker records the stop), does NOT exit, stands by again, and leads again
/// once it wins the lock again; never two workers at once. Timing: lease 4s,
/// renew deadline 2s, retry 500ms.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct KubeLeaderOnLossTests {
    /// One replica, the whole API failing (503) for 5 s: it loses at its renew
    /// deadline, stops the worker, stands by, and after the outage leads again
    /// within lease + retry (+ slack for process start). /leader and /metrics
    /// count the loss.
    @Test(arguments: [LockKind.configMap, .lease])
    func outage_lossThenRejoin_leadsAgain_noExit(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        let a = try cluster.start("a", extra: ["--on-loss", "standby", "--status-addr", "127.0.0.1:0"])
        #expect(eventually { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        try cluster.server.setFaults(["errorRate": 1, "errorStatus": 503])
        #expect(eventually(.seconds(10)) { cluster.log.stops.count == 1 }, "\(cluster.diagnostics)")
        #expect(eventually(.seconds(5)) { a.log.contains("child stopped and reaped; standing by again") }, "\(a.log)")
        #expect(a.wait(.milliseconds(1)) == nil, "kube-leader exited: \(a.log)")
        blockingSleep(.seconds(3))   // the outage goes on while it stands by
        #expect(cluster.log.starts.count == 1, "a child started during the outage: \(cluster.diagnostics)")
        try cluster.server.setFaults(["errorRate": 0])
        let ended = MonotonicClock.now
        #expect(eventually(.seconds(10)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        let took = ended.duration(to: MonotonicClock.now)
        #expect(took < .milliseconds(4_000 + 500 + 1_000), "recovered \(took) after the outage (lease 4s, retry 500ms)")
        #expect(a.wait(.milliseconds(1)) == nil, "kube-leader exited: \(a.log)")
        let log = cluster.log
        #expect(log.starts.map(\.id) == ["a", "a"])
        #expect(log.stops[0].time < log.starts[1].time)
        cluster.expectNoOverlap()
        #expect(a.log.contains("standing by again after losing leadership"))
        // What the surfaces say.
        let url = try #require(statusURL(a))
        let leader = try JSON.parse(get(url, "/leader").bodyText)
        #expect(leader["leading"] == true && leader["losses"] == 1, "\(leader)")
        #expect(leader["last_loss_reason"]?.stringValue?.contains("could not renew") == true, "\(leader)")
        #expect(try get(url, "/metrics").bodyText.contains("kube_leader_leadership_losses_total{name=\"\(cluster.lockName)\"} 1\n"))
        // The child's own exit still ends kube-leader with its code.
        a.signal(.terminate)
        #expect(a.wait(.seconds(10))?.exitCode == 143, "\(a.log)")
    }

    /// The leader alone is cut off (its requests hang): it stops its worker,
    /// the standby takes over after the lease; the old leader stands by
    /// again, and when the new leader's worker ends it takes the released
    /// lock at once. a never exits; workers a, b, a; no overlap.
    @Test(arguments: [LockKind.configMap, .lease])
    func partitionedLeader_standsByAgain_thenLeadsAfterTheOthersRelease(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        try cluster.server.registerToken("token-a")
        try cluster.server.registerToken("token-b")
        let a = try cluster.start("a", token: "token-a", extra: ["--on-loss", "standby"])
        #expect(eventually { cluster.log.starts.count == 1 })
        let b = try cluster.start("b", token: "token-b")
        #expect(eventually { b.log.contains("held by another replica") }, "\(cluster.diagnostics)")
        try cluster.server.setFaults(["partitionedTokens": ["token-a"], "partitionMode": "hang"])
        #expect(eventually(.seconds(15)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        #expect(eventually(.seconds(5)) { a.log.contains("child stopped and reaped; standing by again") }, "\(a.log)")
        try cluster.server.setFaults(["partitionedTokens": []])
        #expect(eventually(.seconds(10)) { a.log.contains("lock is held by another replica") && a.log.components("standing by again after losing leadership") == 1 },
                "\(a.log)")
        blockingSleep(.seconds(1))
        let released = MonotonicClock.now
        b.signal(.terminate)   // b's worker stops; b releases the lock and exits 143
        #expect(b.wait(.seconds(10))?.exitCode == 143, "\(b.log)")
        #expect(eventually(.seconds(5)) { cluster.log.starts.count == 3 }, "\(cluster.diagnostics)")
        #expect(released.duration(to: MonotonicClock.now) < .seconds(3))
        #expect(a.wait(.milliseconds(1)) == nil, "kube-leader a exited: \(a.log)")
        #expect(cluster.log.starts.map(\.id) == ["a", "b", "a"])
        cluster.expectNoOverlap()
        #expect(cluster.holder == "a")
    }

    // MARK: helpers

    // statusURL(_:) and get(_:_:) live in Harness.swift.
}

extension String {
    /// How many lines contain `needle`.
    func components(_ needle: String) -> Int { split(separator: "\n").filter { $0.contains(needle) }.count }
}
