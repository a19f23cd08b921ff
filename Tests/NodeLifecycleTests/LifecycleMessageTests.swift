import KLCore
import Testing
@testable import NodeLifecycleKit

@Suite("Lifecycle messages")
struct LifecycleMessageTests {
    static let direct = #"""
    {"Origin":"AutoScalingGroup","LifecycleHookName":"drain-hook","Destination":"EC2","AccountId":"123456789012","RequestId":"4a0b6ad5-0d2e-4c1e-9f0b-2d0b9e4c7f11","LifecycleTransition":"autoscaling:EC2_INSTANCE_TERMINATING","AutoScalingGroupName":"nodes-asg","Service":"AWS Auto Scaling","Time":"2026-11-28T10:00:00.123Z","EC2InstanceId":"i-0123456789abcdef0","LifecycleActionToken":"71514b9d-6a40-4b26-8523-05e7eEXAMPLE","NotificationMetadata":"{\"cluster\":\"prod\"}"}
    """#

    static let expected = LifecycleAction(
        autoScalingGroupName: "nodes-asg", lifecycleHookName: "drain-hook",
        lifecycleActionToken: "71514b9d-6a40-4b26-8523-05e7eEXAMPLE", instanceID: "i-0123456789abcdef0",
        transition: .terminating, time: "2026-11-28T10:00:00.123Z", notificationMetadata: #"{"cluster":"prod"}"#)

    @Test func direct_hookMessage_parsesEveryField() throws {
        #expect(try LifecycleMessage.parse(Self.direct) == .action(Self.expected))
    }

    @Test func snsWrapped_message_unwrapsTheInnerJSON() throws {
        let envelope: JSON = .object(JSONObject([
            ("Type", "Notification"), ("MessageId", "d1f0"), ("TopicArn", "arn:aws:sns:eu-west-1:123456789012:asg"),
            ("Subject", "Auto Scaling:  Lifecycle action 'TERMINATING' for instance i-0123456789abcdef0"),
            ("Message", .string(Self.direct)), ("Timestamp", "2026-11-28T10:00:00.200Z"),
        ]))
        #expect(try LifecycleMessage.parse(envelope.serialized()) == .action(Self.expected))
    }

    @Test func eventBridge_terminateAction_readsDetail() throws {
        let body = #"""
        {"version":"0","id":"468fe059-f4b7-445f-bb22-2a6b1e3e0c4a","detail-type":"EC2 Instance-terminate Lifecycle Action","source":"aws.autoscaling","account":"123456789012","time":"2026-11-28T10:00:00Z","region":"eu-west-1","resources":["arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:x:autoScalingGroupName/nodes-asg"],"detail":{"LifecycleActionToken":"71514b9d-6a40-4b26-8523-05e7eEXAMPLE","AutoScalingGroupName":"nodes-asg","LifecycleHookName":"drain-hook","EC2InstanceId":"i-0123456789abcdef0","LifecycleTransition":"autoscaling:EC2_INSTANCE_TERMINATING","NotificationMetadata":"{\"cluster\":\"prod\"}","Origin":"AutoScalingGroup","Destination":"EC2"}}
        """#
        var want = Self.expected
        want.time = nil
        #expect(try LifecycleMessage.parse(body) == .action(want))
    }

    @Test func launching_transition_isRecognised() throws {
        let body = Self.direct.replacingOccurrences("EC2_INSTANCE_TERMINATING", "EC2_INSTANCE_LAUNCHING")
        guard case .action(let a) = try LifecycleMessage.parse(body) else { Issue.record("not an action"); return }
        #expect(a.transition == .launching)
    }

    @Test func testNotification_direct_and_viaSNS() throws {
        let test = #"{"AccountId":"123456789012","RequestId":"x","AutoScalingGroupARN":"arn:x","AutoScalingGroupName":"nodes-asg","Service":"AWS Auto Scaling","Event":"autoscaling:TEST_NOTIFICATION","Time":"2026-11-28T10:00:00Z"}"#
        #expect(try LifecycleMessage.parse(test) == .testNotification)
        let sns: JSON = ["Type": "Notification", "Message": .string(test)]
        #expect(try LifecycleMessage.parse(sns.serialized()) == .testNotification)
    }

    @Test("malformed messages are refused with the reason", arguments: [
        ("not json at all", "not JSON"),
        ("[1,2]", "not an object"),
        (#"{"LifecycleTransition":"autoscaling:EC2_INSTANCE_TERMINATING"}"#, "\"AutoScalingGroupName\""),
        (#"{"LifecycleTransition":"autoscaling:EC2_INSTANCE_REBOOTING"}"#, "unknown LifecycleTransition"),
        (#"{"detail-type":"EC2 Instance-terminate Lifecycle Action"}"#, "no \"detail\""),
        (#"{"hello":"world"}"#, "\"LifecycleTransition\""),
    ])
    func malformed_isRefused(body: String, mentions: String) {
        do {
            _ = try LifecycleMessage.parse(body)
            Issue.record("parsed: \(body)")
        } catch {
            #expect(error.code == .malformedMessage)
            #expect(error.description.contains(mentions), "\(error.description)")
            #expect(error.description.contains("dead-letter"))
        }
    }

    @Test func providerID_givesTheInstance() {
        #expect(ProviderID.instanceID("aws:///eu-west-1a/i-0123456789abcdef0") == "i-0123456789abcdef0")
        #expect(ProviderID.instanceID("gce://p/z/n") == nil)
        #expect(ProviderID.instanceID("aws:///eu-west-1a/") == nil)
        let nodes: [JSON] = [
            ["metadata": ["name": "a"], "spec": ["providerID": "aws:///eu-west-1a/i-aaa"]],
            ["metadata": ["name": "b"], "spec": ["providerID": "aws:///eu-west-1b/i-bbb"]],
            ["metadata": ["name": "c"], "spec": [:]],
        ]
        #expect(ProviderID.nodeName(for: "i-bbb", in: nodes) == "b")
        #expect(ProviderID.nodeName(for: "i-ccc", in: nodes) == nil)
    }
}

extension String {
    func replacingOccurrences(_ a: String, _ b: String) -> String {
        var out = ""
        var rest = Substring(self)
        while let r = rest.firstRange(of: a) {
            out += rest[..<r.lowerBound] + b
            rest = rest[r.upperBound...]
        }
        return out + rest
    }
}

@Suite("EC2 events from EventBridge")
struct EC2EventMessageTests {
    func event(_ detailType: String, _ detail: String) -> String {
        #"{"version":"0","id":"7bf73129","detail-type":"\#(detailType)","source":"aws.ec2","account":"123456789012","time":"2026-11-28T10:00:00Z","region":"eu-west-1","resources":["arn:aws:ec2:eu-west-1b:instance/i-1234567890abcdef0"],"detail":\#(detail)}"#
    }

    @Test func spotInterruption_rebalance_andStateChange() throws {
        let spot = try LifecycleMessage.parse(event("EC2 Spot Instance Interruption Warning",
                                                    #"{"instance-id":"i-1234567890abcdef0","instance-action":"terminate"}"#))
        #expect(spot == .action(LifecycleAction(autoScalingGroupName: "", lifecycleHookName: "", lifecycleActionToken: "instance:i-1234567890abcdef0",
                                                instanceID: "i-1234567890abcdef0", transition: .terminating, time: "2026-11-28T10:00:00Z",
                                                source: .spotInterruption)))
        guard case .action(let rebalance) = try LifecycleMessage.parse(event("EC2 Instance Rebalance Recommendation", #"{"instance-id":"i-1234567890abcdef0"}"#)) else {
            Issue.record("rebalance not parsed"); return
        }
        #expect(rebalance.source == .rebalanceRecommendation && !rebalance.isLifecycleHook)
        guard case .action(let stopping) = try LifecycleMessage.parse(event("EC2 Instance State-change Notification",
                                                                            #"{"instance-id":"i-1234567890abcdef0","state":"stopping"}"#)) else {
            Issue.record("state change not parsed"); return
        }
        #expect(stopping.source == .stateChange)
        #expect(try LifecycleMessage.parse(event("EC2 Instance State-change Notification", #"{"instance-id":"i-1234567890abcdef0","state":"running"}"#))
                == .ignoredEvent("EC2 instance i-1234567890abcdef0 state running: nothing to drain"))
        #expect(throws: NodeLifecycleError.self) {
            try LifecycleMessage.parse(event("EC2 Spot Instance Interruption Warning", #"{"instance-action":"terminate"}"#))
        }
    }
}
