import KLCore

/// AWS Signature Version 4 over the `Authorization` header.
///
/// Pure: the time is a parameter, so the published test suite (fixed at
/// 2015-08-30T12:36:00Z) and botocore's signer with a frozen clock can check
/// every byte. Steps (AWS "Create a signed AWS API request"):
/// 1. canonical request: method, canonical path, canonical query, canonical
///    headers, signed header names, hex SHA-256 of the body;
/// 2. string to sign: algorithm, timestamp, scope, hex SHA-256 of step 1;
/// 3. signing key: HMAC chain over date, region, service, `aws4_request`;
/// 4. signature: hex HMAC of step 2 under step 3.
public struct SigV4Signer: Sendable {
    /// Region of the scope, e.g. `us-east-1`.
    public var region: String
    /// Signing name of the service: `sqs`, `autoscaling`, `cloudformation`, `sts`.
    public var service: String
    /// Removes `.`/`..` segments and empty segments from the path before
    /// signing. True for every service but S3 (default true).
    public var normalizePath: Bool

    /// Headers botocore never signs (proxies may change them).
    public static let unsignedHeaders: Set<String> = [
        "authorization", "connection", "expect", "keep-alive", "proxy-authenticate",
        "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade", "user-agent",
        "x-amzn-trace-id",
    ]

    public init(region: String, service: String, normalizePath: Bool = true) {
        self.region = region
        self.service = service
        self.normalizePath = normalizePath
    }

    /// Adds `X-Amz-Date`, `X-Amz-Security-Token` (when the credentials have
    /// one) and `Authorization` to `request`. The request must already carry
    /// its `Host` header and final body.
    public func sign(_ request: inout AWSRequest, credentials: AWSCredentials, now: WallTime) {
        request.removeHeader("Authorization")
        request.setHeader("X-Amz-Date", Self.amzDate(now))
        if let token = credentials.sessionToken {
            request.setHeader("X-Amz-Security-Token", token)
        }
        let canonical = canonicalRequest(request)
        let toSign = stringToSign(canonicalRequest: canonical.text, now: now)
        let sig = signature(stringToSign: toSign, secretAccessKey: credentials.secretAccessKey, now: now)
        request.headers.append(AWSHeader(
            "Authorization",
            "AWS4-HMAC-SHA256 Credential=\(credentials.accessKeyID)/\(scope(now)), "
                + "SignedHeaders=\(canonical.signedHeaders), Signature=\(sig)"))
    }

    /// `20150830T123600Z`.
    public static func amzDate(_ t: WallTime) -> String {
        let c = CivilTime(t)
        return pad(c.year, 4) + pad(c.month, 2) + pad(c.day, 2) + "T" + pad(c.hour, 2) + pad(c.minute, 2)
            + pad(c.second, 2) + "Z"
    }

    /// `20150830/us-east-1/service/aws4_request`.
    public func scope(_ t: WallTime) -> String {
        "\(Self.amzDate(t).prefix(8))/\(region)/\(service)/aws4_request"
    }

    /// Step 1. Returns the canonical request and the `SignedHeaders` list.
    public func canonicalRequest(_ request: AWSRequest) -> (text: String, signedHeaders: String) {
        var grouped: [String: [String]] = [:]
        var names: [String] = []
        for h in request.headers {
            let name = h.name.lowercased()
            if Self.unsignedHeaders.contains(name) { continue }
            if grouped[name] == nil { names.append(name) }
            grouped[name, default: []].append(Self.trimHeaderValue(h.value))
        }
        names.sort { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let canonicalHeaders = names.map { "\($0):\(grouped[$0]!.joined(separator: ","))\n" }.joined()
        let signed = names.joined(separator: ";")
        let text = [
            request.method.uppercased(),
            canonicalPath(request.path),
            Self.canonicalQuery(request.rawQuery),
            canonicalHeaders,
            signed,
            Crypto.hex(Crypto.sha256(request.body)),
        ].joined(separator: "\n")
        return (text, signed)
    }

    /// Step 2.
    public func stringToSign(canonicalRequest: String, now: WallTime) -> String {
        "AWS4-HMAC-SHA256\n\(Self.amzDate(now))\n\(scope(now))\n"
            + Crypto.hex(Crypto.sha256(Array(canonicalRequest.utf8)))
    }

    /// Steps 3 and 4.
    public func signature(stringToSign: String, secretAccessKey: String, now: WallTime) -> String {
        let date = String(Self.amzDate(now).prefix(8))
        var key = Crypto.hmacSHA256(key: Array("AWS4\(secretAccessKey)".utf8), Array(date.utf8))
        key = Crypto.hmacSHA256(key: key, Array(region.utf8))
        key = Crypto.hmacSHA256(key: key, Array(service.utf8))
        key = Crypto.hmacSHA256(key: key, Array("aws4_request".utf8))
        return Crypto.hex(Crypto.hmacSHA256(key: key, Array(stringToSign.utf8)))
    }

    /// The path with dot segments and (when normalizing) empty segments
    /// removed, then percent-encoded (a `%` already in the path is encoded
    /// again, as AWS specifies for every service but S3).
    public func canonicalPath(_ path: String) -> String {
        var p = path.isEmpty ? "/" : path
        if normalizePath {
            var out: [Substring] = []
            for seg in p.split(separator: "/", omittingEmptySubsequences: true) {
                if seg == "." { continue }
                if seg == ".." { _ = out.popLast(); continue }
                out.append(seg)
            }
            let trailing = p.hasSuffix("/") || p.hasSuffix("/.") || p.hasSuffix("/..")
            p = "/" + out.joined(separator: "/")
            if trailing && !out.isEmpty { p += "/" }
        }
        return AWSPercent.encode(p, keepSlash: true)
    }

    /// Each `name=value` decoded then encoded the AWS way, sorted by name and
    /// then value; a bare `name` becomes `name=`.
    public static func canonicalQuery(_ raw: String) -> String {
        let pairs = raw.split(separator: "&", omittingEmptySubsequences: true).map { piece -> (String, String) in
            if let eq = piece.firstIndex(of: "=") {
                return (AWSPercent.encode(AWSPercent.decode(String(piece[..<eq]))),
                        AWSPercent.encode(AWSPercent.decode(String(piece[piece.index(after: eq)...]))))
            }
            return (AWSPercent.encode(AWSPercent.decode(String(piece))), "")
        }
        return pairs.sorted { a, b in
            a.0 == b.0 ? a.1.utf8.lexicographicallyPrecedes(b.1.utf8) : a.0.utf8.lexicographicallyPrecedes(b.0.utf8)
        }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// Trims the value and turns each run of spaces/tabs/newlines into one space.
    static func trimHeaderValue(_ v: String) -> String {
        var out = [UInt8]()
        var pendingSpace = false
        for b in v.utf8 {
            if b == 0x20 || b == 0x09 || b == 0x0a || b == 0x0d {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(0x20); pendingSpace = false }
                out.append(b)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func pad(_ n: Int, _ width: Int) -> String {
        let s = String(n)
        return String(repeating: "0", count: max(0, width - s.count)) + s
    }
}
