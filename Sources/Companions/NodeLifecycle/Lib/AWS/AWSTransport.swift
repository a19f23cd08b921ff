import KLCore

/// An HTTP answer as the AWS clients need it.
public struct AWSResponse: Sendable {
    public var status: Int
    public var headers: [AWSHeader]
    public var body: [UInt8]

    public init(status: Int, headers: [AWSHeader] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }

    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }
}

/// Sends one request to one base URL (`https://host[:port]`). The only I/O
/// the AWS clients do goes through this, so unit tests swap in a fake and the
/// binary uses `HTTPTransport` (KLTransport's HTTP/1.1 + TLS client).
public protocol AWSTransport: Sendable {
    func send(baseURL: String, _ request: AWSRequest, timeout: Duration) throws(NodeLifecycleError) -> AWSResponse
}

/// Which AWS API a call goes to: signing name, endpoint env var, default host.
public struct AWSService: Sendable, Equatable {
    /// SigV4 signing name.
    public var signingName: String
    /// Suffix of the SDK's `AWS_ENDPOINT_URL_<ID>` variable.
    public var endpointEnvID: String
    /// Host prefix of the regional endpoint (`sqs` → `sqs.REGION.amazonaws.com`).
    public var hostPrefix: String

    public static let sqs = AWSService(signingName: "sqs", endpointEnvID: "SQS", hostPrefix: "sqs")
    public static let autoScaling = AWSService(signingName: "autoscaling", endpointEnvID: "AUTO_SCALING", hostPrefix: "autoscaling")
    public static let cloudFormation = AWSService(signingName: "cloudformation", endpointEnvID: "CLOUDFORMATION",
                                                  hostPrefix: "cloudformation")
    public static let sts = AWSService(signingName: "sts", endpointEnvID: "STS", hostPrefix: "sts")

    /// The base URL for `region`, following the SDK convention: the service's
    /// own `AWS_ENDPOINT_URL_<ID>` wins, then `AWS_ENDPOINT_URL`, then
    /// `https://PREFIX.REGION.amazonaws.com` (`.amazonaws.com.cn` in China).
    public func endpoint(region: String, environment: [String: String]) -> String {
        if let url = environment["AWS_ENDPOINT_URL_\(endpointEnvID)"], !url.isEmpty { return Self.trimSlash(url) }
        if let url = environment["AWS_ENDPOINT_URL"], !url.isEmpty { return Self.trimSlash(url) }
        let suffix = region.hasPrefix("cn-") ? "amazonaws.com.cn" : "amazonaws.com"
        return "https://\(hostPrefix).\(region).\(suffix)"
    }

    static func trimSlash(_ s: String) -> String {
        var s = s
        while s.hasSuffix("/") { s.removeLast() }
        return s
    }
}

/// Pieces of an `http(s)://host[:port][/path]` URL.
public struct AWSURL: Sendable, Equatable {
    public var scheme: String
    public var host: String
    public var port: Int?
    public var path: String

    public init?(_ text: String) {
        guard let sep = text.firstRange(of: "://") else { return nil }
        scheme = String(text[..<sep.lowerBound]).lowercased()
        guard scheme == "http" || scheme == "https" else { return nil }
        let rest = text[sep.upperBound...]
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        let authority = rest[..<slash]
        path = slash == rest.endIndex ? "/" : String(rest[slash...])
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            host = String(authority[...close])
            let after = authority[authority.index(after: close)...]
            port = after.hasPrefix(":") ? Int(after.dropFirst()) : nil
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = p
        } else {
            host = String(authority)
            port = nil
        }
        if host.isEmpty { return nil }
    }

    /// `scheme://host[:port]`.
    public var base: String { "\(scheme)://\(hostHeader)" }

    /// The `Host` header: the port only when it is not the scheme's default.
    public var hostHeader: String {
        guard let port else { return host }
        if (scheme == "https" && port == 443) || (scheme == "http" && port == 80) { return host }
        return "\(host):\(port)"
    }
}
