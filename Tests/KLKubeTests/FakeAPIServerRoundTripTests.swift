import FakeAPIServerKit
import KLCore
import Testing
import KLNetworkTestSupport
@testable import KLKube
@testable import KLTransport

/// The client against kube-apiserver-fake (real TLS with its own CA, bearer
/// tokens, resourceVersions, Status bodies, watch): the same round trips the
/// binaries make against a real API server.
@Suite("Kubernetes client against kube-apiserver-fake", .timeLimit(.minutes(1)))
struct FakeAPIServerRoundTripTests {
    func start() throws -> (FakeAPIServer, KubeClient) {
        var options = FakeAPIServerOptions(dir: makeTempDir("kl-fake"))
        options.logger.level = .error
        let fake = try FakeAPIServer.start(options)
        let kube = try KubeClient(config: KubeConfig(server: fake.url, caFile: fake.caFile, tokenFile: fake.tokenFile))
        return (fake, kube)
    }

    @Test func configMap_createGetUpdateConflictDelete() throws {
        let (fake, kube) = try start()
        defer { fake.stop() }
        let created = try kube.create(.configMaps, namespace: "default", body: ["metadata": ["name": "lock"], "data": ["k": "v"]])
        let rv = try #require(created[path: "metadata", "resourceVersion"]?.stringValue)
        let again = #expect(throws: KubeError.self) { try kube.create(.configMaps, namespace: "default", body: ["metadata": ["name": "lock"]]) }
        #expect(again?.code == .alreadyExists)

        var next = try kube.get(.configMaps, namespace: "default", name: "lock")
        next[path: "data", "k"] = "w"
        next["unknownField"] = ["kept": true]
        let updated = try kube.update(.configMaps, namespace: "default", name: "lock", body: next)
        #expect(updated[path: "metadata", "resourceVersion"]?.stringValue != rv)
        #expect(updated[path: "unknownField", "kept"] == true)

        var stale = created
        stale[path: "data", "k"] = "stale"
        let conflict = #expect(throws: KubeError.self) { try kube.update(.configMaps, namespace: "default", name: "lock", body: stale) }
        #expect(conflict?.code == .conflict)
        #expect(conflict?.message.contains("the object has been modified") == true)

        let patched = try kube.patch(.configMaps, namespace: "default", name: "lock", patch: ["data": ["p": "1"]])
        #expect(patched[path: "data", "p"] == "1" && patched[path: "data", "k"] == "w")

        let listed = try kube.list(.configMaps, namespace: "default")
        #expect(listed["items"]?.arrayValue?.contains { $0[path: "metadata", "name"] == "lock" } == true)

        try kube.delete(.configMaps, namespace: "default", name: "lock")
        let gone = #expect(throws: KubeError.self) { try kube.get(.configMaps, namespace: "default", name: "lock") }
        #expect(gone?.code == .notFound)
        #expect(gone?.message == #"configmaps "lock" not found"#)
    }

    @Test func lease_watchSeesChanges() throws {
        let (fake, kube) = try start()
        defer { fake.stop() }
        let created = try kube.create(.leases, namespace: "default", body: ["metadata": ["name": "l"], "spec": ["holderIdentity": "a"]])
        let rv = try #require(created[path: "metadata", "resourceVersion"]?.stringValue)
        let watch = try kube.watch(.leases, namespace: "default", fieldSelector: "metadata.name=l", resourceVersion: rv, timeoutSeconds: 30)
        defer { watch.close() }
        var next = created
        next[path: "spec", "holderIdentity"] = "b"
        _ = try kube.update(.leases, namespace: "default", name: "l", body: next)
        guard case .event(let e) = try watch.next(deadline: .now + .seconds(10)) else {
            Issue.record("expected a MODIFIED event")
            return
        }
        #expect(e.type == "MODIFIED")
        #expect(e.object[path: "spec", "holderIdentity"] == "b")
        guard case .timedOut = try watch.next(deadline: .now + .milliseconds(100)) else {
            Issue.record("expected no further event")
            return
        }
    }

    @Test func restrictedToken_isForbiddenNamingTheVerb() throws {
        let (fake, _) = try start()
        defer { fake.stop() }
        fake.registerToken("reader", user: "system:serviceaccount:default:reader", allow: ["get configmaps"])
        let kube = try KubeClient(config: KubeConfig(server: fake.url, caFile: fake.caFile, token: "reader"))
        let e = #expect(throws: KubeError.self) { try kube.create(.leases, namespace: "default", body: ["metadata": ["name": "x"]]) }
        #expect(e?.code == .forbidden)
        #expect(e?.description.contains(#"may not "create" "leases" (API group "coordination.k8s.io") in namespace "default""#) == true)
        let wrong = try KubeClient(config: KubeConfig(server: fake.url, caFile: fake.caFile, token: "not-a-token"))
        #expect((#expect(throws: KubeError.self) { try wrong.get(.configMaps, namespace: "default", name: "x") })?.code == .unauthorized)
    }
}
