import KLCore
import Testing
@testable import NodeLifecycleKit

/// One case of the published AWS Signature Version 4 Test Suite.
struct SuiteCase: CustomStringConvertible, Sendable {
    var name: String
    var request: AWSRequest
    var expectedAuthorization: String
    var description: String { name }
}

/// Parses `Data/aws-sigv4-testsuite.txt` (see the header of that file).
func loadSuite() -> [SuiteCase] {
    guard let text = readTextFile(testsDirectory + "/Data/aws-sigv4-testsuite.txt") else { return [] }
    var cases: [SuiteCase] = []
    var sections: [(String, [Substring])] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        if line.hasPrefix("#") && sections.isEmpty { continue }
        if line.hasPrefix("=== ") {
            sections.append((String(line.dropFirst(4)), []))
        } else if !sections.isEmpty {
            sections[sections.count - 1].1.append(line)
        }
    }
    for (name, lines) in sections {
        let requestLine = lines[0].split(separator: " ")
        // The target may contain spaces ("/example space/"): everything between
        // the method and the trailing "HTTP/1.1".
        let target = requestLine.dropFirst().dropLast().joined(separator: " ")
        var headers: [AWSHeader] = []
        var i = 1
        while i < lines.count, !lines[i].isEmpty {
            let line = lines[i]
            if line.first == " " {
                // A folded line is one more value of the same header (the
                // suite's canonical request lists "value1,value2,value3").
                headers.append(AWSHeader(headers[headers.count - 1].name, String(line)))
            } else if let colon = line.firstIndex(of: ":") {
                headers.append(AWSHeader(String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
            i += 1
        }
        var bodyLines = Array(lines[min(i + 1, lines.count)...])
        if bodyLines.last == "" { bodyLines.removeLast() }
        let body = bodyLines.joined(separator: "\n")
        let auth = headers.first { $0.name == "Authorization" }!.value
        headers.removeAll { $0.name == "Authorization" }
        cases.append(SuiteCase(
            name: name,
            request: AWSRequest(method: String(requestLine[0]), target: target, headers: headers, body: Array(body.utf8)),
            expectedAuthorization: auth))
    }
    return cases
}

let suiteTime = wallTime(amz: "20150830T123600Z")

@Suite("AWS SigV4 test suite")
struct SigV4TestSuiteTests {
    @Test("the suite file holds the published cases")
    func suiteLoads() {
        #expect(loadSuite().count == 23)
    }

    @Test("signature matches the published vector", arguments: loadSuite())
    func signatureMatchesVector(_ c: SuiteCase) {
        let signer = SigV4Signer(region: "us-east-1", service: "service",
                                 normalizePath: !c.name.hasSuffix("-unnormalized"))
        let token = c.request.header("X-Amz-Security-Token")
        var request = c.request
        request.removeHeader("X-Amz-Security-Token")
        let creds = AWSCredentials(accessKeyID: "AKIDEXAMPLE",
                                   secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                                   sessionToken: token)
        signer.sign(&request, credentials: creds, now: suiteTime)
        #expect(request.header("Authorization") == c.expectedAuthorization)
        #expect(request.header("X-Amz-Date") == "20150830T123600Z")
    }

    @Test func canonicalRequest_getVanilla_matchesPublishedText() {
        let signer = SigV4Signer(region: "us-east-1", service: "service")
        let request = AWSRequest(method: "GET", target: "/", headers: [
            AWSHeader("Host", "example.amazonaws.com"), AWSHeader("X-Amz-Date", "20150830T123600Z"),
        ])
        let canonical = signer.canonicalRequest(request)
        #expect(canonical.text == """
            GET
            /

            host:example.amazonaws.com
            x-amz-date:20150830T123600Z

            host;x-amz-date
            e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
            """)
        #expect(signer.stringToSign(canonicalRequest: canonical.text, now: suiteTime) == """
            AWS4-HMAC-SHA256
            20150830T123600Z
            20150830/us-east-1/service/aws4_request
            bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63
            """)
    }

    @Test func wrongSecret_changesSignature() {
        let signer = SigV4Signer(region: "us-east-1", service: "service")
        var a = AWSRequest(method: "GET", target: "/", headers: [AWSHeader("Host", "example.amazonaws.com")])
        var b = a
        signer.sign(&a, credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "one"), now: suiteTime)
        signer.sign(&b, credentials: AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "two"), now: suiteTime)
        #expect(a.header("Authorization") != b.header("Authorization"))
    }

    @Test func sha256AndHMAC_matchKnownAnswers() {
        #expect(Crypto.hex(Crypto.sha256(Array("abc".utf8)))
            == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // RFC 4231 test case 2.
        #expect(Crypto.hex(Crypto.hmacSHA256(key: Array("Jefe".utf8), Array("what do ya want for nothing?".utf8)))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }
}
