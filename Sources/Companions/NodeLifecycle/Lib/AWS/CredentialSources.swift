import KLCore

/// Reads a small file (token files). Injected so tests need no real files
/// for error paths.
public typealias FileReader = @Sendable (String) throws(NodeLifecycleError) -> String

/// The credential sources node-lifecycle supports, tried in the SDK's order:
/// 1. env: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
/// 2. IRSA: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` → unsigned STS
///    `AssumeRoleWithWebIdentity` (the token file is read again on every
///    refresh: kubelet rotates it);
/// 3. EKS Pod Identity / container credentials:
///    `AWS_CONTAINER_CREDENTIALS_FULL_URI` with `Authorization:` from
///    `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (or `..._TOKEN`);
/// 4. IMDSv2 (unless `AWS_EC2_METADATA_DISABLED=true`): token PUT, role name,
///    role credentials.
public enum CredentialSources {
    public static func resolve(environment env: [String: String], region: String?, transport: any AWSTransport,
                               readFile: @escaping FileReader = readSmallFile) throws(NodeLifecycleError) -> RefreshingCredentials {
        let accessKey = env["AWS_ACCESS_KEY_ID"] ?? ""
        let secret = env["AWS_SECRET_ACCESS_KEY"] ?? ""
        if !accessKey.isEmpty || !secret.isEmpty {
            guard !accessKey.isEmpty, !secret.isEmpty else {
                throw NodeLifecycleError(.credentials, "Only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set; set both, or neither to use IRSA, Pod Identity or the instance role.")
            }
            let token = env["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
            let creds = AWSCredentials(accessKeyID: accessKey, secretAccessKey: secret, sessionToken: token)
            return RefreshingCredentials(source: "environment") { _ throws(NodeLifecycleError) in creds }
        }
        if let roleARN = env["AWS_ROLE_ARN"], !roleARN.isEmpty {
            guard let tokenFile = env["AWS_WEB_IDENTITY_TOKEN_FILE"], !tokenFile.isEmpty else {
                throw NodeLifecycleError(.credentials, "AWS_ROLE_ARN is set but AWS_WEB_IDENTITY_TOKEN_FILE is not; for IRSA both come from the EKS pod identity webhook (check the service account's eks.amazonaws.com/role-arn annotation).")
            }
            let sessionName = env["AWS_ROLE_SESSION_NAME"].flatMap { $0.isEmpty ? nil : $0 } ?? "node-lifecycle"
            let sts = AWSService.sts.endpoint(region: region ?? "us-east-1", environment: env)
            return RefreshingCredentials(source: "web identity (\(roleARN))") { now throws(NodeLifecycleError) in
                let token = try readFile(tokenFile).trimmingWhitespace
                return try WebIdentity.assumeRole(stsBaseURL: sts, roleARN: roleARN, sessionName: sessionName,
                                                  token: token, transport: transport)
            }
        }
        if let uri = env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] ?? env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"].map({ "http://169.254.170.2" + $0 }),
           !uri.isEmpty {
            let tokenFile = env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"].flatMap { $0.isEmpty ? nil : $0 }
            let fixedToken = env["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
            return RefreshingCredentials(source: "container credentials (\(uri))") { _ throws(NodeLifecycleError) in
                var auth: String?
                if let tokenFile { auth = try readFile(tokenFile).trimmingWhitespace } else { auth = fixedToken }
                return try ContainerCredentials.fetch(uri: uri, authorization: auth, transport: transport)
            }
        }
        if env["AWS_EC2_METADATA_DISABLED"]?.lowercased() != "true" {
            let imds = IMDS(baseURL: env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] ?? IMDS.defaultBaseURL, transport: transport)
            return RefreshingCredentials(source: "instance metadata (IMDSv2)") { _ throws(NodeLifecycleError) in
                try imds.roleCredentials()
            }
        }
        throw NodeLifecycleError(.credentials, "No AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, use IRSA (AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE) or EKS Pod Identity, or allow the instance metadata service (AWS_EC2_METADATA_DISABLED is true).")
    }

    /// Parses the JSON of IMDS and container credentials:
    /// `{"AccessKeyId","SecretAccessKey","Token","Expiration"}`.
    static func parseJSONCredentials(_ text: String, source: String) throws(NodeLifecycleError) -> AWSCredentials {
        guard let json = try? JSON.parse(text),
              let key = json["AccessKeyId"]?.stringValue, let secret = json["SecretAccessKey"]?.stringValue else {
            throw NodeLifecycleError(.credentials, "The credentials from \(source) are not the expected JSON (AccessKeyId, SecretAccessKey, Token, Expiration): \(String(text.prefix(120)))")
        }
        return AWSCredentials(accessKeyID: key, secretAccessKey: secret, sessionToken: json["Token"]?.stringValue,
                              expiration: json["Expiration"]?.stringValue.flatMap { RFC3339.parse($0) })
    }
}

