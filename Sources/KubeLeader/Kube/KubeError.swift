import KLCore
import KLTransport

/// The one error of KLKube: a failed Kubernetes API call, a failure of the
/// HTTP/TLS layer under it (a `TransportError`, mapped code for code), or a
/// lock store finding. `code` says which, and
/// everything that decides what happens next reads the code (see
/// `disposition`), never the message text.
///
/// Two shapes share the type:
/// - About one API call (`init(code:message:verb:resource:...)`, what
///   `KubeClient` throws): the verb, resource, name and namespace of the call
///   and the server, so `description` can say what to fix around `message`
///   (the server's `Status.message`, or the HTTP/TLS layer's sentence).
/// - A sentence of its own (`init(_:_:)`, what the HTTP/TLS layer and the
///   lock store throw): `description` is `message`, a full sentence that names
///   the server (`host:port`) or the lock and what to do.
public struct KubeError: CodedError {
    public enum Code: Sendable, Equatable {
        // The API server answered with an error status.
        /// 404.
        case notFound
        /// 409 with reason `AlreadyExists` (a create lost a race).
        case alreadyExists
        /// 409 otherwise (a stale resourceVersion on update).
        case conflict
        /// 400 or 422.
        case invalid
        /// 429 (`retryAfter` says how long the server asked to wait).
        case tooManyRequests
        /// 401, or a token file that cannot be read or used (`httpStatus` nil:
        /// nothing was sent).
        case unauthorized
        /// 403: a missing RBAC permission.
        case forbidden
        /// 410 (`Expired`: a resourceVersion too old to watch from).
        case gone
        /// 5xx.
        case serverError
        /// Another status, a body that is not JSON, a watch line that is not
        /// an event, or a lock object that is not the one asked for.
        case badResponse

        /// The HTTP/TLS layer (KLTransport) failed before (or while) an
        /// answer came: `TransportError.Code`'s cases, one to one
        /// (`init(_: TransportError.Code)`), documented there.
        case invalidURL, connectFailed, timedOut, connectionClosed, protocolError, tls, certificateRejected, caUnusable,
             tooLarge, invalidRequest

        // The lock store.
        /// A create answered 404: the namespace does not exist, or the API
        /// URL's path is wrong (a create cannot lose a race with 404).
        case namespaceMissing
        /// A standby's watch of the lock failed: it ended right after it
        /// opened, sent events too fast, or sent an event that cannot be right
        /// (an ERROR such as 410 Expired, another object, an unknown type).
        case watchFailed
    }

    public var code: Code
    /// The HTTP status (nil when no answer came).
    public var httpStatus: Int?
    /// `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Expired`, ...).
    public var reason: String?
    /// The server's `Status.message`, the HTTP/TLS layer's sentence, or (for
    /// an error of its own) the whole sentence.
    public var message: String
    /// The RBAC verb: get list watch create update patch delete
    /// (an eviction is `create` on `pods/eviction`).
    public var verb: String
    /// The plural resource, with `/subresource` when there is one.
    public var resource: String
    public var name: String?
    public var namespace: String?
    /// From the `Retry-After` header or `details.retryAfterSeconds`.
    public var retryAfter: Duration?
    /// The whole `Status` object when the server sent one.
    public var status: JSON?
    /// The API group of the resource ("" for core), for RBAC hints.
    public var group: String = ""
    /// The API server URL, for transport and TLS messages.
    public var server: String = ""
    /// The token file in use, for the 401 hint.
    public var tokenFile: String?
    /// False for an error that is a sentence of its own (`init(_:_:)`):
    /// then `description` is `message`.
    public private(set) var isAboutACall = true

    /// An error about one API call; `description` builds the sentence.
    public init(code: Code, httpStatus: Int? = nil, reason: String? = nil, message: String, verb: String, resource: String,
                name: String? = nil, namespace: String? = nil, retryAfter: Duration? = nil, status: JSON? = nil) {
        self.code = code
        self.httpStatus = httpStatus
        self.reason = reason
        self.message = message
        self.verb = verb
        self.resource = resource
        self.name = name
        self.namespace = namespace
        self.retryAfter = retryAfter
        self.status = status
    }

    /// An error whose `message` is the whole sentence (the HTTP/TLS layer's,
    /// the lock store's; a test double's).
    public init(_ code: Code, _ message: String) {
        self.init(code: code, message: message, verb: "", resource: "")
        isAboutACall = false
    }


    /// `configmaps "x" in namespace "ns"`.
    var target: String {
        var s = resource.isEmpty ? "the API" : resource
        if let name { s += " \"\(name)\"" }
        if let namespace { s += " in namespace \"\(namespace)\"" }
        return s
    }

    private var statusText: String {
        var parts: [String] = []
        if let httpStatus { parts.append("HTTP \(httpStatus)") }
        if let reason, !reason.isEmpty { parts.append(reason) }
        return parts.isEmpty ? "" : " (\(parts.joined(separator: " ")))"
    }

