import KLCore

/// Which way an instance is going.
public enum LifecycleTransition: String, Sendable, Equatable {
    case terminating = "autoscaling:EC2_INSTANCE_TERMINATING"
    case launching = "autoscaling:EC2_INSTANCE_LAUNCHING"
}

/// Where a node's termination notice came from.
public enum ActionSource: String, Sendable, Equatable {
    /// An Auto Scaling lifecycle hook: heartbeated, completed with CONTINUE.
    case lifecycleHook = "lifecycle_hook"
    /// EventBridge "EC2 Spot Instance Interruption Warning": the instance
    /// goes two minutes after the warning. Drained at once (beyond
    /// `--concurrency`, ahead of the queue) with a drain timeout of at most
    /// 2 minutes; nothing to heartbeat or complete.
    case spotInterruption = "spot_interruption"
    /// EventBridge "EC2 Instance Rebalance Recommendation": an elevated risk
    /// of interruption. The node is cordoned and tainted, not drained.
    case rebalanceRecommendation = "rebalance_recommendation"
    /// EventBridge "EC2 Instance State-change Notification" with state
    /// `stopping` or `shutting-down`: drained like a lifecycle action (the
    /// instance is going; nothing to complete).
    case stateChange = "state_change"
}

/// One pending Auto Scaling lifecycle action: what `CompleteLifecycleAction`
/// and `RecordLifecycleActionHeartbeat` need, plus what the logs show.
/// EC2 events (spot interruption, rebalance, state change) are carried as
/// actions too, with `source` saying so and the token `instance:ID`, so a
/// second notice for the same instance joins the first.
public struct LifecycleAction: Sendable, Equatable {
    public var autoScalingGroupName: String
    public var lifecycleHookName: String
    public var lifecycleActionToken: String
    public var instanceID: String
    public var transition: LifecycleTransition
    /// `Time` of the message (RFC 3339), for logs.
    public var time: String?
    /// `NotificationMetadata` of the hook, as sent.
    public var notificationMetadata: String?
    public var source: ActionSource

    /// True when Auto Scaling waits for this action (heartbeat, complete).
    public var isLifecycleHook: Bool { source == .lifecycleHook }

    public init(autoScalingGroupName: String, lifecycleHookName: String, lifecycleActionToken: String,
                instanceID: String, transition: LifecycleTransition, time: String? = nil,
                notificationMetadata: String? = nil, source: ActionSource = .lifecycleHook) {
        self.source = source
        self.autoScalingGroupName = autoScalingGroupName
        self.lifecycleHookName = lifecycleHookName
        self.lifecycleActionToken = lifecycleActionToken
        self.instanceID = instanceID
        self.transition = transition
        self.time = time
        self.notificationMetadata = notificationMetadata
    }
}

/// A queue message body, understood.
public enum LifecycleMessage: Sendable, Equatable {
    case action(LifecycleAction)
    /// `autoscaling:TEST_NOTIFICATION`, sent when the hook is created: delete it.
    case testNotification
    /// An EC2 event that needs nothing (a state change to `running`,
    /// `stopped`, ...): delete it. The text says what it was.
    case ignoredEvent(String)

    /// Parses the three shapes a lifecycle message arrives in:
    /// 1. direct from the hook (`LifecycleTransition`, `EC2InstanceId`, ...);
    /// 2. wrapped by SNS (`"Type":"Notification"`, the JSON above as a string
    ///    in `Message`);
    /// 3. from EventBridge (`detail-type` `EC2 Instance-terminate Lifecycle
    ///    Action` or `EC2 Instance-launch Lifecycle Action`, fields in `detail`).
    /// Anything else throws `.malformedMessage`, naming what is missing.
    public static func parse(_ body: String) throws(NodeLifecycleError) -> LifecycleMessage {
        let json: JSON
        do {
            json = try JSON.parse(body)
        } catch {
            throw NodeLifecycleError(.malformedMessage, "The queue message is not JSON (\(error)); it is left on the queue for its dead-letter policy.")
        }
        guard json.objectValue != nil else {
            throw NodeLifecycleError(.malformedMessage, "The queue message is JSON but not an object; it is left on the queue for its dead-letter policy.")
        }
        if json["Type"]?.stringValue == "Notification", let inner = json["Message"]?.stringValue {
            return try parse(inner)
        }
        if let detailType = json["detail-type"]?.stringValue {
            guard let detail = json["detail"], detail.objectValue != nil else {
                throw NodeLifecycleError(.malformedMessage, "The EventBridge message of type \"\(detailType)\" has no \"detail\" object; it is left on the queue for its dead-letter policy.")
            }
            if let event = try parseEC2Event(detailType: detailType, detail: detail, time: json["time"]?.stringValue) {
                return event
            }
            return try parseAction(detail, shape: "EventBridge \"\(detailType)\"")
        }
        if json["Event"]?.stringValue == "autoscaling:TEST_NOTIFICATION" {
            return .testNotification
        }
        return try parseAction(json, shape: "lifecycle")
    }

