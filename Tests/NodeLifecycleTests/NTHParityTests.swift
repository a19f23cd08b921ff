import KLCore
import KLSystem
import KLTestSupport
import Synchronization
import Testing
@testable import NodeLifecycleKit

/// EventBridge envelopes as aws-node-termination-handler's fixtures write them.
func eventBridge(source: String, detailType: String, detail: String, id: String = "7fb65329-1628-4cf3-a740-95fg457h1402") -> String {
    #"{"version":"0","id":"\#(id)","detail-type":"\#(detailType)","source":"\#(source)","account":"123456789012","time":"2026-12-06T21:00:00Z","region":"eu-west-1","resources":[],"detail":\#(detail)}"#
}

func healthEvent(_ instances: [String], start: String = "Sat, 05 Jun 2016 15:10:09 GMT", service: String = "EC2",
                 category: String = "scheduledChange") -> String {
    let entities = instances.map { #"{"entityValue":"\#($0)","tags":{"stage":"prod"}}"# }.joined(separator: ",")
    return eventBridge(source: "aws.health", detailType: "AWS Health Event", detail: #"""
        {"eventArn":"arn:aws:health:region::event/id","service":"\#(service)","eventTypeCode":"AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED","eventTypeCategory":"\#(category)","startTime":"\#(start)","eventDescription":[{"language":"en_US","latestDescription":"retirement"}],"affectedEntities":[\#(entities)]}
        """#)
}

func stateChange(_ instance: String, _ state: String) -> String {
    eventBridge(source: "aws.ec2", detailType: "EC2 Instance State-change Notification",
                detail: #"{"instance-id":"\#(instance)","state":"\#(state)"}"#)
}

/// A drain service with `options` and an optional managed tag, over a
/// virtual clock whose wall time moves with it (`wallStart` at `clock`'s start).
func nthService(_ cluster: any ClusterAPI, _ lifecycle: any LifecycleAPI, _ queue: any QueueAPI, clock: VirtualMonotonicClock,
                settings: DrainSettings = DrainSettings(heartbeatInterval: .seconds(60)), options: DrainOptions = DrainOptions(),
                wallStart: WallTime = CivilTime(year: 2026, month: 12, day: 6, hour: 21).wallTime,
                managedTag: ManagedTag? = nil, metrics: DrainMetrics? = nil, concurrency: Int = 1,
                sink: MemorySink = MemorySink()) -> DrainService {
    var drainer = NodeDrainer(cluster: cluster, lifecycle: lifecycle, queue: queue, settings: settings, taint: Taint(key: "d"),
                              clock: clock, logger: Logger(sink: sink), metrics: metrics)
    drainer.options = options
    let t0 = clock.now
    drainer.options.wallClock = { wallStart.adding(clock.now - t0) }
    return DrainService(queue: queue, drainer: drainer, concurrency: concurrency, waitSeconds: 0, managedTag: managedTag,
                        logger: Logger(sink: sink))
}

@Suite("aws-node-termination-handler parity: messages")
struct NTHMessageTests {
    @Test func healthScheduledChange_NTHFixture_oneActionWithItsStartTime() throws {
        guard case .action(let a) = try LifecycleMessage.parse(healthEvent(["i-12345678"])) else {
            Issue.record("not one action"); return
        }
        #expect(a.source == .scheduledChange && a.instanceID == "i-12345678" && a.lifecycleActionToken == "instance:i-12345678")
        #expect(a.startTime == CivilTime(year: 2016, month: 6, day: 5, hour: 15, minute: 10, second: 9).wallTime)
        #expect(!a.isLifecycleHook && !a.endsInTermination)
    }

    @Test func healthScheduledChange_severalEntities_oneActionEach_viaSNS() throws {
        let sns: JSON = ["Type": "Notification", "Message": .string(healthEvent(["i-1", "i-2", "i-1", "arn:aws:other"]))]
        guard case .actions(let list) = try LifecycleMessage.parse(sns.serialized()) else {
            Issue.record("not several actions"); return
        }
        #expect(list.map(\.instanceID) == ["i-1", "i-2"])
    }

    @Test func healthEvents_notEC2ScheduledChange_areDeleted_andNoEntity_isMalformed() throws {
        guard case .ignoredEvent = try LifecycleMessage.parse(healthEvent(["i-1"], service: "RDS")) else { Issue.record("RDS"); return }
        guard case .ignoredEvent = try LifecycleMessage.parse(healthEvent(["i-1"], category: "issue")) else { Issue.record("issue"); return }
        #expect(throws: NodeLifecycleError.self) { try LifecycleMessage.parse(healthEvent([])) }
        // RFC 3339 start times too; garbage is no start time (the drain timeout applies).
        guard case .action(let a) = try LifecycleMessage.parse(healthEvent(["i-1"], start: "2026-12-07T03:00:00Z")),
              case .action(let b) = try LifecycleMessage.parse(healthEvent(["i-1"], start: "Sat, 99 Foo 2016 15:10:09 GMT")) else {
            Issue.record("start times"); return
        }
        #expect(a.startTime == CivilTime(year: 2026, month: 12, day: 7, hour: 3).wallTime)
        #expect(b.startTime == nil)
    }

    /// NTH complaint: an event with an empty or unknown source crash-looped
    /// the handler. Here it is an ignored event (logged, deleted).
    @Test("empty or unknown source or detail-type: ignored, never a crash", arguments: [
        eventBridge(source: "", detailType: "", detail: "{}"),
        eventBridge(source: "aws.s3", detailType: "Object Created", detail: #"{"bucket":{"name":"b"}}"#),
        eventBridge(source: "aws.ec2", detailType: "EC2 Fleet Spot Instance Request Change", detail: #"{"instance-id":"i-1"}"#),
        #"{"detail-type":"EC2 Spot Instance Interruption Warning?","detail":{}}"#,
    ])
    func unknownSource_isIgnored(body: String) throws {
        guard case .ignoredEvent(let what) = try LifecycleMessage.parse(body) else {
            Issue.record("not ignored: \(body)"); return
        }
        #expect(what.contains("not one node-lifecycle handles"))
    }

    @Test func stateChange_terminatedAndStopped_areKept_forTheLostInstanceCheck() throws {
        for state in ["stopped", "terminated", "shutting-down", "stopping"] {
            guard case .action(let a) = try LifecycleMessage.parse(stateChange("i-1", state)) else { Issue.record("\(state)"); continue }
            #expect(a.ec2State == state)
            #expect(a.endsInTermination == (state == "terminated" || state == "shutting-down"))
        }
    }

    @Test func webhookTemplate_NTHDefault_rendersEscaped_andUnknownFieldsAreRefused() throws {
        let t = try WebhookTemplate(WebhookTemplate.nthDefault)
        let body = t.render(WebhookEvent(eventID: "e1", kind: "SCHEDULED_EVENT", instanceID: "i-1", nodeName: "n1",
                                         description: "say \"hi\"\n", startTime: "2026-12-07T03:00:00Z"))
        let json = try JSON.parse(body)
        #expect(json["text"]?.stringValue == "[NTH][Instance Interruption] EventID: e1 - Kind: SCHEDULED_EVENT - Instance: i-1 - Node: n1 - Description: say \"hi\"\n - Start Time: 2026-12-07T03:00:00Z")
        #expect(throws: NodeLifecycleError.self) { try WebhookTemplate("{{ .Nope }}") }
        #expect(throws: NodeLifecycleError.self) { try WebhookTemplate("{{ .InstanceID ") }
        #expect(try WebhookNotifier.parseHeaders(#"{"Content-type":"application/json","X-Token":"s"}"#).count == 2)
        #expect(throws: NodeLifecycleError.self) { try WebhookNotifier.parseHeaders(#"{"X":1}"#) }
    }

    @Test func describeTags_answer_isReadItemByItem() throws {
        let xml = try #require(XMLLeaves("""
            <DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><tagSet>
            <item><resourceId>i-2</resourceId><resourceType>instance</resourceType><key>cluster</key><value>other</value></item>
            <item><key>cluster</key><resourceId>i-1</resourceId><resourceType>instance</resourceType><value>prod</value></item>
            <item><key>cluster</key><resourceId>i-4</resourceId><resourceType>instance</resourceType><value/></item>
            </tagSet></DescribeTagsResponse>
            """))
        #expect(EC2Client.tagValue(in: xml, instanceID: "i-1", key: "cluster") == "prod")
        #expect(EC2Client.tagValue(in: xml, instanceID: "i-2", key: "cluster") == "other")
        #expect(EC2Client.tagValue(in: xml, instanceID: "i-4", key: "cluster") == "")
        #expect(EC2Client.tagValue(in: xml, instanceID: "i-3", key: "cluster") == nil)
        #expect(ManagedTag.parse("cluster=prod")! == ("cluster", "prod"))
        #expect(ManagedTag.parse("aws-node-termination-handler/managed")! == ("aws-node-termination-handler/managed", nil))
        #expect(ManagedTag.parse(" ") == nil)
    }

    @Test func tokenBucket_burstThenQPS() {
        let t0 = MonotonicClock.now
        var b = TokenBucket(qps: 2, burst: 3)
        #expect((0..<3).map { _ in b.reserve(now: t0) } == [.zero, .zero, .zero])
        #expect(b.reserve(now: t0) == .milliseconds(500))
        #expect(b.reserve(now: t0) == .seconds(1))
        // Two seconds later: the two reserved tokens are paid, two more came.
        #expect(b.reserve(now: t0 + .seconds(2)) == .zero)
        #expect(b.reserve(now: t0 + .seconds(2)) == .zero)
        #expect(b.reserve(now: t0 + .seconds(2)) == .milliseconds(500))
    }
}

/// Instances with tags (DescribeTags as moto answers it is tested in MotoTests).
final class FakeTags: InstanceTagsAPI {
    let tags: [String: [String: String]]
    let calls = Mutex(0)
    init(_ tags: [String: [String: String]]) { self.tags = tags }
    func tagValue(instanceID: String, key: String) throws(NodeLifecycleError) -> String? {
        calls.withLock { $0 += 1 }
        return tags[instanceID]?[key]
    }
}

@Suite("aws-node-termination-handler parity: drains (virtual clock)")
struct NTHDrainTests {
    static let blockedForever: @Sendable (String, Int) -> EvictionResult = { _, _ in .blocked(retryAfter: nil, budget: "web-pdb") }

    /// A scheduled change 5 minutes ahead with a PDB that never allows the
    /// eviction: the drain stops at the start time (not the 10 minute drain
    /// timeout), a Warning Event names the PDB after a minute, the metric
    /// counts it, the timeout Event names it too; the message is deleted.
    @Test func scheduledChange_startTimeBoundsTheDrain_stuckPDBIsNamed() throws {
        let cluster = FakeCluster(evictionPolicy: Self.blockedForever)
        cluster.addNodesWithAPod(1)
        let queue = HandleQueue()
        queue.put(healthEvent(["i-1"], start: "Sun, 06 Dec 2026 21:05:00 GMT"), id: "m1")
        let clock = VirtualMonotonicClock()
        let metrics = DrainMetrics()
        let lifecycle = FakeLifecycle()
        let service = nthService(cluster, lifecycle, queue, clock: clock, metrics: metrics)
        let t0 = clock.now
        #expect(try service.pollOnce(inline: true) == 1)
        guard case .timedOut(let node, let left) = try #require(service.finished.first) else {
            Issue.record("not timed out: \(service.finished)"); return
        }
        #expect(node == "n1" && left == ["shop/web-1"])
        let took = clock.now - t0
        #expect(took >= .seconds(299) && took <= .seconds(310), "\(took)")
        #expect(queue.remaining.isEmpty)
        #expect(lifecycle.all.isEmpty)   // no hook: nothing heartbeated or completed
        let events = cluster.events
        let stuck = try #require(events.first { $0.reason == "EvictionBlocked" })
        #expect(stuck.kind == .warning && stuck.message.contains("web-pdb") && stuck.message.contains("shop/web-1"))
        #expect(events.filter { $0.reason == "EvictionBlocked" }.count == 1)
        #expect(try #require(events.first { $0.reason == "DrainTimedOut" }).message.contains("PodDisruptionBudget web-pdb"))
        #expect(metrics.render().contains("node_lifecycle_evictions_stuck_total 1\n"))
        #expect(metrics.render().contains("node_lifecycle_actions_received_total{transition=\"scheduled_change\"} 1\n"))
    }

    /// One health event naming two instances: both drained, the message
    /// deleted once, after the second.
    @Test func scheduledChange_twoInstancesOneMessage_deletedOnceWhenBothAreDone() throws {
        let cluster = FakeCluster()
        cluster.addNodesWithAPod(2)
        let queue = HandleQueue()
        queue.put(healthEvent(["i-1", "i-2"], start: "Mon, 07 Dec 2026 21:00:00 GMT"), id: "m1")
        let service = nthService(cluster, FakeLifecycle(), queue, clock: VirtualMonotonicClock())
        #expect(try service.pollOnce(inline: true) == 1)
        #expect(Set(service.finished) == [.drained(node: "n1"), .drained(node: "n2")])
        #expect(queue.remaining.isEmpty)
        #expect(queue.log.filter { $0.hasPrefix("delete:") } == ["delete:rh-m1-1"])
    }

    /// `--managed-tag`: the untagged instance (another cluster's, same queue)
    /// is left alone: not cordoned, not heartbeated, not completed, not
    /// deleted; tags are read once per instance.
    @Test func managedTag_foreignInstanceIsLeftAlone_tagsCachedPerInstance() throws {
        let cluster = FakeCluster()
        cluster.addNodesWithAPod(2)
        let queue = HandleQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        queue.put(lifecycleBody(instance: "i-2", token: "t2"), id: "m2")
        let tags = FakeTags(["i-1": ["cluster": "prod"], "i-2": ["cluster": "staging"]])
        let lifecycle = FakeLifecycle()
        let service = nthService(cluster, lifecycle, queue, clock: VirtualMonotonicClock(),
                                 managedTag: ManagedTag(key: "cluster", value: "prod", tags: tags))
        #expect(try service.pollOnce(inline: true) == 2)
        #expect(service.finished.contains(.drained(node: "n1")) && service.finished.contains(.notManaged))
        #expect(lifecycle.all == ["heartbeat:i-1", "complete:i-1:CONTINUE"])
        #expect(queue.remaining == ["m2"])
        #expect(cluster.node("n2")?[path: "spec", "unschedulable"] == nil)
        #expect(!queue.log.contains { $0.contains("m2") })
        // It comes back twice more: still left, and DescribeTags is not called again.
        for _ in 0..<2 {
            queue.expireVisibility("m2")
            #expect(try service.pollOnce(inline: true) == 1)
        }
        #expect(tags.calls.withLock { $0 } == 2)
        #expect(service.finished.filter { $0 == .notManaged }.count == 3)
        #expect(queue.remaining == ["m2"])
    }

    @Test func cordonOnly_excludeFromLoadBalancers_noEviction_actionCompleted() throws {
        let cluster = FakeCluster()
        cluster.addNodesWithAPod(1)
        let queue = HandleQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        var options = DrainOptions()
        options.cordonOnly = true
        options.excludeFromLoadBalancers = true
        let lifecycle = FakeLifecycle()
        let service = nthService(cluster, lifecycle, queue, clock: VirtualMonotonicClock(), options: options)
        _ = try service.pollOnce(inline: true)
        #expect(service.finished == [.cordoned(node: "n1")])
        #expect(cluster.evictions.isEmpty && cluster.podKeys == ["shop/web-1"])
        let node = try #require(cluster.node("n1"))
        #expect(node[path: "spec", "unschedulable"] == true)
        #expect(node[path: "metadata", "labels", DrainOptions.excludeLabel] == "true")
        #expect(lifecycle.all.last == "complete:i-1:CONTINUE")
        #expect(cluster.events.map(\.reason) == ["Cordoned"])
    }

    /// The label goes on with the cordon, before the first eviction.
    @Test func excludeFromLoadBalancers_labelBeforeAnyEviction() throws {
        let labelledAtFirstEviction = Mutex<Bool?>(nil)
        let box = Mutex<FakeCluster?>(nil)
        let cluster = FakeCluster { _, _ in
            let labelled = box.withLock { $0 }?.node("n1")?[path: "metadata", "labels", DrainOptions.excludeLabel] == "true"
            labelledAtFirstEviction.withLock { if $0 == nil { $0 = labelled } }
            return .accepted
        }
        box.withLock { $0 = cluster }
        cluster.addNodesWithAPod(1)
        let queue = HandleQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        var options = DrainOptions()
        options.excludeFromLoadBalancers = true
        let service = nthService(cluster, FakeLifecycle(), queue, clock: VirtualMonotonicClock(), options: options)
        _ = try service.pollOnce(inline: true)
        #expect(service.finished == [.drained(node: "n1")])
        #expect(labelledAtFirstEviction.withLock { $0 } == true)
    }

    /// Out-of-service taint: after the drain, for events that end in
    /// termination only (a terminating hook, `shutting-down`), never for a
    /// stop, a rebalance or a scheduled change.
    @Test("out-of-service taint only after drains that end in termination", arguments: [
        (lifecycleBody(instance: "i-1", token: "t1"), true),
        (stateChange("i-1", "shutting-down"), true),
        (stateChange("i-1", "stopping"), false),
        (healthEvent(["i-1"], start: "Mon, 07 Dec 2026 21:00:00 GMT"), false),
        (eventBridge(source: "aws.ec2", detailType: "EC2 Instance Rebalance Recommendation", detail: #"{"instance-id":"i-1"}"#), false),
    ])
    func outOfServiceTaint(body: String, tainted: Bool) throws {
        let taintedAtEviction = Mutex(false)
        let box = Mutex<FakeCluster?>(nil)
        let cluster = FakeCluster { _, _ in
            if NodeEdits.hasTaint(box.withLock { $0 }?.node("n1") ?? [:], key: "node.kubernetes.io/out-of-service") {
                taintedAtEviction.withLock { $0 = true }
            }
            return .accepted
        }
        box.withLock { $0 = cluster }
        cluster.addNodesWithAPod(1)
        let queue = HandleQueue()
        queue.put(body, id: "m1")
        var options = DrainOptions()
        options.outOfServiceTaint = true
        let service = nthService(cluster, FakeLifecycle(), queue, clock: VirtualMonotonicClock(), options: options)
        _ = try service.pollOnce(inline: true)
        let taints = cluster.node("n1")?[path: "spec", "taints"]?.arrayValue ?? []
        let oos = taints.first { $0["key"] == "node.kubernetes.io/out-of-service" }
        #expect((oos != nil) == tainted)
        if tainted { #expect(oos?["value"] == "nodeshutdown" && oos?["effect"] == "NoExecute") }
        #expect(!taintedAtEviction.withLock { $0 })
        #expect(queue.remaining.isEmpty)
    }

    /// `--heartbeat-until`: heartbeats stop after it; the hook's
    /// HeartbeatTimeout then applies (NTH's behaviour). Without it (48 h)
    /// the same drain keeps its action.
    @Test func heartbeatUntil_stopsHeartbeats_completeDelay_keepsHeartbeating() throws {
        func run(until: Duration, delay: Duration?) throws -> (ClockedLifecycle, DrainService, Duration) {
            let cluster = FakeCluster { _, attempt in attempt <= 240 ? .blocked(retryAfter: nil) : .accepted }  // 20 min
            let queue = HandleQueue()
            let box = Mutex<DrainService?>(nil)
            let clock = VirtualMonotonicClock { _ in _ = box.withLock { $0 }?.heartbeatDue() }
            let lifecycle = ClockedLifecycle(clock: clock, heartbeatTimeout: .seconds(300))
            cluster.addNodesWithAPod(1)
            queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
            lifecycle.start("t1")
            var options = DrainOptions()
            options.heartbeatUntil = until
            options.completeDelay = delay
            let service = nthService(cluster, lifecycle, queue, clock: clock,
                                     settings: DrainSettings(timeout: .seconds(3600), heartbeatInterval: .seconds(60)), options: options)
            box.withLock { $0 = service }
            let t0 = clock.now
            _ = try service.pollOnce(inline: true)
            return (lifecycle, service, clock.now - t0)
        }
        let (cut, cutService, _) = try run(until: .seconds(600), delay: nil)
        #expect(cut.timedOut == ["t1"])
        #expect(try #require(cut.state.withLock { $0.heartbeats["t1"] }) <= 11)
        #expect(cutService.finished.first.map { if case .alreadyCompleted = $0 { true } else { false } } == true)
        let (kept, keptService, took) = try run(until: .seconds(172_800), delay: .seconds(600))
        #expect(kept.timedOut.isEmpty && kept.completed == ["t1"])
        #expect(keptService.finished == [.drained(node: "n1")])
        // 20 minutes of drain, then 10 of delay, heartbeated throughout.
        #expect(took >= .seconds(1800), "\(took)")
        #expect(try #require(kept.state.withLock { $0.heartbeats["t1"] }) >= 29)
    }

    /// NTH complaint: a message for a node that does not exist crash-looped
    /// or blocked the queue. Here it is left (or skipped) and the next
    /// message drains, again and again.
    @Test func unknownNode_neitherCrashesNorBlocksTheQueue() throws {
        let cluster = FakeCluster()
        cluster.addNodesWithAPod(1)
        let queue = HandleQueue()
        queue.put(lifecycleBody(instance: "i-404", token: "t404"), id: "m404")
        queue.put(healthEvent(["i-405"]), id: "m405")
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        let lifecycle = FakeLifecycle()
        let service = nthService(cluster, lifecycle, queue, clock: VirtualMonotonicClock())
        #expect(try service.pollOnce(inline: true) == 3)
        #expect(service.finished.contains(.drained(node: "n1")))
        for _ in 0..<5 {
            queue.expireVisibility("m404"); queue.expireVisibility("m405")
            #expect(try service.pollOnce(inline: true) == 2)
        }
        #expect(Set(queue.remaining) == ["m404", "m405"])
        #expect(service.finished.filter { $0 == .unknownNodeLeft }.count == 12)
        #expect(service.tracked.isEmpty)
        #expect(lifecycle.all == ["heartbeat:i-1", "complete:i-1:CONTINUE"])
    }

    /// NTH complaint: an instance terminated from the console (a state
    /// change, no hook) died in the middle of a drain and nobody was told.
    @Test func consoleTermination_midDrain_isToldByEventLogAndMetric() throws {
        let cluster = FakeCluster { _, attempt in attempt <= 24 ? .blocked(retryAfter: nil) : .accepted }  // 2 min
        cluster.addNodesWithAPod(1)
        let queue = HandleQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        // 30 s into the drain the console termination's notice arrives.
        let termination = InterruptingClock(after: .seconds(30)) { queue.put(stateChange("i-1", "shutting-down"), id: "s1") }
        let metrics = DrainMetrics()
        let sink = MemorySink()
        let service = nthService(cluster, FakeLifecycle(), queue, clock: termination.clock, metrics: metrics, sink: sink)
        termination.drive(service)
        _ = try service.pollOnce(inline: true)
        #expect(termination.interrupted)
        let lost = try #require(cluster.events.first { $0.reason == "InstanceLostDuringDrain" })
        #expect(lost.kind == .warning && lost.node == "n1" && lost.message.contains("shutting-down"))
        #expect(metrics.render().contains("node_lifecycle_instances_lost_during_drain_total 1\n"))
        #expect(sink.contains("instance is going while its drain runs"))
        #expect(queue.remaining.isEmpty)   // the notice deleted, the action completed
        #expect(service.finished == [.drained(node: "n1")])
    }

    /// Unknown sources on the queue are deleted, and the service goes on.
    @Test func unknownSource_deleted_serviceGoesOn() throws {
        let cluster = FakeCluster()
        cluster.addNode("n1", instance: "i-1")
        let queue = HandleQueue()
        queue.put(eventBridge(source: "", detailType: "", detail: "{}"), id: "x1")
        queue.put(eventBridge(source: "aws.s3", detailType: "Object Created", detail: "{}"), id: "x2")
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        let service = nthService(cluster, FakeLifecycle(), queue, clock: VirtualMonotonicClock())
        #expect(try service.pollOnce(inline: true) == 3)
        #expect(queue.remaining.isEmpty)
        #expect(service.finished == [.drained(node: "n1")])
    }

    /// Every Kubernetes request goes through the bucket: 200 list calls at
    /// 20 qps with a burst of 40 take at least (200 - 40) / 20 = 8 s.
    @Test func rateLimitedCluster_boundsTheRequestRate() throws {
        let clock = VirtualMonotonicClock()
        let metrics = DrainMetrics()
        let cluster = RateLimitedCluster(FakeCluster(), qps: 20, burst: 40, clock: clock, metrics: metrics)
        let t0 = clock.now
        for _ in 0..<200 { _ = try cluster.listNodes() }
        let took = clock.now - t0
        #expect(took >= .seconds(8) && took < .milliseconds(8100), "\(took)")
        #expect(metrics.render().contains("node_lifecycle_kube_requests_total 200\n"))
        #expect(metrics.render().contains("node_lifecycle_kube_requests_throttled_total 160\n"))
    }

    /// Webhooks never block the drain: posts queue (bounded) and go from
    /// their own thread; failures and drops are counted.
    @Test func webhook_queuedBounded_failuresCounted_bodyFromTheTemplate() throws {
        let bodies = Mutex<[String]>([])
        let transport = FakeTransport { _, request in
            bodies.withLock { $0.append(String(decoding: request.body, as: UTF8.self)) }
            return textResponse(bodies.withLock { $0.count } == 1 ? 200 : 500, "")
        }
        let metrics = DrainMetrics()
        let notifier = WebhookNotifier(url: try #require(AWSURL("http://127.0.0.1:9/hook")), template: try WebhookTemplate(#"{"i":"{{ .InstanceID }}","k":"{{.Kind}}"}"#),
                                       headers: [AWSHeader("X-Token", "s")], transport: transport, capacity: 2,
                                       logger: Logger(sink: MemorySink()), metrics: metrics)
        let cluster = FakeCluster()
        cluster.addNode("n1", instance: "i-1")
        let queue = HandleQueue()
        queue.put(lifecycleBody(instance: "i-1", token: "t1"), id: "m1")
        queue.put(eventBridge(source: "aws.ec2", detailType: "EC2 Spot Instance Interruption Warning", detail: #"{"instance-id":"i-1"}"#), id: "m2")
        var options = DrainOptions()
        options.webhook = notifier
        let service = nthService(cluster, FakeLifecycle(), queue, clock: VirtualMonotonicClock(), options: options)
        _ = try service.pollOnce(inline: true)
        #expect(transport.requests.isEmpty)   // nothing sent on the drain's thread
        #expect(notifier.notify(WebhookEvent(eventID: "e", kind: "K", instanceID: "i-3", nodeName: "", description: "", startTime: "")) == false)
        notifier.drain()
        // The spot warning drains first (two minutes' notice), so it is posted first.
        #expect(bodies.withLock { $0 } == [#"{"i":"i-1","k":"SPOT_ITN"}"#, #"{"i":"i-1","k":"ASG_LIFECYCLE"}"#])
        let sent = try #require(transport.requests.first).request
        #expect(sent.method == "POST" && sent.target == "/hook" && sent.header("X-Token") == "s" && sent.header("Content-Type") == "application/json")
        #expect(metrics.render().contains("node_lifecycle_webhooks_total{outcome=\"sent\"} 1\n"))
        #expect(metrics.render().contains("node_lifecycle_webhooks_total{outcome=\"failed\"} 2\n"))
    }
}

@Suite("aws-node-termination-handler parity: --help")
struct NTHHelpTests {
    @Test func drainHelp_listsTheNewOptions() {
        let r = runCommand("'\(TestPaths.binary("node-lifecycle"))' drain --help 2>&1")
        for flag in ["--managed-tag", "--cordon-only", "--exclude-from-load-balancers", "--out-of-service-taint",
                     "--kube-api-qps", "--kube-api-burst", "--heartbeat-until", "--complete-lifecycle-action-delay",
                     "--webhook-url", "--webhook-template", "--webhook-headers", "NODE_LIFECYCLE_MANAGED_TAG"] {
            #expect(r.output.contains(flag), "\(flag) missing from drain --help")
        }
    }
}

@Suite("webhooks against local receivers", .timeLimit(.minutes(1)))
struct WebhookReceiverTests {
    /// A receiver that accepts the connection and never answers: the post
    /// gives up after its timeout and counts as failed; queuing it never
    /// waited. (Loopback socket made and closed by the test.)
    @Test func silentReceiver_postIsBoundedAndCounted() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        try #require(fd >= 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        try #require(bound == 0 && listen(fd, 8) == 0)
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        let port = Int(UInt16(bigEndian: addr.sin_port))
        let metrics = DrainMetrics()
        let notifier = WebhookNotifier(url: try #require(AWSURL("http://127.0.0.1:\(port)/hook")), template: try WebhookTemplate(WebhookTemplate.nthDefault),
                                       headers: [], transport: HTTPTransport(connectTimeout: .seconds(1)), timeout: .seconds(1),
                                       logger: Logger(sink: MemorySink()), metrics: metrics)
        let t0 = MonotonicClock.now
        #expect(notifier.notify(WebhookEvent(eventID: "e", kind: "SPOT_ITN", instanceID: "i-1", nodeName: "n1", description: "d", startTime: "")))
        #expect(MonotonicClock.now - t0 < .milliseconds(200))   // queued, not sent
        notifier.drain()
        let took = MonotonicClock.now - t0
        #expect(took >= .milliseconds(900) && took < .seconds(5), "\(took)")
        #expect(metrics.render().contains("node_lifecycle_webhooks_total{outcome=\"failed\"} 1\n"))
        #expect(metrics.render().contains("node_lifecycle_webhooks_total{outcome=\"sent\"} 0\n"))
    }
}
