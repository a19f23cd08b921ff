// KLTransport: sockets, TLS, the HTTP/1.1 client and the one small HTTP
// server (`HTTPServer`): the only network code. The Kubernetes API client
// (KLKube) and the companions' PagerDuty and AWS clients sit on top of it.
//
// Everything here is blocking I/O with hard deadlines: sockets are
// non-blocking, the monotonic clock is checked before every read and write
// (a peer that trickles one byte at a time, or never stops sending, cannot
// hold a caller past its deadline) and every wait is a `poll` bounded by it.
// What a peer can make us hold is capped (`HTTPLimits`): response heads,
// bodies and the lines of a streamed body (watch events).
//
// Guarantees: a body cut short by the server is an error, never a truncated
// success; redirects are never followed; TLS always verifies the chain and
// the host name or IP; no request leaves with a control character in a
// header or the path (no header injection). DNS names are resolved on a
// helper thread that the caller waits for only until its deadline (see
// `HostResolver`); numeric IPs (the in-cluster case) never look anything up.

// Failures are `TransportError`s with the HTTP/TLS layer's codes (`.timedOut`,
// `.certificateRejected`, `.tooLarge`, ...) and a full sentence that names
// the server (`host:port`) and what to do.

/// Caps on what a server can make the client hold. A response over a cap is
/// an error (`.tooLarge`) naming the cap; the connection is closed.
public struct HTTPLimits: Sendable {
    /// Status line + headers of one response (interim 1xx responses count too).
    /// Default 64 KiB (the API server sends well under 2 KiB).
    public var maxHeadBytes: Int
    /// A whole response body read by `send`. Default 8 MiB (etcd keeps an
    /// object to 1.5 MiB; lists of a few thousand small objects fit).
    public var maxBodyBytes: Int
    /// One line of a streamed body (one watch event: one object). Default 4 MiB.
    public var maxLineBytes: Int

    public init(maxHeadBytes: Int = 64 * 1024, maxBodyBytes: Int = 8 << 20, maxLineBytes: Int = 4 << 20) {
        self.maxHeadBytes = maxHeadBytes
        self.maxBodyBytes = maxBodyBytes
        self.maxLineBytes = maxLineBytes
    }
}

/// "8 MiB", "64 KiB", "100 bytes" for messages.
func byteSizeText(_ n: Int) -> String {
    if n >= 1 << 20 && n % (1 << 20) == 0 { return "\(n >> 20) MiB" }
    if n >= 1 << 10 && n % (1 << 10) == 0 { return "\(n >> 10) KiB" }
    return "\(n) bytes"
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
