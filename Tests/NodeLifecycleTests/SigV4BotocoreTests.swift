import KLCore
import KLTestSupport
import Testing
@testable import NodeLifecycleKit

/// Requests like the ones node-lifecycle sends, signed by us and by botocore's
/// `SigV4Auth` with the same frozen clock: the Authorization headers must be
/// byte-for-byte equal.
@Suite("SigV4 against botocore")
struct SigV4BotocoreTests {
    struct Case {
        var service: String
        var url: String
        var method: String
        var headers: [AWSHeader]
        var body: String
    }

    static let cases: [Case] = [
        Case(service: "sqs", url: "https://sqs.eu-west-1.amazonaws.com/", method: "POST",
             headers: [AWSHeader("Host", "sqs.eu-west-1.amazonaws.com"),
                       AWSHeader("Content-Type", "application/x-amz-json-1.0"),
                       AWSHeader("X-Amz-Target", "AmazonSQS.ReceiveMessage")],
             body: #"{"QueueUrl":"https://sqs.eu-west-1.amazonaws.com/123456789012/drain","MaxNumberOfMessages":10,"WaitTimeSeconds":20}"#),
        Case(service: "autoscaling", url: "https://autoscaling.eu-west-1.amazonaws.com/", method: "POST",
             headers: [AWSHeader("Host", "autoscaling.eu-west-1.amazonaws.com"),
                       AWSHeader("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")],
             body: AWSPercent.form([("Action", "CompleteLifecycleAction"), ("Version", "2011-01-01"),
                                    ("AutoScalingGroupName", "my asg/üñï"), ("LifecycleActionResult", "CONTINUE"),
                                    ("LifecycleActionToken", "bcd2f1b8-9a78-44d3-8a7a-4dd07d7cf635"),
                                    ("LifecycleHookName", "drain"), ("InstanceId", "i-0123456789abcdef0")])),
        Case(service: "cloudformation", url: "http://127.0.0.1:4566/", method: "POST",
             headers: [AWSHeader("Host", "127.0.0.1:4566"),
                       AWSHeader("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
                       AWSHeader("User-Agent", "node-lifecycle/1")],
             body: AWSPercent.form([("Action", "SignalResource"), ("Version", "2010-05-15"),
                                    ("StackName", "nodes"), ("LogicalResourceId", "NodeGroup"),
                                    ("UniqueId", "i-0123456789abcdef0"), ("Status", "SUCCESS")])),
        Case(service: "sts", url: "https://sts.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&b=2&a=1%2F2",
             method: "GET", headers: [AWSHeader("Host", "sts.amazonaws.com")], body: ""),
    ]

    @Test("our Authorization equals botocore's", arguments: [nil, "FQoGZXIvYXdzEJr//token+/="] as [String?])
    func matchesBotocore(token: String?) throws {
        let time = "20261128T101112Z"
        let now = wallTime(amz: time)
        var requests: [JSON] = []
        var ours: [String] = []
        for c in Self.cases {
            let target = "/" + (c.url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false).dropFirst(3).first.map(String.init) ?? "")
            var r = AWSRequest(method: c.method, target: target, headers: c.headers, body: Array(c.body.utf8))
            let creds = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                       sessionToken: token)
            SigV4Signer(region: "eu-west-1", service: c.service).sign(&r, credentials: creds, now: now)
            ours.append(r.header("Authorization") ?? "")
            requests.append(.object(JSONObject([
                ("service", .string(c.service)), ("method", .string(c.method)), ("url", .string(c.url)),
                ("headers", .array(c.headers.map { .array([.string($0.name), .string($0.value)]) })),
                ("body", .string(c.body)),
            ])))
        }
        // botocore signs one service per signer: call it once per case.
        let dir = makeTemporaryDirectory(prefix: "nodelifecycle-test")
        for (i, request) in requests.enumerated() {
            let spec: JSON = .object(JSONObject([
                ("time", .string(time)), ("region", "eu-west-1"),
                ("service", request["service"]!), ("access_key", "AKIDEXAMPLE"),
                ("secret_key", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
                ("token", token.map { .string($0) } ?? .null),
                ("requests", .array([request])),
            ]))
            let path = "\(dir)/spec\(i).json"
            #expect(writeTextFile(path, spec.serialized()))
            let run = runCommand("python3 '\(testsDirectory)/Support/botocore_sign.py' '\(path)'")
            try #require(run.status == 0, "botocore_sign.py failed: is botocore installed?")
            let answer = try JSON.parse(run.output)
            #expect(answer[0]?["authorization"]?.stringValue == ours[i], "case \(i) (\(Self.cases[i].service))")
            #expect(answer[0]?["x-amz-date"]?.stringValue == time)
        }
    }
}