    /// The EC2 events aws-node-termination-handler's queue mode handles too;
    /// nil for any other detail-type (lifecycle actions).
    static func parseEC2Event(detailType: String, detail: JSON, time: String?) throws(NodeLifecycleError) -> LifecycleMessage? {
        let source: ActionSource
        switch detailType {
        case "EC2 Spot Instance Interruption Warning": source = .spotInterruption
        case "EC2 Instance Rebalance Recommendation": source = .rebalanceRecommendation
        case "EC2 Instance State-change Notification": source = .stateChange
        default: return nil
        }
        guard let instance = detail["instance-id"]?.stringValue, instance.hasPrefix("i-") else {
            throw NodeLifecycleError(.malformedMessage, "The EventBridge \"\(detailType)\" message has no \"instance-id\" in its detail; it is left on the queue for its dead-letter policy.")
        }
        if source == .stateChange {
            let state = detail["state"]?.stringValue ?? ""
            guard state == "stopping" || state == "shutting-down" else {
                return .ignoredEvent("EC2 instance \(instance) state \(state.isEmpty ? "(none)" : state): nothing to drain")
            }
        }
        return .action(LifecycleAction(autoScalingGroupName: "", lifecycleHookName: "", lifecycleActionToken: "instance:" + instance,
                                       instanceID: instance, transition: .terminating, time: time, source: source))
    }

    static func parseAction(_ json: JSON, shape: String) throws(NodeLifecycleError) -> LifecycleMessage {
        if json["Event"]?.stringValue == "autoscaling:TEST_NOTIFICATION" { return .testNotification }
        func field(_ name: String) throws(NodeLifecycleError) -> String {
            guard let v = json[name]?.stringValue, !v.isEmpty else {
                throw NodeLifecycleError(.malformedMessage, "The \(shape) message has no \"\(name)\" field; it is left on the queue for its dead-letter policy.")
            }
            return v
        }
        let transitionText = try field("LifecycleTransition")
        guard let transition = LifecycleTransition(rawValue: transitionText) else {
            throw NodeLifecycleError(.malformedMessage, "The \(shape) message has the unknown LifecycleTransition \"\(transitionText)\"; it is left on the queue for its dead-letter policy.")
        }
        return .action(LifecycleAction(
            autoScalingGroupName: try field("AutoScalingGroupName"),
            lifecycleHookName: try field("LifecycleHookName"),
            lifecycleActionToken: try field("LifecycleActionToken"),
            instanceID: try field("EC2InstanceId"),
            transition: transition,
            time: json["Time"]?.stringValue,
            notificationMetadata: json["NotificationMetadata"]?.stringValue))
    }
}

/// `spec.providerID` of an EC2 node is `aws:///ZONE/INSTANCE`: the instance id
/// is the last path segment.
public enum ProviderID {
    public static func instanceID(_ providerID: String) -> String? {
        guard providerID.hasPrefix("aws://") else { return nil }
        guard let last = providerID.split(separator: "/").last, last.hasPrefix("i-") else { return nil }
        return String(last)
    }

    /// The name of the node in `nodes` (a NodeList's `items`) whose
    /// `spec.providerID` names `instanceID`.
    public static func nodeName(for instanceID: String, in nodes: [JSON]) -> String? {
        for node in nodes {
            if let pid = node[path: "spec", "providerID"]?.stringValue, Self.instanceID(pid) == instanceID {
                return node[path: "metadata", "name"]?.stringValue
            }
        }
        return nil
    }
}
