import KLCore
import KLNetworkTestSupport
import Testing
@testable import KLKube
@testable import KLTransport

/// Header injection, at the Kubernetes client: a token file
/// ending in CRLF kept its `\r`, which ended the request headers early (the
/// transport's refusal of control characters: KLTransportTests'
/// HeaderInjectionTests).
@Suite("Header injection: token files")
struct TokenFileInjectionTests {
    @Test func tokenFileText_trimsTrailingLineEndingsAndWhitespace() throws {
        #expect(try TokenSource.token(fromFileText: "abc") == "abc")
        #expect(try TokenSource.token(fromFileText: "abc\n") == "abc")
        #expect(try TokenSource.token(fromFileText: "abc\r\n") == "abc")  // Windows line ending
        #expect(try TokenSource.token(fromFileText: "  abc \t\r\n\r\n") == "abc")
    }

    @Test func tokenFileText_withAControlCharacterInside_isRefused() {
        for text in ["abc\r\nGET /evil HTTP/1.1\r\n", "ab\rc", "ab\u{1b}c\n"] {
            let e = #expect(throws: KubeError.self) { try TokenSource.token(fromFileText: text) }
            #expect(e?.message.contains("contains a control character") == true)
            #expect(e?.message.contains("abc") == false)
        }
        #expect(tokenFileProblem("/nonexistent/token") == nil)  // unreadable: reported elsewhere
    }

    @Test func tokenFileEndingInCRLF_sendsTheTokenAloneOnItsLine() throws {
        let dir = makeTempDir("kl-tok")
        writeTextFile(dir + "/token", "crlf-token\r\n")
        #expect(tokenFileProblem(dir + "/token") == nil)
        let server = CannedAPIServer { req in
            req.header("Authorization") == "Bearer crlf-token"
                ? jsonResponse(200, #"{"kind":"ConfigMap","metadata":{"name":"x"}}"#)
                : statusResponse(401, reason: "Unauthorized", message: "Unauthorized")
        }
        let kube = try client(server, token: nil, tokenFile: dir + "/token")
        let cm = try kube.get(.configMaps, namespace: "ns", name: "x")
        #expect(cm[path: "metadata", "name"]?.stringValue == "x")
        #expect(server.seen.count == 1)
        #expect(server.seen.first?.header("Authorization") == "Bearer crlf-token")
    }

    @Test func tokenFileWithAnInjectedRequest_isNeverSentAndTheErrorNamesTheFile() throws {
        let dir = makeTempDir("kl-tok")
        writeTextFile(dir + "/token", "tok\r\nGET /injected HTTP/1.1\r\n")
        #expect(tokenFileProblem(dir + "/token")?.contains("carriage return") == true)
        let server = CannedAPIServer { _ in jsonResponse(200, "{}") }
        let kube = try client(server, token: nil, tokenFile: dir + "/token")
        let e = #expect(throws: KubeError.self) { try kube.get(.configMaps, namespace: "ns", name: "x") }
        #expect(e?.code == .unauthorized)
        #expect(e?.description.contains("token file \(dir)/token") == true, "\(String(describing: e))")
        #expect(e?.description.contains("control character") == true)
        // Nothing was sent, so nothing answered: no HTTP status is recorded.
        // (Not a search for "401" in the text: it embeds the server's random port.)
        #expect(e != nil && e?.httpStatus == nil && e?.status == nil)
        #expect(server.seen.isEmpty)
    }
}
