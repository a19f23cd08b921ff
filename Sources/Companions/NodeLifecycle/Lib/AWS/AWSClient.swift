import KLCore

/// Signs and sends AWS requests and turns AWS error answers into
/// `NodeLifecycleError(.aws)` with the AWS code and message.
public struct AWSClient: Sendable {
    public var transport: any AWSTransport
    public var credentials: any CredentialsProvider
    public var region: String
    /// Wall clock for `X-Amz-Date` (injectable for tests).
    public var clock: @Sendable () -> WallTime
    /// Bound on one call.
    public var timeout: Duration

    public init(transport: any AWSTransport, credentials: any CredentialsProvider, region: String,
                timeout: Duration = .seconds(30), clock: @escaping @Sendable () -> WallTime) {
        self.transport = transport
        self.credentials = credentials
        self.region = region
        self.timeout = timeout
        self.clock = clock
    }

    /// Signs `request` for `service` and sends it to `baseURL`; returns
    /// 2xx answers, throws the AWS error for anything else.
    /// - Parameter timeout: overrides the client's bound (long polls).
    public func send(_ service: AWSService, baseURL: String, _ request: AWSRequest,
                     timeout: Duration? = nil) throws(NodeLifecycleError) -> AWSResponse {
        guard let url = AWSURL(baseURL) else {
            throw NodeLifecycleError(.usage, "The \(service.signingName) endpoint \"\(baseURL)\" is not an http(s):// URL; fix AWS_ENDPOINT_URL or the queue URL.")
        }
        var request = request
        request.setHeader("Host", url.hostHeader)
        let now = clock()
        let creds = try credentials.credentials(now: now)
        SigV4Signer(region: region, service: service.signingName).sign(&request, credentials: creds, now: now)
        let response = try transport.send(baseURL: url.base, request, timeout: timeout ?? self.timeout)
        if (200..<300).contains(response.status) { return response }
        throw AWSErrorParser.error(service: service, action: Self.actionName(request), response: response)
    }

    /// `AmazonSQS.ReceiveMessage` → `ReceiveMessage`; Query `Action=` otherwise.
    static func actionName(_ request: AWSRequest) -> String {
        if let target = request.header("X-Amz-Target"), let dot = target.lastIndex(of: ".") {
            return String(target[target.index(after: dot)...])
        }
        let form = AWSPercent.parseForm(String(decoding: request.body, as: UTF8.self))
        return form.first { $0.0 == "Action" }?.1 ?? request.method
    }
}

/// Reads AWS error answers of both protocols:
/// - JSON 1.0 (SQS): `{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"..."}`,
///   with the legacy code in `x-amzn-query-error: AWS.SimpleQueueService.NonExistentQueue;Sender`;
/// - Query/XML: `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>...`
///   (also `<Response><Errors><Error>` as EC2-style services and moto write it).
public enum AWSErrorParser {
    public static func parse(_ response: AWSResponse) -> (code: String?, message: String?) {
        let text = response.bodyText
        if let json = try? JSON.parse(text), json.objectValue != nil {
            var code = json["__type"]?.stringValue ?? json["code"]?.stringValue ?? json["Code"]?.stringValue
            if let c = code, let hash = c.lastIndex(of: "#") { code = String(c[c.index(after: hash)...]) }
            if let query = response.header("x-amzn-query-error"), let semi = query.firstIndex(of: ";") {
                code = String(query[..<semi])
            }
            return (code, json["message"]?.stringValue ?? json["Message"]?.stringValue)
        }
        if let xml = XMLLeaves(text) {
            return (xml.first("Error", "Code") ?? xml.first("Code"), xml.first("Error", "Message") ?? xml.first("Message"))
        }
        return (nil, nil)
    }

    public static func error(service: AWSService, action: String, response: AWSResponse) -> NodeLifecycleError {
        let (code, message) = parse(response)
        var text = "AWS \(service.signingName) \(action) failed with HTTP \(response.status)"
        if let code { text += " \(code)" }
        if let message { text += ": \(message)" } else if code == nil {
            let snippet = String(response.bodyText.prefix(200))
            if !snippet.isEmpty { text += ": \(snippet)" }
        }
        if !text.hasSuffix(".") { text += "." }
        text += " " + advice(code: code, status: response.status)
        return NodeLifecycleError(.aws, text, awsCode: code, httpStatus: response.status)
    }

    static func advice(code: String?, status: Int) -> String {
        switch code ?? "" {
        case "SignatureDoesNotMatch", "IncompleteSignature", "InvalidSignatureException":
            return "Check the secret access key (and the clock: SigV4 allows 5 minutes of skew)."
        case "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken", "ExpiredTokenException":
            return "Check the access key id and session token; temporary credentials may have expired."
        case "AccessDenied", "AccessDeniedException", "AuthorizationError":
            return "Grant the role this action in its IAM policy."
        case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist":
            return "Check --queue-url and the region."
        default:
            return status >= 500 ? "AWS had a problem; the call is retried." : "Check the request parameters."
        }
    }
}