    public var description: String {
        guard isAboutACall else { return message }
        let said = message.isEmpty ? "" : ": \(message)"
        switch code {
        case .unauthorized where httpStatus == nil:
            // Never sent: the token file could not be read or used.
            return "Cannot \(verb) \(target) on the Kubernetes API server \(server)\(said); fix the token file (a mounted service-account token holds the token alone on one line)."
        case .unauthorized:
            let fix = tokenFile.map { "check the token file \($0) (the mounted service-account token) and that the service account still exists" }
                ?? "check the bearer token given to kube-leader"
            return "The Kubernetes API server \(server) rejected the token (401 Unauthorized) when trying to \(verb) \(target)\(said); \(fix)."
        case .forbidden:
            let groupText = group.isEmpty ? "the core API group" : "API group \"\(group)\""
            let scope = namespace.map { "in namespace \"\($0)\"" } ?? "cluster-wide"
            return "Forbidden: the service account may not \"\(verb)\" \"\(resource)\" (\(groupText)) \(scope)\(said). Grant the verb \"\(verb)\" on the resource \"\(resource)\" in the Role (or ClusterRole) bound to this service account; see deploy/ for the exact RBAC rules."
        case .timedOut:
            return "Could not \(verb) \(target) on the Kubernetes API server \(server)\(said)"
                + (message.hasSuffix(".") ? "" : ".")
        case .invalidURL, .connectFailed, .connectionClosed, .protocolError, .tls, .certificateRejected, .caUnusable,
             .tooLarge, .invalidRequest:
            return "Cannot \(verb.isEmpty ? "use" : verb) \(target) on the Kubernetes API server \(server)\(said)"
                + (message.hasSuffix(".") ? "" : ".")
        case .badResponse:
            return "The Kubernetes API server \(server) sent an unexpected response to \(verb) \(target)\(statusText)\(said)."
        case .tooManyRequests:
            let wait = retryAfter.map { "; retry after \(DurationText.format($0))" } ?? "; retry later"
            return "The Kubernetes API server refused to \(verb) \(target) for now\(statusText)\(said)\(wait)."
        case .notFound, .alreadyExists, .conflict, .invalid, .gone, .serverError, .namespaceMissing, .watchFailed:
            return "Cannot \(verb) \(target)\(statusText)\(said)."
        }
    }

    /// Maps an error response (status ≥ 300) to an error. A `Status` body
    /// supplies reason, message and retryAfterSeconds.
    static func from(response: HTTPResponse, verb: String, resource: String, name: String?, namespace: String?) -> KubeError {
        let json = try? JSON.parse(bytes: response.body)
        let status = json?["kind"]?.stringValue == "Status" ? json : nil
        let reason = status?["reason"]?.stringValue
        var message = status?["message"]?.stringValue ?? ""
        if status == nil {
            let text = response.bodyText
            message = text.count > 200 ? String(text.prefix(200)) + "…" : text
        }
        var retryAfter: Duration?
        if let h = response.header("Retry-After"), let s = Int(trimOWS(Substring(h))), s >= 0 {
            retryAfter = .seconds(s)
        } else if let s = status?[path: "details", "retryAfterSeconds"]?.intValue, s > 0 {
            retryAfter = .seconds(s)
        }
        let code: Code
        switch response.status {
        case 401: code = .unauthorized
        case 403: code = .forbidden
        case 404: code = .notFound
        case 409: code = reason == "AlreadyExists" ? .alreadyExists : .conflict
        case 410: code = .gone
        case 400, 422: code = .invalid
        case 429: code = .tooManyRequests
        case 500...599: code = .serverError
        default: code = .badResponse
        }
        return KubeError(code: code, httpStatus: response.status, reason: reason, message: message, verb: verb,
                         resource: resource, name: name, namespace: namespace, retryAfter: retryAfter, status: status)
    }
}

extension KubeError {
    /// What the election does after a lock operation failed with this error.
    public enum Disposition: Sendable, Equatable {
        /// Another writer won (AlreadyExists on create, Conflict or NotFound
        /// on update): read again at once.
        case lostRace
        /// Timeout, 5xx, connection or watch trouble: retry after the retry period.
        case transient
        /// Wrong credentials, a missing RBAC permission, an untrusted
        /// certificate or unusable CA, a missing namespace: retrying cannot
        /// help; a standby ends and kube-leader exits with code 2.
        case configuration
    }

    /// Derived from `code` alone: rewording a message can never turn
    /// "exit 2" into endless retries, nor a network blip into an exit.
    public var disposition: Disposition {
        switch code {
        case .conflict, .alreadyExists, .notFound:
            return .lostRace
        case .unauthorized, .forbidden, .certificateRejected, .caUnusable, .namespaceMissing:
            return .configuration
        case .invalid, .tooManyRequests, .gone, .serverError, .badResponse, .invalidURL, .connectFailed, .timedOut,
             .connectionClosed, .protocolError, .tls, .tooLarge, .invalidRequest, .watchFailed:
            return .transient
        }
    }
}

extension KubeError.Code {
    /// The transport's code, one to one.
    public init(_ code: TransportError.Code) {
        switch code {
        case .invalidURL: self = .invalidURL
        case .connectFailed: self = .connectFailed
        case .timedOut: self = .timedOut
        case .connectionClosed: self = .connectionClosed
        case .protocolError: self = .protocolError
        case .tls: self = .tls
        case .certificateRejected: self = .certificateRejected
        case .caUnusable: self = .caUnusable
        case .tooLarge: self = .tooLarge
        case .invalidRequest: self = .invalidRequest
        }
    }
}

extension KubeError {
    /// A failure of the HTTP/TLS layer on its own (its sentence is the description).
    public init(_ error: TransportError) {
        self.init(Code(error.code), error.message)
    }
}

extension TransportError {
    /// The same failure as part of an API call (`base` names the call):
    /// the HTTP/TLS layer's sentence becomes the `message` of the call's error.
    func inCall(_ base: KubeError) -> KubeError {
        var e = base
        e.code = KubeError.Code(code)
        e.message = message
        return e
    }
}
