import KLCore

/// A failed Kubernetes API call: the server's `Status` (code, reason,
/// message) or a transport failure, with the verb, resource, name and
/// namespace of the call, so the message can say what to fix.
public struct KubeError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        case notFound, alreadyExists, conflict, invalid, tooManyRequests, unauthorized, forbidden, gone
        case serverError, timedOut, transport, badResponse
    }
    public var code: Code
    /// The HTTP status (nil for transport failures).
    public var httpStatus: Int?
    /// `Status.reason` (`NotFound`, `AlreadyExists`, `Conflict`, `Expired`, ...).
    public var reason: String?
    /// The server's `Status.message`, or the transport failure text.
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
    /// For `.transport` and `.timedOut`: what the HTTP/TLS layer reported
    /// (decisions use this code, never the message text).
    public var transportCode: HTTPError.Code?
    /// The API server URL, for transport and TLS messages.
    public var server: String = ""
    /// The token file in use, for the 401 hint.
    public var tokenFile: String?

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
        case .transport:
            return "Cannot \(verb.isEmpty ? "use" : verb) \(target) on the Kubernetes API server \(server)\(said)"
                + (message.hasSuffix(".") ? "" : ".")
        case .badResponse:
            return "The Kubernetes API server \(server) sent an unexpected response to \(verb) \(target)\(statusText)\(said)."
        case .tooManyRequests:
            let wait = retryAfter.map { "; retry after \(DurationText.format($0))" } ?? "; retry later"
            return "The Kubernetes API server refused to \(verb) \(target) for now\(statusText)\(said)\(wait)."
        case .notFound, .alreadyExists, .conflict, .invalid, .gone, .serverError:
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
