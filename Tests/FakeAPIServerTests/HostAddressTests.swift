import FakeAPIServerKit
import KLCore
import KLKube
import KLSystem
import KLTestSupport
import Testing

/// `--host` other than 127.0.0.1 (scripts/chaos --netns serves on an address
/// inside a network namespace): the address is one of the server
/// certificate's names, so a verifying client connects to it.
@Suite("kube-apiserver-fake: --host", .timeLimit(.minutes(1)))
struct HostAddressTests {
    func start(host: String, dir: String) throws -> FakeAPIServer {
        var options = FakeAPIServerOptions(dir: dir)
        options.host = host
        options.logger = Logger(level: .critical, sink: DiscardSink())
        return try FakeAPIServer.start(options)
    }

    @Test func anotherListenAddress_isANameOfTheCertificate() throws {
        // 127.0.0.2 is loopback too, but not in the default certificate.
        let server = try start(host: "127.0.0.2", dir: makeTemporaryDirectory(prefix: "fake-host"))
        defer { server.stop() }
        #expect(server.url.hasPrefix("https://127.0.0.2:"))
        let c = try KubeClient(config: KubeConfig(server: server.url, caFile: server.caFile, tokenFile: server.tokenFile),
                               requestTimeout: .seconds(5))
        let list = try c.list(.configMaps, namespace: "default")
        #expect(list["items"]?.arrayValue != nil)
    }

    @Test func theDefaultCertificate_doesNotNameOtherAddresses() throws {
        // The check above can fail: certificates made for 127.0.0.1 are
        // refused at 127.0.0.2 (a reused DIR keeps its certificates).
        let dir = makeTemporaryDirectory(prefix: "fake-host")
        try start(host: "127.0.0.1", dir: dir).stop()
        let server = try start(host: "127.0.0.2", dir: dir)
        defer { server.stop() }
        let c = try KubeClient(config: KubeConfig(server: server.url, caFile: server.caFile, tokenFile: server.tokenFile),
                               requestTimeout: .seconds(5))
        let e = #expect(throws: KubeError.self) { _ = try c.list(.configMaps, namespace: "default") }
        #expect(e?.code == .certificateRejected, "\(String(describing: e))")
    }
}
