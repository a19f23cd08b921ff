import COpenSSL
import KLCore
import KLSystem

/// OpenSSL is initialised once per process, without reading openssl.cnf
/// (there is none in an empty container root).
private let openSSLReady: Bool = copenssl_init() == 1

/// The default CA bundle: `$SSL_CERT_FILE`, else Debian's bundle path.
func systemCABundlePath() -> String {
    if let p = getenv("SSL_CERT_FILE") { return String(cString: p) }
    return "/etc/ssl/certs/ca-certificates.crt"
}

/// The most recent OpenSSL error as text (and clears the queue).
func openSSLErrorText() -> String {
    var last: UInt = 0
    while case let e = ERR_get_error(), e != 0 { last = e }
    if last == 0 { return "no detail from OpenSSL" }
    var buf = [CChar](repeating: 0, count: 256)
    ERR_error_string_n(last, &buf, buf.count)
    return buf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// A client SSL_CTX: TLS ≥ 1.2, peer verification on, trusting exactly the
/// configured CAs. Shared by all connections of one `HTTPClient`.
final class TLSContext: @unchecked Sendable {
    let ctx: OpaquePointer

    init(_ options: TLSOptions) throws(TransportError) {
        _ = openSSLReady
        guard let ctx = SSL_CTX_new(TLS_client_method()) else {
            throw TransportError(.tls, "Cannot create a TLS context: \(openSSLErrorText()).")
        }
        self.ctx = ctx
        _ = copenssl_SSL_CTX_set_min_proto_version(ctx, copenssl_TLS1_2_VERSION())
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nil)
        copenssl_SSL_CTX_ignore_unexpected_eof(ctx)
        copenssl_SSL_CTX_allow_moving_write_buffer(ctx)
        if let pem = options.caPEM {
            try loadPEM(pem)
        } else {
            try loadFile(options.caFile ?? systemCABundlePath(), explicit: options.caFile != nil)
        }
    }

    deinit { SSL_CTX_free(ctx) }

    private func loadFile(_ path: String, explicit: Bool) throws(TransportError) {
        let what = explicit ? "CA file" : "system CA bundle"
        if access(path, R_OK) != 0 {
            let e = errno
            throw TransportError(.caUnusable, "Cannot read the \(what) \(path): \(errnoMessage(e)); \(explicit ? "check the CA file option" : "install ca-certificates or set SSL_CERT_FILE").")
        }
        ERR_clear_error()
        if SSL_CTX_load_verify_locations(ctx, path, nil) != 1 {
            throw TransportError(.caUnusable, "The \(what) \(path) holds no usable PEM certificate (\(openSSLErrorText())); it must contain the CA certificate(s) in PEM form.")
        }
    }

    private func loadPEM(_ pem: String) throws(TransportError) {
        ERR_clear_error()
        var bytes = Array(pem.utf8)
        let count = bytes.count
        let added: Int = bytes.withUnsafeMutableBytes { raw -> Int in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, Int32(count)) else { return 0 }
            defer { BIO_free(bio) }
            let store = SSL_CTX_get_cert_store(ctx)
            var n = 0
            while let cert = PEM_read_bio_X509(bio, nil, nil, nil) {
                if X509_STORE_add_cert(store, cert) == 1 { n += 1 }
                X509_free(cert)
            }
            return n
        }
        ERR_clear_error()
        if added == 0 {
            throw TransportError(.caUnusable, "The CA certificate text holds no usable PEM certificate; it must contain the CA certificate(s) in PEM form.")
        }
    }
}

/// TLS over a connected non-blocking socket. The handshake, reads and writes
/// wait with poll on SSL_ERROR_WANT_READ/WANT_WRITE, bounded by the deadline.
final class TLSChannel: HTTPChannel, @unchecked Sendable {
    let fd: Int32
    let ssl: OpaquePointer
    let endpoint: String
    private var closed = false

