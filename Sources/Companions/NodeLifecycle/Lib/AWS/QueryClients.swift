import KLCore

/// One Query-protocol API (form-encoded POST, XML answer) of an AWS service
/// at one endpoint: what the Auto Scaling, CloudFormation and EC2 clients
/// share.
struct QueryEndpoint: Sendable {
    var aws: AWSClient
    var baseURL: String
    var service: AWSService
    /// The API's `Version` parameter (`2011-01-01` for Auto Scaling).
    var version: String

    func call(_ action: String, _ params: [(String, String)]) throws(NodeLifecycleError) -> XMLLeaves {
        let body = AWSPercent.form([("Action", action), ("Version", version)] + params)
        let request = AWSRequest(method: "POST", target: "/", headers: [
            AWSHeader("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ], body: Array(body.utf8))
        let response = try aws.send(service, baseURL: baseURL, request)
        return XMLLeaves(response.bodyText) ?? XMLLeaves("<empty/>")!
    }
}

/// The answer to a lifecycle action.
public enum LifecycleActionResult: String, Sendable {
    case `continue` = "CONTINUE"
    case abandon = "ABANDON"
}

/// Auto Scaling (Query protocol, `Version=2011-01-01`).
public struct AutoScalingClient: Sendable {
    let endpoint: QueryEndpoint

    public init(aws: AWSClient, baseURL: String) {
        endpoint = QueryEndpoint(aws: aws, baseURL: baseURL, service: .autoScaling, version: "2011-01-01")
    }

    static func params(_ a: LifecycleAction) -> [(String, String)] {
        [("AutoScalingGroupName", a.autoScalingGroupName), ("InstanceId", a.instanceID),
         ("LifecycleActionToken", a.lifecycleActionToken), ("LifecycleHookName", a.lifecycleHookName)]
    }

    public func completeLifecycleAction(_ a: LifecycleAction, result: LifecycleActionResult) throws(NodeLifecycleError) {
        _ = try endpoint.call("CompleteLifecycleAction", Self.params(a) + [("LifecycleActionResult", result.rawValue)])
    }

    public func recordHeartbeat(_ a: LifecycleAction) throws(NodeLifecycleError) {
        _ = try endpoint.call("RecordLifecycleActionHeartbeat", Self.params(a))
    }

    /// True for the error Auto Scaling gives when the action was already
    /// completed or timed out ("No active Lifecycle Action found"): a
    /// redelivered message whose work is done.
    public static func isNoActiveAction(_ e: NodeLifecycleError) -> Bool {
        e.awsCode == "ValidationError" && e.message.contains("No active Lifecycle Action")
    }
}

public enum ResourceSignalStatus: String, Sendable {
    case success = "SUCCESS"
    case failure = "FAILURE"
}

/// CloudFormation (Query protocol, `Version=2010-05-15`).
public struct CloudFormationClient: Sendable {
    let endpoint: QueryEndpoint

    public init(aws: AWSClient, baseURL: String) {
        endpoint = QueryEndpoint(aws: aws, baseURL: baseURL, service: .cloudFormation, version: "2010-05-15")
    }

    /// True when CloudFormation refused a signal because the resource is not
    /// waiting for one (`ValidationError`, e.g. "... is in UPDATE_COMPLETE
    /// state and cannot be signaled"): a `ready` that runs again on an old
    /// node. A stack that does not exist is a real error.
    public static func isNotWaitingForSignals(_ e: NodeLifecycleError) -> Bool {
        e.awsCode == "ValidationError" && !e.message.contains("does not exist")
    }

    /// `SignalResource`: counts toward a `CreationPolicy`/`UpdatePolicy`'s
    /// `WaitOnResourceSignals`. `uniqueID` is the instance id.
    public func signalResource(stack: String, logicalResourceID: String, uniqueID: String,
                               status: ResourceSignalStatus) throws(NodeLifecycleError) {
        _ = try endpoint.call("SignalResource", [
            ("StackName", stack), ("LogicalResourceId", logicalResourceID), ("UniqueId", uniqueID), ("Status", status.rawValue),
        ])
    }
}
