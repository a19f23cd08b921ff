import FakeAPIServerKit
import KLCore
import KLSystem
import KLTestSupport
import Synchronization
import Testing
@testable import KLLeader
import KLKube
import KLTransport

/// The leader label and Events against kube-apiserver-fake, with full and
/// with missing RBAC.
@Suite("Leader label and Events", .timeLimit(.minutes(1)))
struct LabelAndEventWriterTests {
    final class Lines: LogSink {
        let lines = Mutex<[String]>([])
        func write(line: String) { lines.withLock { $0.append(line) } }
        var all: [String] { lines.withLock { $0 } }
        func count(_ part: String) -> Int { all.filter { $0.contains(part) }.count }
    }

    let label = LeaderLabel(key: "example.com/role", value: "leader")

    func start(token: String? = nil) throws -> (FakeAPIServer, admin: KubeClient, KubeClient) {
        var options = FakeAPIServerOptions(dir: makeTemporaryDirectory(prefix: "kl-surfaces"))
        options.logger.level = .error
        let fake = try FakeAPIServer.start(options)
        let admin = try KubeClient(config: KubeConfig(server: fake.url, caFile: fake.caFile, tokenFile: fake.tokenFile))
        var config = KubeConfig(server: fake.url, caFile: fake.caFile, tokenFile: fake.tokenFile)
        if let token { config.tokenFile = nil; config.token = token }
        return (fake, admin, try KubeClient(config: config))
    }

    func pod(_ kube: KubeClient, _ name: String, labels: JSON = [:]) throws {
        _ = try kube.create(.pods, namespace: "ns", body: [
            "metadata": ["name": .string(name), "labels": labels],
            "spec": ["containers": [["name": "c", "image": "busybox"]]],
        ])
    }

    func labels(_ kube: KubeClient, _ name: String) throws -> JSON? {
        try kube.get(.pods, namespace: "ns", name: name)[path: "metadata", "labels"]
    }

    func status(kind: LockKind = .configMap) -> LeaderStatus {
        var s = LeaderStatus(identity: "me", namespace: "ns", lockName: "lock", kind: kind)
        var object = LockCodec.newObject(kind, namespace: "ns", name: "lock", record: LeaderElectionRecord(
            holderIdentity: "me", leaseDurationSeconds: 15, acquireTime: nil, renewTime: nil, leaderTransitions: 0))
        object[path: "metadata", "resourceVersion"] = "7"
        object[path: "metadata", "uid"] = "lock-uid"
        _ = s.wrote(LockCodec.decode(kind, object: object), sentAt: .init(nanoseconds: 0), now: .init(nanoseconds: 0))
        return s
    }

