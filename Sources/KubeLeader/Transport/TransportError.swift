import KLCore

/// The one error of KLTransport: the HTTP/TLS layer failed before (or while)
/// an answer came. `code` says which; `message` is a whole sentence that
/// names the server (`host:port`) and what to do. Callers above (the
/// Kubernetes client, pager-tester, node-lifecycle's AWS client) wrap it in
/// their own error and decide by `code`, never by the text.
public struct TransportError: CodedError {
    public enum Code: Sendable, Equatable {
        /// The server URL cannot be used.
        case invalidURL
        /// The host cannot be resolved or connected to.
        case connectFailed
        /// The deadline passed (connect, TLS handshake, request or response).
        case timedOut
        /// The connection ended or failed in the middle of an exchange.
        case connectionClosed
        /// The server does not speak HTTP/1.1 as expected.
        case protocolError
        /// TLS failed for another reason (handshake, context, a TLS read or write).
        case tls
        /// The server's certificate failed verification (unknown CA, host
        /// mismatch, expired or not yet valid): configuration, not the network.
        case certificateRejected
        /// The CA file, system CA bundle or CA text cannot be read or holds no
        /// usable PEM certificate.
        case caUnusable
        /// The response (head, body or a streamed line) passed its cap in `HTTPLimits`.
        case tooLarge
        /// The request cannot be sent as it is (a control character in a header or the path).
        case invalidRequest
    }

    public var code: Code
    /// The whole sentence.
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

}
