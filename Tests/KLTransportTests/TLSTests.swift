import Testing
import KLNetworkTestSupport
@testable import KLTransport

/// A server certificate the client must refuse (from `CertFixture`), the
/// server name it asks for, and what the error names; `{port}` is the server's port.
struct RejectedCertificate: Sendable, CustomStringConvertible {
    var name: String
    var cert: @Sendable (CertFixture) -> String
    var serverName: String? = nil
    var mentions: [String]
    var description: String { name }
}

let rejectedCertificates = [
    RejectedCertificate(name: "wrong CA fails as unknown CA", cert: { $0.signedByOther },
                        mentions: ["unknown CA", "127.0.0.1:{port}"]),
    RejectedCertificate(name: "wrong host name fails as host mismatch", cert: { $0.good }, serverName: "wrong.example",
                        mentions: ["host mismatch", "wrong.example"]),
    RejectedCertificate(name: "certificate without the IP fails as host mismatch", cert: { $0.dnsOnly },
                        mentions: ["host mismatch", "IP address 127.0.0.1"]),
    RejectedCertificate(name: "expired certificate fails as expired", cert: { $0.expired }, mentions: ["expired"]),
]

@Suite("TLS client")
struct TLSTests {
    let certs = CertFixture.shared

    func get(port: Int, host: String = "127.0.0.1", tls: TLSOptions) throws(TransportError) -> HTTPResponse {
        let client = try HTTPClient(baseURL: "https://\(host):\(port)", tls: tls)
        return try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(10))
    }

    func failure(port: Int, host: String = "127.0.0.1", tls: TLSOptions) -> TransportError? {
        #expect(throws: TransportError.self) { try get(port: port, host: host, tls: tls) }
    }

    @Test func goodCA_connectsByIPAndByName() throws {
        let server = TLSTestServer(cert: certs.good, key: certs.key)
        defer { server.stop() }
        #expect(try get(port: server.port, tls: TLSOptions(caFile: certs.caFile)).bodyText == "ok")
        #expect(try get(port: server.port, host: "localhost", tls: TLSOptions(caFile: certs.caFile)).bodyText == "ok")
        let pem = try #require(readTextFile(certs.caFile))
        #expect(try get(port: server.port, tls: TLSOptions(caPEM: pem)).bodyText == "ok")
    }

    @Test func sni_isSentForNamesOnly() throws {
        let server = TLSTestServer(cert: certs.good, key: certs.key)
        defer { server.stop() }
        _ = try get(port: server.port, tls: TLSOptions(caFile: certs.caFile))
        _ = try get(port: server.port, host: "localhost", tls: TLSOptions(caFile: certs.caFile))
        #expect(server.serverNames == ["", "localhost"])
    }

    @Test func keepAlive_overTLS_reusesOneConnection() throws {
        let server = TLSTestServer(cert: certs.good, key: certs.key)
        defer { server.stop() }
        let client = try HTTPClient(baseURL: "https://127.0.0.1:\(server.port)", tls: TLSOptions(caFile: certs.caFile))
        for _ in 0..<4 {
            #expect(try client.send(HTTPRequest(method: "GET", path: "/"), timeout: .seconds(10)).bodyText == "ok")
        }
        #expect(server.connections == 1)
    }

    /// The client refuses a certificate that fails verification, with a code
    /// that makes it a configuration error and a message that says why.
    @Test("a certificate that fails verification is refused", arguments: rejectedCertificates)
    func rejectedCertificate(_ c: RejectedCertificate) {
        let server = TLSTestServer(cert: c.cert(certs), key: certs.key)
        defer { server.stop() }
        let error = failure(port: server.port, tls: TLSOptions(caFile: certs.caFile, serverName: c.serverName))
        #expect(error?.code == .certificateRejected)
        for text in c.mentions {
            let text = text.replacing("{port}", with: "\(server.port)")
            #expect(error?.description.contains(text) == true, "\(String(describing: error)) should mention \(text)")
        }
    }

    @Test func threeFailures_haveDistinctMessages() {
        let a = TLSTestServer(cert: certs.signedByOther, key: certs.key)
        let b = TLSTestServer(cert: certs.good, key: certs.key)
        let c = TLSTestServer(cert: certs.expired, key: certs.key)
        defer { a.stop(); b.stop(); c.stop() }
        let messages = [
            failure(port: a.port, tls: TLSOptions(caFile: certs.caFile)),
            failure(port: b.port, tls: TLSOptions(caFile: certs.caFile, serverName: "wrong.example")),
            failure(port: c.port, tls: TLSOptions(caFile: certs.caFile)),
        ].map { String(($0?.description ?? "").filter { !$0.isNumber }) }  // ports differ; compare the words
        #expect(Set(messages).count == 3)
        #expect(messages[0].contains("unknown CA") && !messages[0].contains("host mismatch") && !messages[0].contains("expired"))
        #expect(messages[1].contains("host mismatch") && !messages[1].contains("unknown CA") && !messages[1].contains("expired"))
        #expect(messages[2].contains("expired") && !messages[2].contains("unknown CA") && !messages[2].contains("host mismatch"))
    }

    @Test func plainHTTPServer_behindHTTPSURL_failsAsTLSNotHang() {
        let server = TestServer { fd, _ in sendAll(fd, "HTTP/1.1 400 Bad Request\r\n\r\n"); _ = readRequest(fd) }
        defer { server.stop() }
        let error = failure(port: server.port, tls: TLSOptions(caFile: certs.caFile))
        #expect(error?.code == .tls)
    }

    @Test func missingOrBadCAFile_failsNamingTheFile() {
        let missing = #expect(throws: TransportError.self) { try HTTPClient(baseURL: "https://127.0.0.1:1", tls: TLSOptions(caFile: "/nonexistent/ca.crt")) }
        #expect(missing?.description.contains("/nonexistent/ca.crt") == true)
        #expect(missing?.code == .caUnusable)
        let garbage = certs.dir + "/garbage.crt"
        writeTextFile(garbage, "not a certificate\n")
        let bad = #expect(throws: TransportError.self) { try HTTPClient(baseURL: "https://127.0.0.1:1", tls: TLSOptions(caFile: garbage)) }
        #expect(bad?.description.contains(garbage) == true)
        #expect(bad?.description.contains("PEM") == true)
        #expect(bad?.code == .caUnusable)
        let badPEM = #expect(throws: TransportError.self) { try HTTPClient(baseURL: "https://127.0.0.1:1", tls: TLSOptions(caPEM: "junk")) }
        #expect(badPEM?.code == .caUnusable)
    }
}