    @Test func acquire_labelsOwnPod_cleansOthers_recordsEvents() throws {
        let (fake, admin, kube) = try start()
        defer { fake.stop() }
        try pod(admin, "me-pod", labels: ["app": "x"])
        try pod(admin, "old-leader", labels: ["app": "x", "example.com/role": "leader"])
        try pod(admin, "bystander", labels: ["app": "x", "example.com/role": "follower"])
        let sink = Lines()
        let surfaces = try #require(LabelAndEventWriter(client: kube, logger: Logger(level: .debug, sink: sink), label: label,
                                                   events: true, podName: "me-pod"))
        surfaces.enqueue(.acquired, status(kind: .lease))
        surfaces.finish(within: .seconds(20))
        #expect(try labels(admin, "me-pod") == ["app": "x", "example.com/role": "leader"])
        #expect(try labels(admin, "old-leader") == ["app": "x"])
        #expect(try labels(admin, "bystander") == ["app": "x", "example.com/role": "follower"])

        surfaces.enqueue(.stopped, status(kind: .lease))
        surfaces.finish(within: .seconds(20))
        #expect(try labels(admin, "me-pod") == ["app": "x"])

        let events = try admin.list(.events, namespace: "ns")["items"]?.arrayValue ?? []
        #expect(events.map { $0["message"]?.stringValue } == ["me became leader", "me stopped leading"])
        for e in events {
            #expect(e["reason"] == "LeaderElection" && e["type"] == "Normal")
            #expect(e["involvedObject"] == ["apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "name": "lock",
                                            "namespace": "ns", "uid": "lock-uid"])
        }
        #expect(sink.count("warning") == 0, "\(sink.all)")
    }

    /// A loss and a hand-over each write one Event of their own (reason,
    /// type and message say what happened) and leave the label alone (the
    /// `.stopped` before them removes it).
    @Test func lossAndHandOver_recordEvents_labelUntouched() throws {
        let (fake, admin, kube) = try start()
        defer { fake.stop() }
        try pod(admin, "me-pod", labels: ["app": "x"])
        let sink = Lines()
        let surfaces = try #require(LabelAndEventWriter(client: kube, logger: Logger(level: .debug, sink: sink), label: label,
                                                   events: true, podName: "me-pod"))
        surfaces.enqueue(.acquired, status())
        surfaces.finish(within: .seconds(20))
        surfaces.enqueue(.lost(reason: "could not renew within the renew deadline"), status())
        surfaces.enqueue(.handedOver(to: "b"), status())
        surfaces.finish(within: .seconds(20))
        #expect(try labels(admin, "me-pod") == ["app": "x", "example.com/role": "leader"], "only acquired/stopped touch the label")
        let events = try admin.list(.events, namespace: "ns")["items"]?.arrayValue ?? []
        #expect(events.map { [$0["reason"], $0["type"], $0["message"]] } == [
            ["LeaderElection", "Normal", "me became leader"],
            ["LeadershipLost", "Warning", "me lost leadership: could not renew within the renew deadline"],
            ["HandedOver", "Normal", "me handed over to the preferred holder b"],
        ])
        for e in events {
            #expect(e["involvedObject"]?["kind"] == "ConfigMap" && e["involvedObject"]?["uid"] == "lock-uid")
            #expect(e["reportingInstance"] == "me" && e["source"] == ["component": "kube-leader"])
        }
        #expect(LabelAndEventWriter.describe(.lost(reason: nil), identity: "x").message == "x lost leadership")
        #expect(sink.count("warning") == 0, "\(sink.all)")
    }

    /// Missing RBAC is a warning once (label) or a debug line once (Events),
    /// however often leadership changes; nothing else happens.
    @Test func missingRBAC_loggedOnce() throws {
        let (fake, admin, _) = try start()
        defer { fake.stop() }
        let control = try HTTPClient(baseURL: fake.url, tls: TLSOptions(caFile: fake.caFile))
        let grant: JSON = ["token": "limited", "user": "system:serviceaccount:ns:app", "allow": ["get configmaps"]]
        _ = try control.send(HTTPRequest(method: "POST", path: "/fake/tokens", headers: [("Content-Type", "application/json")],
                                         body: Array(grant.serialized().utf8)), timeout: .seconds(10))
        let kube = try KubeClient(config: KubeConfig(server: fake.url, caFile: fake.caFile, token: "limited"))
        try pod(admin, "me-pod")
        let sink = Lines()
        let surfaces = try #require(LabelAndEventWriter(client: kube, logger: Logger(level: .debug, sink: sink), label: label,
                                                   events: true, podName: "me-pod"))
        for change in [LeaderStatus.Change.acquired, .stopped, .acquired] { surfaces.enqueue(change, status()) }
        surfaces.finish(within: .seconds(20))
        #expect(sink.count("\"warning\"") == 1, "\(sink.all)")
        #expect(sink.count("grant patch and list on pods") == 1)
        #expect(sink.count("grant create on events") == 1)
        #expect(try labels(admin, "me-pod")?["example.com/role"] == nil)
        #expect(try admin.list(.events, namespace: "ns")["items"]?.arrayValue?.isEmpty == true)
    }

    @Test func bothOff_startsNothing() throws {
        let (fake, _, kube) = try start()
        defer { fake.stop() }
        #expect(LabelAndEventWriter(client: kube, logger: Logger(), label: nil, events: false, podName: "p") == nil)
    }
}
