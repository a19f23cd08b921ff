import FakeAPIServerKit
import KLCore
import KLSystem
import KLTestSupport
import Testing

private let candidates = "/apis/coordination.k8s.io/v1beta1/namespaces/default/leasecandidates"
private let leases = "/apis/coordination.k8s.io/v1/namespaces/default/leases"

private func candidate(_ name: String, lease: String = "lock", binary: String = "1.30.0", emulation: String? = "1.30.0",
                       strategy: String = "OldestEmulationVersion", renew: WallTime? = nil) -> JSON {
    var spec: JSON = ["leaseName": .string(lease), "binaryVersion": .string(binary), "strategy": .string(strategy)]
    if let emulation { spec["emulationVersion"] = .string(emulation) }
    if let renew { spec["renewTime"] = .string(RFC3339.formatMicro(renew)) }
    return ["apiVersion": "coordination.k8s.io/v1beta1", "kind": "LeaseCandidate", "metadata": ["name": .string(name)], "spec": spec]
}

@Suite("kube-apiserver-fake: LeaseCandidate (coordination.k8s.io/v1beta1)", .timeLimit(.minutes(1)))
struct LeaseCandidateTests {
    @Test func crud_followsResourceVersions_andLeaseNameIsImmutable() throws {
        let h = try Harness()
        let created = try h.request("POST", candidates, body: candidate("a"))
        #expect(created.status == 201, "\(created.json)")
        #expect(created.json["kind"] == "LeaseCandidate")
        #expect(created.json["apiVersion"] == "coordination.k8s.io/v1beta1")
        let rv1 = try #require(created.json[path: "metadata", "resourceVersion"]?.stringValue)
        #expect(try h.request("POST", candidates, body: candidate("a")).status == 409)

        var renewed = created.json
        renewed[path: "spec", "renewTime"] = "2026-12-07T00:00:00.123456Z"
        let updated = try h.request("PUT", "\(candidates)/a", body: renewed)
        #expect(updated.status == 200)
        #expect(Int(updated.json[path: "metadata", "resourceVersion"]?.stringValue ?? "")! > Int(rv1)!)
        // The stale version conflicts, as on the real server.
        #expect(try h.request("PUT", "\(candidates)/a", body: renewed).status == 409)

        var moved = updated.json
        moved[path: "spec", "leaseName"] = "other"
        let immutable = try h.request("PUT", "\(candidates)/a", body: moved)
        #expect(immutable.status == 422)
        #expect(immutable.json["message"]?.stringValue?.contains("spec.leaseName: Invalid value: \"other\": field is immutable") == true)

        let list = try h.request("GET", candidates)
        #expect(list.json["kind"] == "LeaseCandidateList")
        #expect(list.json["items"]?.arrayValue?.count == 1)
        #expect(try h.request("DELETE", "\(candidates)/a").status == 200)
        #expect(try h.request("GET", "\(candidates)/a").status == 404)
    }

    @Test func create_validatesVersionsStrategyAndTimes() throws {
        let h = try Harness()
        let noBinary = try h.request("POST", candidates, body: ["metadata": ["name": "x"], "spec": ["leaseName": "lock", "strategy": "OldestEmulationVersion"]])
        #expect(noBinary.status == 422)
        let causes = noBinary.json[path: "details", "causes"]?.arrayValue?.compactMap { $0["field"]?.stringValue } ?? []
        #expect(causes == ["spec.binaryVersion", "spec.emulationVersion"])

        let leadingV = try h.request("POST", candidates, body: candidate("x", binary: "v1.30.0"))
        #expect(leadingV.status == 422)
        #expect(leadingV.json["message"]?.stringValue?.contains("must be in a semver format without leading `v`") == true)

        let newerEmulation = try h.request("POST", candidates, body: candidate("x", binary: "1.30.0", emulation: "1.31.0"))
        #expect(newerEmulation.status == 422)
        #expect(newerEmulation.json["message"]?.stringValue?.contains("must be less than or equal to binaryVersion") == true)

        let badStrategy = try h.request("POST", candidates, body: candidate("x", strategy: "Newest"))
        #expect(badStrategy.status == 422)
        #expect(try h.request("POST", candidates, body: candidate("x", emulation: nil, strategy: "example.com/mine")).status == 201)

        var badTime = candidate("y")
        badTime[path: "spec", "pingTime"] = "2026-12-07T00:00:00Z"   // not MicroTime
        let decode = try h.request("POST", candidates, body: badTime)
        #expect(decode.status == 400)
        #expect(decode.json["message"]?.stringValue?.contains("cannot be handled as a LeaseCandidate") == true)
    }

