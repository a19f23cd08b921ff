import FakeAPIServerKit
import KLCore
import KLKube
import KLSystem
import Synchronization
import KLTestSupport
import Testing
@testable import NodeLifecycleKit

@Suite("ready (fake cluster, fake clock)")
struct ReadyRunnerTests {
    func setConditions(_ cluster: FakeCluster, _ c: [(String, String)]) {
        cluster.state.withLock {
            $0.nodes["n1"]![path: "status", "conditions"] = .array(c.map { ["type": .string($0.0), "status": .string($0.1)] })
        }
    }

    func taintedCluster() -> FakeCluster {
        let cluster = FakeCluster()
        cluster.addNode("n1", instance: "i-1")
        cluster.state.withLock {
            $0.nodes["n1"]![path: "spec", "taints"] = [["key": "node-lifecycle/booting", "effect": "NoSchedule"],
                                                      ["key": "keep", "effect": "NoSchedule"]]
        }
        return cluster
    }

    @Test func conditionsFlipLate_thenTaintRemoved() {
        let cluster = taintedCluster()
        setConditions(cluster, [("Ready", "False")])
        let t0 = MonotonicClock.now
        // Ready after 20 s, KernelDeadlock reported False after 40 s.
        let clock = VirtualMonotonicClock(start: t0) { [cluster] now in
            if now - t0 >= .seconds(40) {
                self.setConditions(cluster, [("Ready", "True"), ("KernelDeadlock", "False")])
            } else if now - t0 >= .seconds(20) {
                self.setConditions(cluster, [("Ready", "True")])
            }
        }
        let sink = MemorySink()
        let runner = ReadyRunner(cluster: cluster, settings: ReadySettings(nodeName: "n1", taintKey: "node-lifecycle/booting",
                                                                         conditions: ["KernelDeadlock"], timeout: .seconds(120),
                                                                         pollInterval: .seconds(5)),
                                 signal: nil, clock: clock, logger: Logger(sink: sink))
        #expect(runner.run() == .ready)
        #expect(clock.now - t0 == .seconds(40))
        let node = cluster.node("n1")!
        #expect(!NodeEdits.hasTaint(node, key: "node-lifecycle/booting"))
        #expect(NodeEdits.hasTaint(node, key: "keep"))
        #expect(sink.contains("KernelDeadlock is not reported yet"))
        #expect(sink.contains("boot taint removed"))
    }

    @Test func timeout_keepsTheTaint_andNamesTheProblems() {
        let cluster = taintedCluster()
        setConditions(cluster, [("Ready", "True"), ("KernelDeadlock", "True")])
        let t0 = MonotonicClock.now
        let clock = VirtualMonotonicClock(start: t0)
        let runner = ReadyRunner(cluster: cluster, settings: ReadySettings(nodeName: "n1", taintKey: "node-lifecycle/booting",
                                                                         conditions: ["KernelDeadlock"], timeout: .seconds(60)),
                                 signal: nil, clock: clock, logger: Logger(sink: MemorySink()))
        #expect(runner.run() == .timedOut(problems: ["KernelDeadlock is True"]))
        #expect(clock.now - t0 == .seconds(60))
        #expect(NodeEdits.hasTaint(cluster.node("n1")!, key: "node-lifecycle/booting"))
    }

    func signal(answer: String) -> ResourceSignal {
        let fake = FakeTransport { _, _ in
            textResponse(400, "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>\(answer)</Message></Error></ErrorResponse>")
        }
        let aws = AWSClient(transport: fake, credentials: StaticCredentials(testCreds), region: "eu-west-1") { fixedNow }
        return ResourceSignal(client: CloudFormationClient(aws: aws, baseURL: "http://cfn.invalid"), stack: "s",
                              logicalResourceID: "NodeGroup", uniqueID: "i-1")
    }

    /// Regression guard: a DaemonSet pod restarted on an old node ran `ready`
    /// again, CloudFormation refused the signal, and the init container
    /// crash-looped.
    @Test func signalRefused_becauseNotWaiting_isFine_butMissingStackIsNot() {
        let cluster = taintedCluster()
        setConditions(cluster, [("Ready", "True")])
        let settings = ReadySettings(nodeName: "n1", taintKey: "node-lifecycle/booting", timeout: .seconds(10))
        let notWaiting = ReadyRunner(cluster: cluster, settings: settings,
                                     signal: signal(answer: "Resource NodeGroup is in UPDATE_COMPLETE state and cannot be signaled"),
                                     clock: VirtualMonotonicClock(), logger: Logger(sink: MemorySink()))
        #expect(notWaiting.run() == .ready)
        let fresh = taintedCluster()
        setConditions(fresh, [("Ready", "True")])
        let missing = ReadyRunner(cluster: fresh, settings: settings, signal: signal(answer: "Stack with id s does not exist"),
                                  clock: VirtualMonotonicClock(), logger: Logger(sink: MemorySink()))
        guard case .failed(let why) = missing.run() else { Issue.record("not failed"); return }
        #expect(why.contains("does not exist"))
    }