    /// Connects TLS on `fd` (taking ownership of it) and verifies the server
    /// for `serverName` (a DNS name or an IP address).
    init(fd: Int32, context: TLSContext, serverName: String, endpoint: String, deadline: MonotonicClock.Instant) throws(TransportError) {
        guard let ssl = SSL_new(context.ctx), let bio = copenssl_nosigpipe_socket_bio(fd) else {
            closeDescriptor(fd)
            throw TransportError(.tls, "Cannot create a TLS connection to \(endpoint): \(openSSLErrorText()).")
        }
        self.fd = fd
        self.ssl = ssl
        self.endpoint = endpoint
        SSL_set_bio(ssl, bio, bio)
        let param = SSL_get0_param(ssl)
        let isIP = isIPAddress(serverName)
        if isIP {
            _ = X509_VERIFY_PARAM_set1_ip_asc(param, serverName)
        } else {
            X509_VERIFY_PARAM_set_hostflags(param, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            _ = X509_VERIFY_PARAM_set1_host(param, serverName, 0)
            _ = copenssl_SSL_set_tlsext_host_name(ssl, serverName)  // SNI only for names (RFC 6066)
        }
        SSL_set_connect_state(ssl)
        do {
            try handshake(serverName: serverName, deadline: deadline)
        } catch {
            close()
            throw error
        }
    }

    deinit { close() }

    /// Waits until the socket is readable (SSL_ERROR_WANT_READ) or writable
    /// (SSL_ERROR_WANT_WRITE) when OpenSSL asks for it; false for any other error.
    // `what` is a plain String (every caller passes a literal): an autoclosure
    // made the optimiser clone this function for each caller (a larger binary).
    private func waitIfWanted(_ err: Int32, deadline: MonotonicClock.Instant, what: String) throws(TransportError) -> Bool {
        let events: Int16
        switch err {
        case SSL_ERROR_WANT_READ: events = Int16(POLLIN)
        case SSL_ERROR_WANT_WRITE: events = Int16(POLLOUT)
        default: return false
        }
        try waitReady(fd: fd, events: events, deadline: deadline, endpoint: endpoint, what: what)
        return true
    }

    private func handshake(serverName: String, deadline: MonotonicClock.Instant) throws(TransportError) {
        while true {
            try checkDeadline(deadline, endpoint: endpoint, what: "during the TLS handshake with")
            ERR_clear_error()
            let r = SSL_connect(ssl)
            if r == 1 { return }
            let err = SSL_get_error(ssl, r)
            if try waitIfWanted(err, deadline: deadline, what: "during the TLS handshake with") { continue }
            let verify = SSL_get_verify_result(ssl)
            if verify != X509_V_OK {
                throw TransportError(.certificateRejected, verifyFailureMessage(Int32(verify), serverName: serverName, endpoint: endpoint))
            }
            let detail = err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN
                ? "the server closed the connection during the handshake (is it really a TLS server?)"
                : openSSLErrorText()
            throw TransportError(.tls, "The TLS handshake with \(endpoint) failed: \(detail).")
        }
    }

    var pollFD: Int32 { closed ? -1 : fd }
    var pendingBytes: Int { closed ? 0 : Int(SSL_pending(ssl)) }

    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicClock.Instant) throws(TransportError) -> Int {
        while true {
            try checkDeadline(deadline, endpoint: endpoint, what: "waiting for a response from")
            ERR_clear_error()
            let r = SSL_read(ssl, buffer.baseAddress, Int32(clamping: buffer.count))
            if r > 0 { return Int(r) }
            let err = SSL_get_error(ssl, r)
            if try waitIfWanted(err, deadline: deadline, what: "waiting for a response from") { continue }
            switch err {
            case SSL_ERROR_ZERO_RETURN:
                return 0
            case SSL_ERROR_SYSCALL:
                let e = errno
                if e == 0 { return 0 }
                throw TransportError(.connectionClosed, "The TLS connection to \(endpoint) failed while reading: \(errnoMessage(e)).")
            default:
                throw TransportError(.tls, "The TLS connection to \(endpoint) failed while reading: \(openSSLErrorText()).")
            }
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicClock.Instant, written: inout Int) throws(TransportError) {
        var offset = 0
        while offset < bytes.count {
            try checkDeadline(deadline, endpoint: endpoint, what: "sending a request to")
            ERR_clear_error()
            let r = SSL_write(ssl, bytes.baseAddress! + offset, Int32(clamping: bytes.count - offset))
            if r > 0 {
                offset += Int(r)
                written += Int(r)
                continue
            }
            let err = SSL_get_error(ssl, r)
            if try waitIfWanted(err, deadline: deadline, what: "sending a request to") { continue }
            switch err {
            case SSL_ERROR_SYSCALL, SSL_ERROR_ZERO_RETURN:
                let e = errno
                throw TransportError(.connectionClosed, "The TLS connection to \(endpoint) failed while sending: \(e == 0 ? "closed by the server" : errnoMessage(e)).")
            default:
                throw TransportError(.tls, "The TLS connection to \(endpoint) failed while sending: \(openSSLErrorText()).")
            }
        }
    }

    /// Readable while idle is either a TLS 1.3 session ticket (harmless: the
    /// read consumes it and wants more) or a close/garbage (not usable).
    func isIdleUsable() -> Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        if poll(&p, 1, 0) == 0 { return true }
        var byte: UInt8 = 0
        ERR_clear_error()
        let r = SSL_read(ssl, &byte, 1)
        if r > 0 { return false }
        let usable = SSL_get_error(ssl, r) == SSL_ERROR_WANT_READ
        ERR_clear_error()
        return usable
    }

    func close() {
        if closed { return }
        closed = true
        ERR_clear_error()
        _ = SSL_shutdown(ssl)  // best effort close_notify; non-blocking
        SSL_free(ssl)  // frees the BIO too
        ERR_clear_error()
        closeDescriptor(fd)
    }
}

/// Names which certificate check failed, in words an operator can act on.
func verifyFailureMessage(_ code: Int32, serverName: String, endpoint: String) -> String {
    let detail = String(cString: X509_verify_cert_error_string(Int(code)))
    let prefix = "TLS certificate verification of \(endpoint) failed"
    switch code {
    case X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH:
        return "\(prefix): host mismatch: the server certificate is not valid for \(isIPAddress(serverName) ? "IP address" : "host name") \(serverName) (\(detail)); use the name or IP the certificate was issued for."
    case X509_V_ERR_CERT_HAS_EXPIRED:
        return "\(prefix): the server certificate has expired (\(detail)); renew the server certificate or check this machine's clock."
    case X509_V_ERR_CERT_NOT_YET_VALID:
        return "\(prefix): the server certificate is not yet valid (\(detail)); check this machine's clock."
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
         X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN,
         X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_SIGNATURE_FAILURE:
        return "\(prefix): unknown CA: the server certificate is not signed by a trusted CA (\(detail)); check the CA file."
    default:
        return "\(prefix): \(detail) (X509 error \(code))."
    }
}
