import KLSystem

/// Where the Kubernetes API server is and how to authenticate to it.
public struct KubeConfig: Sendable {
    /// `https://10.0.0.1:443`, or `http://127.0.0.1:8001` for `kubectl proxy`.
    public var server: String
    /// PEM CA bundle for `https://`. nil: the system CAs.
    public var caFile: String?
    /// Bearer token file, re-read at most every ~10 s and right after a 401,
    /// so rotated projected service-account tokens keep working. Never logged.
    public var tokenFile: String?
    /// An explicit bearer token (tests; used when `tokenFile` is nil).
    public var token: String?
    /// The namespace of this pod (in-cluster), if known.
    public var namespace: String?
    /// `User-Agent` header. Default `kube-leader`.
    public var userAgent: String

    public init(server: String, caFile: String? = nil, tokenFile: String? = nil, token: String? = nil,
                namespace: String? = nil, userAgent: String = "kube-leader") {
        self.server = server
        self.caFile = caFile
        self.tokenFile = tokenFile
        self.token = token
        self.namespace = namespace
        self.userAgent = userAgent
    }
}

extension KubeConfig {
    /// Why the token or CA file (those set) cannot be used, as a message
    /// naming the file and the fix; nil when both open and the token is a
    /// token. Checked before anything starts: a missing mount is a
    /// configuration error (exit 2), not a request failure retried forever.
    public func credentialProblem() -> String? {
        if let tokenFile {
            if let failure = openForReadingFailure(tokenFile) {
                return "cannot read the token file \(tokenFile): \(failure.description.lowercased()). Mount the service account token (automountServiceAccountToken) or pass --token-file"
            }
            if let reason = tokenFileProblem(tokenFile) {
                return "cannot use the token file \(tokenFile): \(reason)"
            }
        }
        if let caFile, let failure = openForReadingFailure(caFile) {
            return "cannot read the CA file \(caFile): \(failure.description.lowercased()). Mount the service account CA or pass --ca-file"
        }
        return nil
    }
}