    /// A signal double that answers 200 and records each Status sent.
    func recordingSignal() -> (ResourceSignal, FakeTransport) {
        let fake = FakeTransport { _, _ in
            textResponse(200, "<SignalResourceResponse><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></SignalResourceResponse>")
        }
        let aws = AWSClient(transport: fake, credentials: StaticCredentials(testCreds), region: "eu-west-1") { fixedNow }
        return (ResourceSignal(client: CloudFormationClient(aws: aws, baseURL: "http://cfn.invalid"), stack: "s",
                               logicalResourceID: "NodeGroup", uniqueID: "i-1"), fake)
    }

    /// A booting node n1 whose Ready condition is `ready`, and `ready` for it
    /// (10 s) signalling to a recording double: a new runner each call, as
    /// when the init container restarts.
    func bootingNode(ready: String) -> (cluster: FakeCluster, fake: FakeTransport, run: () -> ReadyOutcome) {
        let cluster = taintedCluster()
        setConditions(cluster, [("Ready", ready)])
        let (signal, fake) = recordingSignal()
        let settings = ReadySettings(nodeName: "n1", taintKey: "node-lifecycle/booting", timeout: .seconds(10))
        let run = { ReadyRunner(cluster: cluster, settings: settings, signal: signal, clock: VirtualMonotonicClock(), logger: Logger(sink: MemorySink())).run() }
        return (cluster, fake, run)
    }

    func statuses(_ fake: FakeTransport) -> [String] {
        fake.requests.compactMap { sent in
            let body = String(decoding: sent.request.body, as: UTF8.self)
            return body.split(separator: "&").first { $0.hasPrefix("Status=") }.map { String($0.dropFirst(7)) }
        }
    }

    /// Regression guard: a restarted init container signalled again after
    /// SUCCESS, and a pod restarted on an old node (never tainted) signalled
    /// SUCCESS for it.
    @Test func success_isSignalledOncePerInstance_evenWhenReadyRunsAgain() {
        let (cluster, fake, run) = bootingNode(ready: "True")
        #expect(run() == .ready)
        #expect(run() == .ready)
        #expect(run() == .ready)
        #expect(statuses(fake) == ["SUCCESS"])
        let node = cluster.node("n1")!
        #expect(node[path: "metadata", "annotations", "node-lifecycle/signalled-success"] == "i-1")
        #expect(node[path: "metadata", "annotations", "node-lifecycle/booted-with-taint"] == "true")
    }

    @Test func oldNodeWithoutTheBootTaint_isNeverSignalled() {
        let cluster = FakeCluster()
        cluster.addNode("n1", instance: "i-1")
        setConditions(cluster, [("Ready", "True")])
        let (signal, fake) = recordingSignal()
        let sink = MemorySink()
        let runner = ReadyRunner(cluster: cluster, settings: ReadySettings(nodeName: "n1", taintKey: "node-lifecycle/booting", timeout: .seconds(10)),
                                 signal: signal, clock: VirtualMonotonicClock(), logger: Logger(sink: sink))
        #expect(runner.run() == .notBooting)
        #expect(fake.requests.isEmpty)
        #expect(cluster.state.withLock { $0.updates } == 0)
        #expect(sink.contains("did not boot with the boot taint"))
    }

    @Test func failure_isSignalledOnce_thenSuccessStillCounts() {
        let (cluster, fake, run) = bootingNode(ready: "False")
        #expect(run() == .timedOut(problems: ["Ready is False"]))
        #expect(run() == .timedOut(problems: ["Ready is False"]))   // the init container restarted
        #expect(statuses(fake) == ["FAILURE"])
        #expect(NodeEdits.hasTaint(cluster.node("n1")!, key: "node-lifecycle/booting"))
        setConditions(cluster, [("Ready", "True")])
        #expect(run() == .ready)
        #expect(run() == .ready)
        #expect(statuses(fake) == ["FAILURE", "SUCCESS"])
    }

    @Test func unregisteredNode_waits() {
        let cluster = FakeCluster()
        let runner = ReadyRunner(cluster: cluster, settings: ReadySettings(nodeName: "n9", taintKey: "b", timeout: .seconds(10)),
                                 signal: nil, clock: VirtualMonotonicClock(), logger: Logger(sink: MemorySink()))
        #expect(runner.run() == .timedOut(problems: ["the node is not registered yet"]))
    }
}

