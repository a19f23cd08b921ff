import KLSystem
import COpenSSL
import Synchronization

/// Certificates made once per test process with the `openssl` CLI:
/// a CA, a server certificate for IP:127.0.0.1 and DNS:localhost, the same
/// key signed by another CA, one without the IP, and one that expired in 2020
/// (`openssl ca -startdate/-enddate`: OpenSSL 3.0's `x509`/`req` cannot backdate).
public struct CertFixture: Sendable {
    public let dir: String
    public var caFile: String { dir + "/ca.crt" }
    public var otherCAFile: String { dir + "/other-ca.crt" }
    public var key: String { dir + "/srv.key" }
    public var good: String { dir + "/srv.crt" }
    public var signedByOther: String { dir + "/other.crt" }
    public var dnsOnly: String { dir + "/dnsonly.crt" }
    public var expired: String { dir + "/expired.crt" }

    public static let shared: CertFixture = make()

    private static func make() -> CertFixture {
        let dir = makeTempDir("kl-tls")
        let script = """
        set -e
        cd '\(dir)'
        exec 2>openssl.log
        ec() { echo "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"; }
        openssl req -x509 $(ec) -keyout ca.key -out ca.crt -days 3650 -subj /CN=kl-test-ca
        openssl req -x509 $(ec) -keyout other-ca.key -out other-ca.crt -days 3650 -subj /CN=kl-other-ca
        openssl req $(ec) -keyout srv.key -out srv.csr -subj /CN=localhost
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.cnf
        printf 'subjectAltName=DNS:localhost\\n' > dnsonly.cnf
        openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -set_serial 1 -days 365 -extfile san.cnf -out srv.crt
        openssl x509 -req -in srv.csr -CA other-ca.crt -CAkey other-ca.key -set_serial 2 -days 365 -extfile san.cnf -out other.crt
        openssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -set_serial 3 -days 365 -extfile dnsonly.cnf -out dnsonly.crt
        : > index.txt
        echo 1000 > serial.txt
        cat > ca.cnf <<'CNF'
        [ca]
        default_ca = d
        [d]
        database = index.txt
        new_certs_dir = .
        serial = serial.txt
        default_md = sha256
        policy = p
        unique_subject = no
        [p]
        commonName = supplied
        [ext]
        subjectAltName = IP:127.0.0.1,DNS:localhost
        CNF
        openssl ca -batch -config ca.cnf -cert ca.crt -keyfile ca.key -in srv.csr -out expired.crt \\
          -startdate 20200101000000Z -enddate 20200102000000Z -extensions ext -notext
        """
        let rc = shell(script)
        precondition(rc == 0, "openssl failed (exit \(rc)); see \(dir)/openssl.log")
        return CertFixture(dir: dir)
    }
}

/// A TLS server on 127.0.0.1 (an ephemeral port) presenting `cert`. Each
/// connection completes the handshake (or fails it) and then answers every
/// request with `200 ok`, keeping the connection open.
public final class TLSTestServer: @unchecked Sendable {
    public let server: TestServer
    public var port: Int { server.port }
    public var connections: Int { server.connections }
    /// The SNI name of each completed handshake ("" when none was sent).
    public var serverNames: [String] { names.list.withLock { $0 } }
    private let names = NameList()

    public init(cert: String, key: String) {
        _ = copenssl_init()
        let ctx = SSL_CTX_new(TLS_server_method())!
        precondition(SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) == 1, "bad test cert \(cert)")
        precondition(SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1, "bad test key \(key)")
        let shared = SharedCtx(ctx)
        let names = self.names
        server = TestServer { fd, _ in
            let ssl = SSL_new(shared.ctx)!
            defer { SSL_free(ssl) }
            let bio = copenssl_nosigpipe_socket_bio(fd)!
            SSL_set_bio(ssl, bio, bio)
            guard SSL_accept(ssl) == 1 else { return }
            let sni = SSL_get_servername(ssl, Int32(TLSEXT_NAMETYPE_host_name)).map { String(cString: $0) } ?? ""
            names.list.withLock { $0.append(sni) }
            var request: [UInt8] = []
            var buf = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = SSL_read(ssl, &buf, Int32(buf.count))
                if n <= 0 { return }
                request += buf[0..<Int(n)]
                while let end = findHeadEnd(request) {
                    request.removeFirst(end)
                    let response = Array("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".utf8)
                    guard SSL_write(ssl, response, Int32(response.count)) > 0 else { return }
                }
            }
        }
    }

    public func stop() { server.stop() }
}

final class NameList: @unchecked Sendable {
    let list = Mutex<[String]>([])
}

final class SharedCtx: @unchecked Sendable {
    let ctx: OpaquePointer
    init(_ ctx: OpaquePointer) { self.ctx = ctx }
}

/// Index just past the first CRLFCRLF.
func findHeadEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for i in 0...(bytes.count - 4) where bytes[i] == 13 && bytes[i + 1] == 10 && bytes[i + 2] == 13 && bytes[i + 3] == 10 {
        return i + 4
    }
    return nil
}