    @Test func discovery_servesBothCoordinationVersions_preferringV1() throws {
        let h = try Harness()
        let group = try h.request("GET", "/apis/coordination.k8s.io").json
        #expect(group["versions"]?.arrayValue?.compactMap { $0["version"]?.stringValue } == ["v1", "v1beta1"])
        #expect(group[path: "preferredVersion", "version"] == "v1")
        let list = try h.request("GET", "/apis/coordination.k8s.io/v1beta1").json
        #expect(list["resources"]?.arrayValue?.compactMap { $0["name"]?.stringValue } == ["leasecandidates"])
    }

    @Test func withoutTheAPI_leaseCandidatesAre404_andUndiscoverable() throws {
        let dir = makeTemporaryDirectory(prefix: "fake-apiserver-test")
        var options = FakeAPIServerOptions(dir: dir)
        options.leaseCandidates = false
        options.logger = Logger(level: .critical, sink: DiscardSink())
        let server = try FakeAPIServer.start(options)
        defer { server.stop() }
        let c = try TestConnection(url: server.url, caFile: server.caFile, timeoutSeconds: 10)
        try c.send("POST", candidates, token: server.token, body: candidate("a").serialized(), contentType: "application/json")
        let r = try c.readResponse()
        #expect(r.status == 404)
        #expect(r.json["message"] == "the server could not find the requested resource")
        try c.send("GET", "/apis/coordination.k8s.io", token: server.token, body: nil, contentType: "application/json")
        #expect(try c.readResponse().json["versions"]?.arrayValue?.count == 1)
        // Leases are still there.
        try c.send("GET", leases, token: server.token, body: nil, contentType: "application/json")
        #expect(try c.readResponse().status == 200)
    }

    // MARK: The election controller, on a virtual wall clock

    let t0 = WallTime(seconds: 1_800_000_000)

    @Test func controller_freeLease_electsLowestEmulationVersion_thenBinaryVersion() throws {
        let h = try Harness()
        _ = try h.request("POST", candidates, body: candidate("new", binary: "1.31.0", emulation: "1.31.0", renew: t0))
        _ = try h.request("POST", candidates, body: candidate("old-b", binary: "1.30.2", emulation: "1.30.0", renew: t0))
        _ = try h.request("POST", candidates, body: candidate("old-a", binary: "1.30.1", emulation: "1.30.0", renew: t0))
        h.server.reconcileElections(now: t0.adding(.seconds(1)))   // all fresh: no ping needed
        let lease = try #require(h.server.object("\(leases)/lock"))
        #expect(lease[path: "spec", "holderIdentity"] == "old-a")
        #expect(lease[path: "spec", "strategy"] == "OldestEmulationVersion")
        #expect(lease[path: "spec", "leaseDurationSeconds"] == 5)
        #expect(lease[path: "spec", "preferredHolder"] == nil)
    }

    @Test func controller_validHolder_getsPreferredHolderWhenABetterCandidateAppears() throws {
        let h = try Harness()
        _ = try h.request("POST", candidates, body: candidate("a", renew: t0))
        h.server.reconcileElections(now: t0)
        #expect(h.server.object("\(leases)/lock")?[path: "spec", "holderIdentity"] == "a")
        let rv = h.server.resourceVersion
        h.server.reconcileElections(now: t0.adding(.seconds(1)))   // best already holds it: nothing written
        #expect(h.server.resourceVersion == rv)
        _ = try h.request("POST", candidates, body: candidate("older", binary: "1.29.0", emulation: "1.29.0", renew: t0.adding(.seconds(1))))
        h.server.reconcileElections(now: t0.adding(.seconds(2)))
        let lease = try #require(h.server.object("\(leases)/lock"))
        #expect(lease[path: "spec", "holderIdentity"] == "a")
        #expect(lease[path: "spec", "preferredHolder"] == "older")
    }

