#if canImport(Glibc)
import Glibc
#endif
import KLCore
import KLKube
import KLProcess
import KLSystem
import KLTransport
import Testing

/// What the surfaces say about hand-overs and losses, on the built
/// binary against kube-apiserver-fake: `/leader` (`hand_overs`,
/// `last_hand_over_to`), `/metrics` (`kube_leader_hand_overs_total`, parsed by
/// the Prometheus client library) and the Events `HandedOver` and
/// `LeadershipLost` on the lock. Timing: lease 4s, renew deadline 2s, retry 500ms.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct KubeLeaderHandOverSurfacesTests {
    let surfaces = ["--status-addr", "127.0.0.1:0", "--events"]

    /// (reason, type, message) of every Event in the namespace.
    func events(_ cluster: Cluster) -> [[String]] {
        guard let (_, body) = try? cluster.server.request("GET", "/api/v1/namespaces/default/events") else { return [] }
        return (body?["items"]?.arrayValue ?? []).map { e in
            ["reason", "type", "message"].map { e[$0]?.stringValue ?? "" }
        }
    }

    /// a leads, a preferred holder b is named: a hands over and counts it on
    /// every surface; b, which took the lock, counts none.
    @Test(arguments: [LockKind.configMap, .lease])
    func handOver_countedInLeaderJSON_metrics_andAnEvent(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        let a = try cluster.start("a", extra: surfaces)
        #expect(eventually { cluster.log.starts.count == 1 }, "\(cluster.diagnostics)")
        let b = try cluster.start("b", extra: surfaces)
        #expect(eventually { b.log.contains("held by another replica") }, "\(cluster.diagnostics)")
        let aURL = try #require(statusURL(a)), bURL = try #require(statusURL(b))
        let before = try JSON.parse(get(aURL, "/leader").bodyText)
        #expect(before["hand_overs"] == 0 && before["last_hand_over_to"] == .null, "\(before)")

        try KubeLeaderHandOverTests().prefer(cluster, "b")
        #expect(eventually(.seconds(10)) { cluster.log.starts.map(\.id) == ["a", "b"] }, "\(cluster.diagnostics)")
        #expect(eventually(.seconds(5)) { a.log.contains("handed over; standing by again") }, "\(a.log)")
        let leader = try JSON.parse(get(aURL, "/leader").bodyText)
        #expect(leader["hand_overs"] == 1 && leader["last_hand_over_to"] == "b", "\(leader)")
        #expect(leader["leading"] == false && leader["losses"] == 0, "a hand-over is no loss: \(leader)")
        #expect(eventually { (try? JSON.parse(get(bURL, "/leader").bodyText))?["leading"] == true })
        #expect(try JSON.parse(get(bURL, "/leader").bodyText)["hand_overs"] == 0)

        let parsed = try KubeLeaderSurfacesTests().prometheus(get(aURL, "/metrics").bodyText)
        let family = parsed["kube_leader_hand_overs"]
        #expect(family?["type"] == "counter", "\(parsed)")
        #expect(family?["samples"]?[0]?["name"] == "kube_leader_hand_overs_total")
        #expect(family?["samples"]?[0]?["labels"] == ["name": .string(cluster.lockName)])
        #expect(family?["samples"]?[0]?["value"]?.doubleValue == 1)
        #expect(parsed["kube_leader_leadership_losses"]?["samples"]?[0]?["value"]?.doubleValue == 0)
        let standby = try KubeLeaderSurfacesTests().prometheus(get(bURL, "/metrics").bodyText)
        #expect(standby["kube_leader_hand_overs"]?["samples"]?[0]?["value"]?.doubleValue == 0)

        // a's Events: became leader, stopped leading (its release), handed
        // over; b's "became leader" may come anywhere after a's release.
        #expect(eventually { events(cluster).contains(["LeaderElection", "Normal", "b became leader"]) }, "\(events(cluster))")
        #expect(eventually { events(cluster).contains { $0[0] == "HandedOver" } }, "\(events(cluster))")
        let ofA = events(cluster).filter { $0[2].hasPrefix("a ") }
        #expect(ofA == [["LeaderElection", "Normal", "a became leader"], ["LeaderElection", "Normal", "a stopped leading"],
                        ["HandedOver", "Normal", "a handed over to the preferred holder b"]], "\(events(cluster))")
        #expect(!events(cluster).contains { $0[0] == "LeadershipLost" })
        #expect(a.wait(.milliseconds(1)) == nil && b.wait(.milliseconds(1)) == nil)
        cluster.expectNoOverlap()
    }

    /// `--on-loss standby`, another writer hands the lock to a made-up
    /// holder: the loss is an Event of its own (LeadershipLost, Warning, with
    /// the reason), counted as a loss, not as a hand-over.
    @Test func loss_recordsALeadershipLostEvent() throws {
        let cluster = try Cluster(kind: .lease)
        let a = try cluster.start("a", extra: surfaces + ["--on-loss", "standby"])
        #expect(eventually { cluster.log.starts.count == 1 && events(cluster).count == 1 }, "\(cluster.diagnostics)")
        let path = KubeLeaderHandOverTests().path(cluster)
        var taken = false
        for _ in 0..<20 where !taken {
            let (status, body) = try cluster.server.request("GET", path)
            guard status == 200, var lease = body else { throw HarnessError("GET of the lock answered \(status)") }
            lease[path: "spec", "holderIdentity"] = "intruder"
            lease[path: "spec", "leaseDurationSeconds"] = 1
            taken = try cluster.server.request("PUT", path, body: lease).0 == 200
        }
        #expect(taken)
        #expect(eventually(.seconds(10)) { a.log.contains("child stopped and reaped; standing by again") }, "\(a.log)")
        #expect(eventually { events(cluster).contains { $0[0] == "LeadershipLost" } }, "\(events(cluster))")
        let lost = events(cluster).filter { $0[0] == "LeadershipLost" }
        #expect(lost.count == 1 && lost.first?[1] == "Warning" && lost.first?[2].hasPrefix("a lost leadership: ") == true, "\(lost)")
        #expect(events(cluster).contains(["LeaderElection", "Normal", "a stopped leading"]))
        #expect(!events(cluster).contains { $0[0] == "HandedOver" })
        let url = try #require(statusURL(a))
        let leader = try JSON.parse(get(url, "/leader").bodyText)
        #expect(leader["losses"] == 1 && leader["hand_overs"] == 0 && leader["last_hand_over_to"] == .null, "\(leader)")
        #expect(try get(url, "/metrics").bodyText.contains("kube_leader_hand_overs_total{name=\"\(cluster.lockName)\"} 0\n"))
        // The made-up holder never renews: a leads again after a lease.
        #expect(eventually(.seconds(15)) { cluster.log.starts.count == 2 }, "\(cluster.diagnostics)")
        #expect(a.wait(.milliseconds(1)) == nil, "kube-leader exited: \(a.log)")
        cluster.expectNoOverlap()
    }
}
