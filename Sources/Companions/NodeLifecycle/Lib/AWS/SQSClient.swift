import KLCore

/// One received SQS message.
public struct SQSMessage: Sendable, Equatable {
    public var messageID: String
    public var receiptHandle: String
    public var body: String
    /// `ApproximateReceiveCount` (1 on first delivery).
    public var receiveCount = 1
}

/// SQS over its JSON 1.0 protocol (`X-Amz-Target: AmazonSQS.<Action>`).
public struct SQSClient: Sendable {
    public var aws: AWSClient
    /// Base URL of the SQS endpoint (`AWSService.sqs.endpoint`).
    public var baseURL: String

    /// The region in a queue URL `https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`.
    public static func region(fromQueueURL url: String) -> String? {
        guard let host = AWSURL(url)?.host else { return nil }
        let parts = host.split(separator: ".")
        guard parts.count >= 4, parts[0] == "sqs", parts[2] == "amazonaws" else { return nil }
        return String(parts[1])
    }

    func call(_ action: String, _ body: JSON, timeout: Duration? = nil) throws(NodeLifecycleError) -> JSON {
        let request = AWSRequest(method: "POST", target: "/", headers: [
            AWSHeader("Content-Type", "application/x-amz-json-1.0"),
            AWSHeader("X-Amz-Target", "AmazonSQS.\(action)"),
        ], body: Array(body.serialized().utf8))
        let response = try aws.send(.sqs, baseURL: baseURL, request, timeout: timeout)
        if response.body.isEmpty { return .object(JSONObject()) }
        do {
            return try JSON.parse(bytes: response.body)
        } catch {
            throw NodeLifecycleError(.aws, "AWS sqs \(action) answered HTTP \(response.status) with a body that is not JSON (\(error)).")
        }
    }

    /// Long-polls for up to `max` messages (1–10), waiting up to `wait` seconds.
    public func receive(queueURL: String, max: Int = 10, waitSeconds: Int = 20,
                        visibilityTimeout: Int? = nil) throws(NodeLifecycleError) -> [SQSMessage] {
        var body: [(String, JSON)] = [
            ("QueueUrl", .string(queueURL)), ("MaxNumberOfMessages", JSON(max)),
            ("WaitTimeSeconds", JSON(waitSeconds)),
            ("MessageSystemAttributeNames", ["ApproximateReceiveCount"]),
        ]
        if let visibilityTimeout { body.append(("VisibilityTimeout", JSON(visibilityTimeout))) }
        let answer = try call("ReceiveMessage", .object(JSONObject(body)), timeout: .seconds(Int64(waitSeconds) + 10))
        return (answer["Messages"]?.arrayValue ?? []).compactMap { m in
            guard let id = m["MessageId"]?.stringValue, let handle = m["ReceiptHandle"]?.stringValue else { return nil }
            let count = m[path: "Attributes", "ApproximateReceiveCount"]?.stringValue.flatMap { Int($0) } ?? 1
            return SQSMessage(messageID: id, receiptHandle: handle, body: m["Body"]?.stringValue ?? "", receiveCount: count)
        }
    }

    public func delete(queueURL: String, receiptHandle: String) throws(NodeLifecycleError) {
        _ = try call("DeleteMessage", ["QueueUrl": .string(queueURL), "ReceiptHandle": .string(receiptHandle)])
    }

    /// Keeps a message invisible (while its drain runs) for `seconds` more.
    public func changeVisibility(queueURL: String, receiptHandle: String, seconds: Int) throws(NodeLifecycleError) {
        _ = try call("ChangeMessageVisibility", ["QueueUrl": .string(queueURL), "ReceiptHandle": .string(receiptHandle),
                                                 "VisibilityTimeout": JSON(seconds)])
    }

    /// `ApproximateNumberOfMessages` (visible) and
    /// `ApproximateNumberOfMessagesNotVisible` (in flight).
    public func approximateCounts(queueURL: String) throws(NodeLifecycleError) -> (visible: Int, inFlight: Int) {
        let a = try call("GetQueueAttributes", ["QueueUrl": .string(queueURL),
                                                "AttributeNames": ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]])
        func n(_ k: String) -> Int { a[path: "Attributes", k]?.stringValue.flatMap { Int($0) } ?? 0 }
        return (n("ApproximateNumberOfMessages"), n("ApproximateNumberOfMessagesNotVisible"))
    }

    /// Sends a message (tests and tooling).
    @discardableResult
    public func send(queueURL: String, body: String) throws(NodeLifecycleError) -> String {
        try call("SendMessage", ["QueueUrl": .string(queueURL), "MessageBody": .string(body)])["MessageId"]?.stringValue ?? ""
    }
}