    @Test func controller_expiredLease_pingsStaleCandidates_andElectsOnlyThoseThatAnswer() throws {
        let h = try Harness()
        _ = try h.request("POST", candidates, body: candidate("gone", binary: "1.29.0", emulation: "1.29.0", renew: t0))
        _ = try h.request("POST", candidates, body: candidate("alive", renew: t0))
        h.server.put("\(leases)/lock", ["spec": ["holderIdentity": "gone", "leaseDurationSeconds": 5, "strategy": "OldestEmulationVersion",
                                                 "renewTime": .string(RFC3339.formatMicro(t0)), "preferredHolder": "alive"]])
        let ping = t0.adding(.seconds(60))
        h.server.reconcileElections(now: ping)
        for name in ["gone", "alive"] {
            #expect(h.server.object("\(candidates)/\(name)")?[path: "spec", "pingTime"] == .string(RFC3339.formatMicro(ping)))
        }
        #expect(h.server.object("\(leases)/lock")?[path: "spec", "holderIdentity"] == "gone")
        // Only "alive" answers; within the election duration nothing is decided.
        var answer = try #require(h.server.object("\(candidates)/alive"))
        answer[path: "spec", "renewTime"] = .string(RFC3339.formatMicro(ping.adding(.milliseconds(700))))
        #expect(try h.request("PUT", "\(candidates)/alive", body: answer).status == 200)
        h.server.reconcileElections(now: ping.adding(.seconds(4)))
        #expect(h.server.object("\(leases)/lock")?[path: "spec", "holderIdentity"] == "gone")
        h.server.reconcileElections(now: ping.adding(.seconds(5)))
        let lease = try #require(h.server.object("\(leases)/lock"))
        #expect(lease[path: "spec", "holderIdentity"] == "alive")
        #expect(lease[path: "spec", "preferredHolder"] == nil)
        #expect(lease[path: "spec", "renewTime"] == .string(RFC3339.formatMicro(ping.adding(.seconds(5)))))
    }

    @Test func controller_deadBetterCandidate_isPingedOnce_thenLeftOutOfTheRunning() throws {
        let h = try Harness()
        _ = try h.request("POST", candidates, body: candidate("dead", binary: "1.29.0", emulation: "1.29.0", renew: t0))
        _ = try h.request("POST", candidates, body: candidate("holder", renew: t0))
        h.server.put("\(leases)/lock", ["spec": ["holderIdentity": "holder", "leaseDurationSeconds": 3600, "strategy": "OldestEmulationVersion",
                                                 "renewTime": .string(RFC3339.formatMicro(t0))]])
        h.server.reconcileElections(now: t0.adding(.seconds(10)))   // both stale: pinged
        var answer = try #require(h.server.object("\(candidates)/holder"))
        answer[path: "spec", "renewTime"] = .string(RFC3339.formatMicro(t0.adding(.seconds(11))))
        #expect(try h.request("PUT", "\(candidates)/holder", body: answer).status == 200)
        h.server.reconcileElections(now: t0.adding(.seconds(15)))   // "dead" never answered; the holder is the best live one
        let rv = h.server.resourceVersion
        for second in [16, 30, 60] { h.server.reconcileElections(now: t0.adding(.seconds(Int64(second)))) }
        #expect(h.server.resourceVersion == rv, "no more pings, no preferredHolder for a dead candidate")
        #expect(h.server.object("\(leases)/lock")?[path: "spec", "preferredHolder"] == nil)
    }

    @Test func controller_releasedLease_isGivenToTheBest_andDisagreeingStrategiesAreLeftAlone() throws {
        let h = try Harness()
        h.server.put("\(leases)/lock", ["spec": ["holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 3,
                                                 "renewTime": .string(RFC3339.formatMicro(t0))]])
        _ = try h.request("POST", candidates, body: candidate("a", renew: t0))
        _ = try h.request("POST", candidates, body: candidate("b", emulation: nil, strategy: "example.com/other", renew: t0))
        let rv = h.server.resourceVersion
        h.server.reconcileElections(now: t0.adding(.seconds(1)))
        #expect(h.server.resourceVersion == rv)
        #expect(try h.request("DELETE", "\(candidates)/b").status == 200)
        h.server.reconcileElections(now: t0.adding(.seconds(2)))
        let lease = try #require(h.server.object("\(leases)/lock"))
        #expect(lease[path: "spec", "holderIdentity"] == "a")
        #expect(lease[path: "spec", "leaseTransitions"] == 3)
    }
}
