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
    /// AWS Health "AWS Health Event", `service` EC2, `eventTypeCategory`
    /// `scheduledChange` (retirement, maintenance): drained in turn, within
    /// `--concurrency`; the event's `startTime` bounds the drain.
    case scheduledChange = "scheduled_change"
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
    /// `detail.state` of a state-change notification (`stopping`,
    /// `shutting-down`, `stopped`, `terminated`).
    public var ec2State: String?
    /// `detail.startTime` of a scheduled change: the drain must be over by then.
    public var startTime: WallTime?

    /// True when the instance goes away at the end (the out-of-service
    /// taint is only for these): a terminating hook, a spot interruption, a
    /// state change to `shutting-down`/`terminated`. Not a stop, a
    /// rebalance recommendation or a scheduled change (often a reboot).
    public var endsInTermination: Bool {
        switch source {
        case .lifecycleHook: transition == .terminating
        case .spotInterruption: true
        case .stateChange: ec2State == "shutting-down" || ec2State == "terminated"
        case .rebalanceRecommendation, .scheduledChange: false
        }
    }

    /// True when Auto Scaling waits for this action (heartbeat, complete).
    public var isLifecycleHook: Bool { source == .lifecycleHook }

    public init(autoScalingGroupName: String, lifecycleHookName: String, lifecycleActionToken: String,
                instanceID: String, transition: LifecycleTransition, time: String? = nil,
                notificationMetadata: String? = nil, source: ActionSource = .lifecycleHook,
                ec2State: String? = nil, startTime: WallTime? = nil) {
        self.source = source
        self.ec2State = ec2State
        self.startTime = startTime
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
    /// An AWS Health scheduled change names several instances: one action
    /// each, all carried by the same message (deleted once every one is done).
    case actions([LifecycleAction])
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
            if json["source"]?.stringValue == "aws.health" {
                return try parseHealthEvent(detailType: detailType, detail: detail, time: json["time"]?.stringValue)
            }
            if let event = try parseEC2Event(detailType: detailType, detail: detail, time: json["time"]?.stringValue) {
                return event
            }
            guard detailType == "EC2 Instance-terminate Lifecycle Action" || detailType == "EC2 Instance-launch Lifecycle Action" else {
                // Another rule on the same queue, an empty or unknown source:
                // nothing of ours. Deleted (a dead-letter queue would only
                // collect it), logged with what it was.
                let source = json["source"]?.stringValue ?? ""
                return .ignoredEvent("EventBridge event of source \"\(source)\" and detail-type \"\(detailType)\" is not one node-lifecycle handles")
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
        var state: String? = nil
        if source == .stateChange {
            let s = detail["state"]?.stringValue ?? ""
            // `stopped` and `terminated` are kept: if a drain of the
            // instance is running, someone must be told it went.
            guard ["stopping", "shutting-down", "stopped", "terminated"].contains(s) else {
                return .ignoredEvent("EC2 instance \(instance) state \(s.isEmpty ? "(none)" : s): nothing to drain")
            }
            state = s
        }
        return .action(LifecycleAction(autoScalingGroupName: "", lifecycleHookName: "", lifecycleActionToken: "instance:" + instance,
                                       instanceID: instance, transition: .terminating, time: time, source: source, ec2State: state))
    }

    /// AWS Health (`source` `aws.health`): an EC2 `scheduledChange` gives one
    /// action per affected instance; any other health event is deleted.
    static func parseHealthEvent(detailType: String, detail: JSON, time: String?) throws(NodeLifecycleError) -> LifecycleMessage {
        let service = detail["service"]?.stringValue ?? ""
        let category = detail["eventTypeCategory"]?.stringValue ?? ""
        guard service == "EC2", category == "scheduledChange" else {
            return .ignoredEvent("AWS Health event of service \"\(service)\" and category \"\(category)\": nothing to drain")
        }
        let instances = (detail["affectedEntities"]?.arrayValue ?? []).compactMap { $0["entityValue"]?.stringValue }
            .filter { $0.hasPrefix("i-") }
        guard !instances.isEmpty else {
            throw NodeLifecycleError(.malformedMessage, "The AWS Health scheduled change names no instance in \"affectedEntities\"; it is left on the queue for its dead-letter policy.")
        }
        let start = detail["startTime"]?.stringValue.flatMap(HTTPDate.parse)
        var seen = Set<String>()
        let actions = instances.filter { seen.insert($0).inserted }.prefix(1000).map {
            LifecycleAction(autoScalingGroupName: "", lifecycleHookName: "", lifecycleActionToken: "instance:" + $0,
                            instanceID: $0, transition: .terminating, time: time, source: .scheduledChange, startTime: start)
        }
        return actions.count == 1 ? .action(actions[0]) : .actions(Array(actions))
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

/// The times AWS Health writes: RFC 1123 (`Sat, 05 Jun 2016 15:10:09 GMT`,
/// as in its EventBridge events) or RFC 3339.
public enum HTTPDate {
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    public static func parse(_ text: String) -> WallTime? {
        if let t = RFC3339.parse(text) { return t }
        // "Sat, 05 Jun 2016 15:10:09 GMT"
        let parts = text.split(separator: " ")
        guard parts.count == 6, parts[5] == "GMT" || parts[5] == "UTC",
              let day = Int(parts[1]), (1...31).contains(day),
              let monthIndex = months.firstIndex(of: String(parts[2])),
              let year = Int(parts[3]), (1970...9999).contains(year) else { return nil }
        let hms = parts[4].split(separator: ":").compactMap { Int($0) }
        guard hms.count == 3, (0...23).contains(hms[0]), (0...59).contains(hms[1]), (0...60).contains(hms[2]) else { return nil }
        return CivilTime(year: year, month: monthIndex + 1, day: day, hour: hms[0], minute: hms[1], second: hms[2]).wallTime
    }
}
