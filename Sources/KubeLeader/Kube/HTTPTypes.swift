/// TLS, HTTP/1.1 and the Kubernetes API client: the only network code.
///
/// Everything here is blocking I/O with hard deadlines: sockets are
/// non-blocking and every wait is a `poll` bounded by the caller's deadline,
/// so a silent server can never hold a caller past it. No threads are started.
///
/// Guarantees: a body cut short by the server is an error, never a truncated
/// success; redirects are never followed; TLS always verifies the chain and
/// the host name or IP. Non-guarantees: DNS look-ups (`getaddrinfo`) cannot be
/// interrupted and may overrun a deadline; numeric IPs (the in-cluster case)
/// never look anything up.
public enum KubeModule {}

/// A failure of the HTTP/TLS layer. `message` is a full sentence that names
/// the server (`host:port`) and what to do.
public struct HTTPError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        case invalidURL, connectFailed, timedOut, tls, connectionClosed, protocolError
    }
    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

/// How to verify a TLS server.
public struct TLSOptions: Sendable {
    /// PEM file with the CA certificates to trust. `nil` (and no `caPEM`):
    /// the system bundle, `$SSL_CERT_FILE` or /etc/ssl/certs/ca-certificates.crt.
    public var caFile: String?
    /// PEM text with the CA certificates to trust (instead of a file).
    public var caPEM: String?
    /// The name (or IP) the certificate must be valid for, and the SNI name.
    /// Default: the host of the URL.
    public var serverName: String?

    public init(caFile: String? = nil, caPEM: String? = nil, serverName: String? = nil) {
        self.caFile = caFile
        self.caPEM = caPEM
        self.serverName = serverName
    }
}

/// One HTTP/1.1 request. `Host` and `Content-Length` are added by the client
/// unless given here.
public struct HTTPRequest: Sendable {
    public var method: String
    /// Path including the query, e.g. `/api/v1/namespaces/x/configmaps?watch=1`.
    public var path: String
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(method: String, path: String, headers: [(String, String)] = [], body: [UInt8] = []) {
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
    }
}

/// A complete HTTP response (the body was read to its declared end).
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The first header with this name, compared case-insensitively.
    public func header(_ name: String) -> String? { headerValue(headers, name) }

    /// The body as UTF-8 text (invalid sequences repaired).
    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

func headerValue(_ headers: [(String, String)], _ name: String) -> String? {
    let wanted = asciiLowercased(name)
    for (k, v) in headers where asciiLowercased(k) == wanted { return v }
    return nil
}

func asciiLowercased(_ s: String) -> String {
    var out = [UInt8]()
    out.reserveCapacity(s.utf8.count)
    for b in s.utf8 { out.append(b >= 65 && b <= 90 ? b + 32 : b) }
    return String(decoding: out, as: UTF8.self)
}
