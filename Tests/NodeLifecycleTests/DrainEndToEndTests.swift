import FakeAPIServerKit
import KLCore
import KLKube
import KLSystem
import Synchronization
import KLTestSupport
import Testing
@testable import NodeLifecycleKit

/// A small cluster on kube-apiserver-fake: nodes n1 (i-aaa) and n2 (i-bbb).
struct TestCluster {
    let server: FakeAPIServer
    let client: KubeClient

    static func start() throws -> TestCluster {
        let server = try FakeAPIServer.start(FakeAPIServerOptions(dir: makeTemporaryDirectory(prefix: "nodelifecycle-test")))
        let client = try KubeClient(config: KubeConfig(server: server.url, caFile: server.caFile, token: server.token))
        return TestCluster(server: server, client: client)
    }

    func node(_ name: String, instance: String, conditions: [(String, String)] = [], taints: [JSON] = []) throws {
        var n: JSON = ["apiVersion": "v1", "kind": "Node",
                       "metadata": ["name": .string(name)],
                       "spec": ["providerID": .string("aws:///eu-west-1a/\(instance)")],
                       "status": ["conditions": .array(conditions.map { ["type": .string($0.0), "status": .string($0.1)] })]]
        if !taints.isEmpty { n[path: "spec", "taints"] = .array(taints) }
        _ = try client.create(.nodes, namespace: nil, body: n)
    }

    static func pod(_ ns: String, _ name: String, node: String, app: String? = nil, owner: String? = nil,
                    mirror: Bool = false, ready: Bool = true) -> JSON {
        var p: JSON = ["apiVersion": "v1", "kind": "Pod",
                       "metadata": ["name": .string(name), "namespace": .string(ns)],
                       "spec": ["nodeName": .string(node), "containers": [["name": "c", "image": "busybox"]]],
                       "status": ["phase": "Running",
                                  "conditions": [["type": "Ready", "status": ready ? "True" : "False"]]]]
        if let app { p[path: "metadata", "labels"] = ["app": .string(app)] }
        if let owner { p[path: "metadata", "ownerReferences"] = [["apiVersion": "apps/v1", "kind": .string(owner), "name": "owner", "uid": "o-1", "controller": true]] }
        if mirror { p[path: "metadata", "annotations"] = ["kubernetes.io/config.mirror": "0123"] }
        return p
    }

    func create(pod: JSON) throws {
        _ = try client.create(.pods, namespace: pod[path: "metadata", "namespace"]!.stringValue!, body: pod)
    }

    func podNames(on node: String) throws -> [String] {
        try (client.list(.pods, namespace: nil, fieldSelector: "spec.nodeName=\(node)")["items"]?.arrayValue ?? [])
            .compactMap { $0[path: "metadata", "name"]?.stringValue }.sorted()
    }
}

