import KLCore
import KLSystem
import KLTestSupport
import Testing
@testable import NodeLifecycleKit

/// The local double for the Query actions moto lacks (Support/query_double.py):
/// it recomputes each signature with botocore and records accepted calls.
struct QueryDouble {
    var url: String
    var pid: Int
    static let accessKey = "AKIDQUERYDOUBLE"
    static let secret = "query-double-secret/+="

    static func start() throws -> QueryDouble {
        let dir = makeTemporaryDirectory(prefix: "nodelifecycle-test")
        let run = runCommand("python3 '\(testsDirectory)/Support/query_double.py' start '\(dir)' \(accessKey) '\(secret)'")
        try #require(run.status == 0, "query double did not start")
        let j = try JSON.parse(run.output)
        return QueryDouble(url: j["url"]!.stringValue!, pid: j["pid"]!.intValue!)
    }

    func stop() { _ = runCommand("python3 '\(testsDirectory)/Support/query_double.py' stop \(pid)") }

    /// The recorded calls: (action, params).
    func calls() throws -> [(action: String, params: JSON)] {
        let run = runCommand("python3 -c \"import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('\(url)/calls').read().decode())\"")
        return try (JSON.parse(run.output).arrayValue ?? []).map { ($0["action"]!.stringValue!, $0["params"]!) }
    }

    func client(secret: String = QueryDouble.secret, token: String? = nil) -> AWSClient {
        AWSClient(transport: HTTPTransport(),
                  credentials: StaticCredentials(AWSCredentials(accessKeyID: Self.accessKey, secretAccessKey: secret, sessionToken: token)),
                  region: "eu-west-1") { wallNow() }
    }
}

@Suite("Query actions against the signature-checking double", .serialized, .timeLimit(.minutes(1)))
struct QueryDoubleTests {
    let action = LifecycleAction(autoScalingGroupName: "nodes asg", lifecycleHookName: "drain", lifecycleActionToken: "tok-1",
                                 instanceID: "i-0123456789abcdef0", transition: .terminating)

    @Test func lifecycleAndSignal_areSignedAndRecorded() throws {
        let double = try QueryDouble.start()
        defer { double.stop() }
        let asg = AutoScalingClient(aws: double.client(token: "session/token+="), baseURL: double.url)
        try asg.recordHeartbeat(action)
        try asg.completeLifecycleAction(action, result: .continue)
        try CloudFormationClient(aws: double.client(), baseURL: double.url)
            .signalResource(stack: "nodes", logicalResourceID: "NodeGroup", uniqueID: "i-0123456789abcdef0", status: .success)
        let calls = try double.calls()
        #expect(calls.map(\.action) == ["RecordLifecycleActionHeartbeat", "CompleteLifecycleAction", "SignalResource"])
        #expect(calls[1].params["LifecycleActionResult"]?.stringValue == "CONTINUE")
        #expect(calls[1].params["AutoScalingGroupName"]?.stringValue == "nodes asg")
        #expect(calls[2].params["Status"]?.stringValue == "SUCCESS")
        #expect(calls[2].params["UniqueId"]?.stringValue == "i-0123456789abcdef0")
        // A second completion: Auto Scaling's "No active Lifecycle Action".
        do {
            try asg.completeLifecycleAction(action, result: .continue)
            Issue.record("completed twice")
        } catch {
            #expect(AutoScalingClient.isNoActiveAction(error), "\(error)")
        }
    }

    @Test func wrongSecret_isRejected_andNotRecorded() throws {
        let double = try QueryDouble.start()
        defer { double.stop() }
        do {
            try AutoScalingClient(aws: double.client(secret: "wrong"), baseURL: double.url).completeLifecycleAction(action, result: .continue)
            Issue.record("accepted a wrong signature")
        } catch {
            #expect(error.awsCode == "SignatureDoesNotMatch")
            #expect(error.httpStatus == 403)
        }
        #expect(try double.calls().isEmpty)
    }
}