/// STS `AssumeRoleWithWebIdentity` (unsigned: the web identity token is the proof).
public enum WebIdentity {
    public static func assumeRole(stsBaseURL: String, roleARN: String, sessionName: String, token: String,
                                  transport: any AWSTransport, timeout: Duration = .seconds(10)) throws(NodeLifecycleError) -> AWSCredentials {
        guard let url = AWSURL(stsBaseURL) else {
            throw NodeLifecycleError(.usage, "The STS endpoint \"\(stsBaseURL)\" is not an http(s):// URL; fix AWS_ENDPOINT_URL_STS.")
        }
        let body = AWSPercent.form([
            ("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
            ("RoleSessionName", sessionName), ("WebIdentityToken", token),
        ])
        let request = AWSRequest(method: "POST", target: "/", headers: [
            AWSHeader("Host", url.hostHeader),
            AWSHeader("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
        ], body: Array(body.utf8))
        let response = try transport.send(baseURL: url.base, request, timeout: timeout)
        guard (200..<300).contains(response.status) else {
            throw AWSErrorParser.error(service: .sts, action: "AssumeRoleWithWebIdentity", response: response)
        }
        return try parse(response.bodyText)
    }

    /// Reads `AssumeRoleWithWebIdentityResponse/.../Credentials`.
    public static func parse(_ xmlText: String) throws(NodeLifecycleError) -> AWSCredentials {
        guard let xml = XMLLeaves(xmlText),
              let key = xml.first("Credentials", "AccessKeyId"),
              let secret = xml.first("Credentials", "SecretAccessKey") else {
            throw NodeLifecycleError(.credentials, "STS AssumeRoleWithWebIdentity answered without Credentials: \(String(xmlText.prefix(200)))")
        }
        return AWSCredentials(accessKeyID: key, secretAccessKey: secret,
                              sessionToken: xml.first("Credentials", "SessionToken"),
                              expiration: xml.first("Credentials", "Expiration").flatMap { RFC3339.parse($0) })
    }
}

/// Container credentials endpoint (EKS Pod Identity agent, ECS).
public enum ContainerCredentials {
    public static func fetch(uri: String, authorization: String?, transport: any AWSTransport,
                             timeout: Duration = .seconds(5)) throws(NodeLifecycleError) -> AWSCredentials {
        guard let url = AWSURL(uri) else {
            throw NodeLifecycleError(.credentials, "AWS_CONTAINER_CREDENTIALS_FULL_URI \"\(uri)\" is not an http(s):// URL.")
        }
        var headers = [AWSHeader("Host", url.hostHeader), AWSHeader("Accept", "application/json")]
        if let authorization { headers.append(AWSHeader("Authorization", authorization)) }
        let response = try transport.send(baseURL: url.base, AWSRequest(method: "GET", target: url.path, headers: headers),
                                          timeout: timeout)
        guard response.status == 200 else {
            throw NodeLifecycleError(.credentials, "The container credentials endpoint \(uri) answered HTTP \(response.status): \(String(response.bodyText.prefix(200))). Check the Pod Identity association and AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.",
                                     httpStatus: response.status)
        }
        return try CredentialSources.parseJSONCredentials(response.bodyText, source: uri)
    }
}

/// IMDSv2: every read carries a session token got by `PUT /latest/api/token`.
public struct IMDS: Sendable {
    public static let defaultBaseURL = "http://169.254.169.254"
    public var baseURL: String
    public var transport: any AWSTransport
    public var timeout: Duration

    public init(baseURL: String = IMDS.defaultBaseURL, transport: any AWSTransport, timeout: Duration = .seconds(2)) {
        self.baseURL = AWSService.trimSlash(baseURL)
        self.transport = transport
        self.timeout = timeout
    }

    func host() throws(NodeLifecycleError) -> AWSURL {
        guard let url = AWSURL(baseURL) else {
            throw NodeLifecycleError(.usage, "The instance metadata endpoint \"\(baseURL)\" is not an http:// URL; fix AWS_EC2_METADATA_SERVICE_ENDPOINT.")
        }
        return url
    }

    /// `PUT /latest/api/token` with a 6-hour TTL.
    public func token() throws(NodeLifecycleError) -> String {
        let url = try host()
        let response = try transport.send(baseURL: url.base, AWSRequest(method: "PUT", target: "/latest/api/token", headers: [
            AWSHeader("Host", url.hostHeader), AWSHeader("X-aws-ec2-metadata-token-ttl-seconds", "21600"),
        ]), timeout: timeout)
        guard response.status == 200, !response.body.isEmpty else {
            throw NodeLifecycleError(.credentials, "The instance metadata service at \(baseURL) refused an IMDSv2 token (HTTP \(response.status)); check the instance's metadata options (hop limit 2 for pods).",
                                     httpStatus: response.status)
        }
        return response.bodyText.trimmingWhitespace
    }

    /// GET a metadata path (`instance-id`, `iam/security-credentials/`, ...).
    public func get(_ path: String, token: String) throws(NodeLifecycleError) -> String {
        let url = try host()
        let response = try transport.send(baseURL: url.base, AWSRequest(method: "GET", target: "/latest/meta-data/" + path, headers: [
            AWSHeader("Host", url.hostHeader), AWSHeader("X-aws-ec2-metadata-token", token),
        ]), timeout: timeout)
        guard response.status == 200 else {
            throw NodeLifecycleError(.credentials, "The instance metadata service answered HTTP \(response.status) for \(path); does the instance have an IAM instance profile?",
                                     httpStatus: response.status)
        }
        return response.bodyText
    }

    /// Credentials of the instance profile's role.
    public func roleCredentials() throws(NodeLifecycleError) -> AWSCredentials {
        let token = try token()
        let roles = try get("iam/security-credentials/", token: token)
        guard let role = roles.split(separator: "\n").first.map({ String($0).trimmingWhitespace }), !role.isEmpty else {
            throw NodeLifecycleError(.credentials, "The instance has no IAM role in its instance profile; attach one or use IRSA.")
        }
        return try CredentialSources.parseJSONCredentials(try get("iam/security-credentials/" + role, token: token),
                                                          source: "instance metadata role \(role)")
    }

    /// This instance's id (for `ready` without `--instance-id`).
    public func instanceID() throws(NodeLifecycleError) -> String {
        try get("instance-id", token: try token()).trimmingWhitespace
    }
}