@Suite("ready end to end (binary, kube-apiserver-fake, Query double)", .serialized, .timeLimit(.minutes(1)))
struct ReadyEndToEndTests {
    struct Setup {
        let cluster: TestCluster
        let double: QueryDouble
        let dir: String

        func run(_ extra: String, instanceID: String? = "i-0new") -> (output: String, status: Int32) {
            // Without --instance-id: IMDS at a closed port, so the node's providerID is used.
            let env = "AWS_ACCESS_KEY_ID=\(QueryDouble.accessKey) AWS_SECRET_ACCESS_KEY='\(QueryDouble.secret)' AWS_REGION=eu-west-1 "
                + "AWS_ENDPOINT_URL_CLOUDFORMATION=\(double.url) AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:1"
            let cmd = "env -i PATH=/usr/bin:/bin \(env) '\(TestPaths.binary("node-lifecycle"))' ready --node n1 --api-server \(cluster.server.url) "
                + "--ca-file '\(cluster.server.caFile)' --token-file '\(cluster.server.tokenFile)' --stack nodes --resource NodeGroup "
                + (instanceID.map { "--instance-id \($0) " } ?? "") + "--conditions KernelDeadlock,ReadonlyFilesystem --poll-interval 200ms \(extra) 2>'\(dir)/stderr'"
            let r = runCommand(cmd)
            return (readTextFile(dir + "/stderr") ?? "", r.status)
        }
    }

    func setUp() throws -> Setup {
        let cluster = try TestCluster.start()
        let double = try QueryDouble.start()
        try cluster.node("n1", instance: "i-0new", conditions: [("Ready", "False")],
                         taints: [["key": "node-lifecycle/booting", "effect": "NoSchedule"]])
        return Setup(cluster: cluster, double: double, dir: makeTemporaryDirectory(prefix: "nodelifecycle-test"))
    }

    static func conditions(_ c: [(String, String)]) -> JSON {
        .array(c.map { ["type": .string($0.0), "status": .string($0.1), "reason": "Test"] })
    }

    @Test func conditionsFlipLate_removesTaint_signalsSuccess() throws {
        let s = try setUp()
        defer { s.cluster.server.stop(); s.double.stop() }
        let server = s.cluster.server
        runOnNewThread {
            blockingSleep(.milliseconds(800))
            var n = server.object("/api/v1/nodes/n1")!
            n[path: "status", "conditions"] = Self.conditions([("Ready", "True"), ("KernelDeadlock", "False")])
            server.put("/api/v1/nodes/n1", n)
            blockingSleep(.milliseconds(800))
            n = server.object("/api/v1/nodes/n1")!
            n[path: "status", "conditions"] = Self.conditions([("Ready", "True"), ("KernelDeadlock", "False"), ("ReadonlyFilesystem", "False")])
            server.put("/api/v1/nodes/n1", n)
        }
        let r = s.run("--timeout 20s")
        #expect(r.status == 0, "\(r.output)")
        #expect(r.output.contains("ReadonlyFilesystem is not reported yet"))
        let node = try s.cluster.client.get(.nodes, namespace: nil, name: "n1")
        #expect(!NodeEdits.hasTaint(node, key: "node-lifecycle/booting"))
        let calls = try s.double.calls()
        #expect(calls.map(\.action) == ["SignalResource"])
        #expect(calls.first?.params["Status"]?.stringValue == "SUCCESS")
        #expect(calls.first?.params["UniqueId"]?.stringValue == "i-0new")
        #expect(calls.first?.params["StackName"]?.stringValue == "nodes")
        #expect(calls.first?.params["LogicalResourceId"]?.stringValue == "NodeGroup")
    }

    @Test func timeout_signalsFailure_keepsTaint_exitsOne() throws {
        let s = try setUp()
        defer { s.cluster.server.stop(); s.double.stop() }
        let r = s.run("--timeout 1s", instanceID: nil)
        #expect(r.status != 0)
        #expect(r.output.contains("node did not become healthy in time"))
        let node = try s.cluster.client.get(.nodes, namespace: nil, name: "n1")
        #expect(NodeEdits.hasTaint(node, key: "node-lifecycle/booting"))
        let calls = try s.double.calls()
        #expect(calls.map(\.action) == ["SignalResource"])
        #expect(calls.first?.params["Status"]?.stringValue == "FAILURE")
        // No --instance-id and no metadata service: the node's providerID.
        #expect(calls.first?.params["UniqueId"]?.stringValue == "i-0new")
        #expect(r.output.contains("using the node's providerID"))
    }
}
