import COpenSSL
import KLSystem

/// One accepted connection, TLS or plain: a blocking byte pipe.
final class Transport {
    let fd: Int32
    private let ssl: OpaquePointer?

    /// Wraps an accepted socket; performs the TLS handshake when `context` is set.
    init?(fd: Int32, context: OpaquePointer?) {
        self.fd = fd
        guard let context else { ssl = nil; return }
        guard let ssl = SSL_new(context) else { return nil }
        SSL_set_fd(ssl, fd)
        if SSL_accept(ssl) != 1 {
            ERR_clear_error()
            SSL_free(ssl)
            return nil
        }
        self.ssl = ssl
    }

    /// Reads up to `count` bytes; 0 means the peer closed or failed.
    func read(into buffer: UnsafeMutableRawPointer, count: Int) -> Int {
        if let ssl {
            let n = SSL_read(ssl, buffer, Int32(count))
            if n <= 0 { ERR_clear_error(); return 0 }
            return Int(n)
        }
        while true {
            let n = recv(fd, buffer, count, 0)
            if n < 0 && errno == EINTR { continue }
            return max(0, n)
        }
    }

    /// Writes everything; false when the peer is gone.
    func write(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let base = raw.baseAddress! + offset
                let left = raw.count - offset
                if let ssl {
                    let n = SSL_write(ssl, base, Int32(left))
                    if n <= 0 { ERR_clear_error(); return false }
                    offset += Int(n)
                } else {
                    let n = send(fd, base, left, Int32(MSG_NOSIGNAL))
                    if n < 0 { if errno == EINTR { continue }; return false }
                    offset += n
                }
            }
            return true
        }
    }

    func write(_ text: String) -> Bool { write(Array(text.utf8)) }

    /// True when the peer has closed (or sent anything, which a watching
    /// client never does): checked without blocking.
    func peerClosedOrSpoke() -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, 0) > 0
    }

    /// Closes with a TCP reset (SO_LINGER 0): the "reset" partition mode.
    func reset() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close()
    }

    /// Closes the connection (TLS close_notify first when possible).
    func close() {
        if let ssl {
            SSL_shutdown(ssl)
            ERR_clear_error()
            SSL_free(ssl)
        }
        closeDescriptor(fd)
    }
}

/// Builds the server TLS context from PEM files.
func makeServerTLSContext(certFile: String, keyFile: String) throws(FakeServerError) -> OpaquePointer {
    _ = copenssl_init()
    guard let ctx = SSL_CTX_new(TLS_server_method()) else {
        throw FakeServerError(.tls, "creating the TLS context failed")
    }
    _ = copenssl_SSL_CTX_set_min_proto_version(ctx, copenssl_TLS1_2_VERSION())
    guard SSL_CTX_use_certificate_chain_file(ctx, certFile) == 1 else {
        SSL_CTX_free(ctx)
        throw FakeServerError(.tls, "loading the server certificate \(certFile) failed; delete the directory's *.crt/*.key files to regenerate them")
    }
    guard SSL_CTX_use_PrivateKey_file(ctx, keyFile, SSL_FILETYPE_PEM) == 1 else {
        SSL_CTX_free(ctx)
        throw FakeServerError(.tls, "loading the server key \(keyFile) failed; delete the directory's *.crt/*.key files to regenerate them")
    }
    return ctx
}