@Suite("drain end to end (kube-apiserver-fake, moto_server, Query double)", .serialized, .timeLimit(.minutes(1)))
struct DrainEndToEndTests {
    @Test func pdbBlockedDrain_replacementBecomesReady_heartbeats_continueOnce_redeliveryHarmless() throws {
        let cluster = try TestCluster.start()
        defer { cluster.server.stop() }
        let moto = try Moto.start()
        defer { moto.stop() }
        let dir = makeTemporaryDirectory(prefix: "nodelifecycle-test")
        let run = runCommand("python3 '\(testsDirectory)/Support/query_double.py' start '\(dir)' \(moto.accessKey) '\(moto.secretKey)'")
        try #require(run.status == 0)
        let dj = try JSON.parse(run.output)
        let double = QueryDouble(url: dj["url"]!.stringValue!, pid: dj["pid"]!.intValue!)
        defer { double.stop() }

        // Cluster: web-1, web-2 on n1 and web-3 on n2 behind a PDB of minAvailable 2,
        // plus a DaemonSet pod and a mirror pod on n1.
        try cluster.node("n1", instance: "i-aaa", conditions: [("Ready", "True")])
        try cluster.node("n2", instance: "i-bbb", conditions: [("Ready", "True")])
        for (name, node) in [("web-1", "n1"), ("web-2", "n1"), ("web-3", "n2")] {
            try cluster.create(pod: TestCluster.pod("shop", name, node: node, app: "web", owner: "ReplicaSet"))
        }
        try cluster.create(pod: TestCluster.pod("kube-system", "agent-n1", node: "n1", owner: "DaemonSet"))
        try cluster.create(pod: TestCluster.pod("kube-system", "etcd-n1", node: "n1", mirror: true))
        _ = try cluster.client.create(.podDisruptionBudgets, namespace: "shop", body: [
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": ["name": "web", "namespace": "shop"],
            "spec": ["minAvailable": 2, "selector": ["matchLabels": ["app": "web"]]]])

        // The "ReplicaSet controller": each evicted web pod comes back on n2,
        // Ready only 3 s later, so the next eviction is blocked (429) meanwhile.
        let stop = Atomic<Bool>(false)
        let server = cluster.server
        runOnNewThread {
            var replaced: Set<String> = []
            while !stop.load(ordering: .relaxed) {
                for name in ["web-1", "web-2"] where !replaced.contains(name)
                    && server.object("/api/v1/namespaces/shop/pods/\(name)") == nil {
                    replaced.insert(name)
                    let path = "/api/v1/namespaces/shop/pods/\(name)-new"
                    server.put(path, TestCluster.pod("shop", "\(name)-new", node: "n2", app: "web", owner: "ReplicaSet", ready: false))
                    runOnNewThread {
                        blockingSleep(.seconds(3))
                        server.put(path, TestCluster.pod("shop", "\(name)-new", node: "n2", app: "web", owner: "ReplicaSet", ready: true))
                    }
                }
                blockingSleep(.milliseconds(100))
            }
        }
        defer { stop.store(true, ordering: .relaxed) }

        // Queue: a test notification, a malformed message, the lifecycle message.
        let sqs = SQSClient(aws: moto.client(), baseURL: moto.url)
        try sqs.send(queueURL: moto.queueURL, body: #"{"Event":"autoscaling:TEST_NOTIFICATION","AutoScalingGroupName":"nodes"}"#)
        try sqs.send(queueURL: moto.queueURL, body: "{not json")
        let lifecycleMessage = lifecycleBody(instance: "i-aaa", token: "tok-aaa")
        try sqs.send(queueURL: moto.queueURL, body: lifecycleMessage)

        let sink = MemorySink()
        let logger = Logger(level: .debug, sink: sink)
        let queue = SQSQueue(client: sqs, queueURL: moto.queueURL)
        let asg = AutoScalingClient(aws: moto.client(), baseURL: double.url)
        let drainer = NodeDrainer(cluster: KubeCluster(client: cluster.client), lifecycle: asg, queue: queue,
                                  settings: DrainSettings(timeout: .seconds(40), evictionRetry: .seconds(1),
                                                          heartbeatInterval: .seconds(1), pollInterval: .milliseconds(200)),
                                  taint: Taint(key: "node-lifecycle/draining"), clock: MonotonicClock(), logger: logger)
        let service = DrainService(queue: queue, drainer: drainer, concurrency: 4, waitSeconds: 1, logger: logger)
        // The heartbeat loop on its own thread, as in the binary.
        runOnNewThread { service.runHeartbeats { stop.load(ordering: .relaxed) } }
        var received = 0
        for _ in 0..<5 where received < 3 { received += try service.pollOnce(inline: true) }
        #expect(received == 3)
        #expect(service.finished == [.drained(node: "n1")])

        // Kubernetes: only the DaemonSet and mirror pods stay; the node is cordoned and tainted.
        #expect(try cluster.podNames(on: "n1") == ["agent-n1", "etcd-n1"])
        #expect(try cluster.podNames(on: "n2") == ["web-1-new", "web-2-new", "web-3"])
        let n1 = try cluster.client.get(.nodes, namespace: nil, name: "n1")
        #expect(n1[path: "spec", "unschedulable"] == .bool(true))
        #expect(NodeEdits.hasTaint(n1, key: "node-lifecycle/draining"))
        #expect(sink.contains("eviction blocked by a PodDisruptionBudget"))

        // Auto Scaling: heartbeats during the drain, CONTINUE exactly once, last.
        var calls = try double.calls()
        #expect(calls.filter { $0.action == "RecordLifecycleActionHeartbeat" }.count >= 2)
        #expect(calls.filter { $0.action == "CompleteLifecycleAction" }.count == 1)
        #expect(calls.last?.action == "CompleteLifecycleAction")
        #expect(calls.last?.params["LifecycleActionResult"]?.stringValue == "CONTINUE")
        #expect(calls.last?.params["InstanceId"]?.stringValue == "i-aaa")

        // SQS: lifecycle message and test notification deleted; the malformed one
        // stays (in flight) for the dead-letter policy.
        let counts = try sqs.approximateCounts(queueURL: moto.queueURL)
        #expect(counts.visible == 0 && counts.inFlight == 1)

        // Redelivery of the same message: no second CONTINUE, no harm, deleted.
        try sqs.send(queueURL: moto.queueURL, body: lifecycleMessage)
        #expect(try service.pollOnce(inline: true) == 1)
        #expect(service.finished.last == .alreadyCompleted(node: nil))
        calls = try double.calls()
        #expect(calls.filter { $0.action == "CompleteLifecycleAction" }.count == 1)
        #expect(try cluster.podNames(on: "n1") == ["agent-n1", "etcd-n1"])

        // An instance that matches no node (another cluster's): left on the
        // queue (--on-unknown-node leave), not completed, logged.
        try sqs.send(queueURL: moto.queueURL, body: lifecycleBody(instance: "i-zzz", token: "tok-zzz"))
        #expect(try service.pollOnce(inline: true) == 1)
        #expect(service.finished.last == .unknownNodeLeft)
        calls = try double.calls()
        #expect(!calls.contains { $0.params["InstanceId"]?.stringValue == "i-zzz" })
        #expect(sink.contains("no node has this instance's providerID; message left on the queue"))
        let after = try sqs.approximateCounts(queueURL: moto.queueURL)
        #expect(after.visible + after.inFlight == 2)
    }
}

@Suite("drain against kube-apiserver-fake: selector, grace period, Events", .timeLimit(.minutes(1)))
struct KubeClusterDrainTests {
    /// --pod-selector goes to the API server as labelSelector (full syntax);
    /// the capped grace period reaches the Eviction's DeleteOptions; Events
    /// land in namespace default about the Node.
    @Test func podSelector_gracePeriod_andEvents_overTheRealWire() throws {
        let cluster = try TestCluster.start()
        defer { cluster.server.stop() }
        try cluster.node("n1", instance: "i-aaa", conditions: [("Ready", "True")])
        try cluster.create(pod: TestCluster.pod("shop", "web-1", node: "n1", app: "web", owner: "ReplicaSet"))
        try cluster.create(pod: TestCluster.pod("shop", "db-0", node: "n1", app: "db", owner: "StatefulSet"))
        try cluster.create(pod: TestCluster.pod("shop", "cache-1", node: "n1", app: "cache", owner: "ReplicaSet"))
        let sink = MemorySink()
        let queue = FakeQueue()
        queue.put(lifecycleBody(instance: "i-aaa", token: "t1"), id: "m1")
        let message = try queue.receive(max: 1, waitSeconds: 0, visibilitySeconds: 30)[0]
        guard case .action(let action) = try LifecycleMessage.parse(message.body) else { Issue.record("not an action"); return }
        let lifecycle = FakeLifecycle()
        let drainer = NodeDrainer(cluster: KubeCluster(client: cluster.client, instance: "drain-0"), lifecycle: lifecycle, queue: queue,
                                  settings: DrainSettings(timeout: .seconds(30), pollInterval: .milliseconds(100),
                                                          podSelector: "app notin (db,cache)", gracePeriodSeconds: 300),
                                  taint: Taint(key: "node-lifecycle/draining"), clock: MonotonicClock(), logger: Logger(level: .debug, sink: sink))
        #expect(drainer.handle(action, message: message) == .drained(node: "n1"))
        #expect(try cluster.podNames(on: "n1") == ["cache-1", "db-0"])
        // 300 s asked, 30 s drain: capped to what is left (at most 30).
        let evicted = try #require(sink.all.first { $0.contains("pod evicted") })
        let grace = try #require(try JSON.parse(evicted)["grace_period_seconds"]?.intValue)
        #expect(grace >= 1 && grace <= 30)
        let events = try cluster.client.list(.events, namespace: "default")["items"]?.arrayValue ?? []
        #expect(Set(events.compactMap { $0["reason"]?.stringValue }) == ["DrainStarted", "DrainFinished"])
        #expect(events.allSatisfy { $0[path: "involvedObject", "kind"] == "Node" && $0[path: "involvedObject", "name"] == "n1"
            && $0["reportingInstance"] == "drain-0" })
        #expect(lifecycle.all == ["complete:i-aaa:CONTINUE"])
    }
}
