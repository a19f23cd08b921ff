import KLCore

/// Access key, secret and optional session token, plus when they stop
/// working (`nil` for long-lived keys). Never logged: `description` hides the
/// secret and the token.
public struct AWSCredentials: Sendable, Equatable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// Sent as `X-Amz-Security-Token` and signed, for temporary credentials.
    public var sessionToken: String?
    /// Expiry of temporary credentials; `nil` means "does not expire".
    public var expiration: WallTime?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil,
                expiration: WallTime? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
        self.expiration = expiration
    }

    public var description: String {
        "AWSCredentials(accessKeyID: \(accessKeyID), expiration: \(expiration.map { RFC3339.format($0) } ?? "never"))"
    }
}

/// One HTTP header as it goes on the wire (name keeps its case).
public struct AWSHeader: Sendable, Equatable {
    public var name: String
    public var value: String
    public init(_ name: String, _ value: String) { self.name = name; self.value = value }
}

/// An HTTP request as SigV4 sees it: method, the request target (path plus
/// optional `?query`, exactly as sent), headers in order, body bytes.
public struct AWSRequest: Sendable, Equatable {
    public var method: String
    public var target: String
    public var headers: [AWSHeader]
    public var body: [UInt8]

    public init(method: String, target: String, headers: [AWSHeader] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    /// The first value of header `name` (case-insensitive).
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// Replaces every header called `name` (case-insensitive) by one value.
    public mutating func setHeader(_ name: String, _ value: String) {
        removeHeader(name)
        headers.append(AWSHeader(name, value))
    }

    public mutating func removeHeader(_ name: String) {
        let lower = name.lowercased()
        headers.removeAll { $0.name.lowercased() == lower }
    }

    /// The path part of `target` (before `?`).
    public var path: String {
        if let q = target.firstIndex(of: "?") { return String(target[..<q]) }
        return target
    }

    /// The raw query part of `target` (after `?`), empty when there is none.
    public var rawQuery: String {
        if let q = target.firstIndex(of: "?") { return String(target[target.index(after: q)...]) }
        return ""
    }
}

/// AWS's percent-encoding: everything but `A-Z a-z 0-9 - _ . ~` is `%XX`
/// (upper-case hex) over UTF-8. Used for canonical paths and queries and for
/// Query-protocol form bodies, so what we send is byte-for-byte what we sign.
public enum AWSPercent {
    public static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || (b >= 0x30 && b <= 0x39)
            || b == 0x2d || b == 0x5f || b == 0x2e || b == 0x7e
    }

    public static func encode(_ s: String, keepSlash: Bool = false) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        for b in s.utf8 {
            if isUnreserved(b) || (keepSlash && b == 0x2f) {
                out.append(b)
            } else {
                out.append(0x25); out.append(hex[Int(b >> 4)]); out.append(hex[Int(b & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes `%XX` escapes (and `+` as space when `plusIsSpace`); invalid
    /// escapes stay as they are.
    public static func decode(_ s: String, plusIsSpace: Bool = false) -> String {
        let bytes = Array(s.utf8)
        var out = [UInt8]()
        var i = 0
        func hexValue(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            case 0x61...0x66: return c - 0x61 + 10
            default: return nil
            }
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x25, i + 2 < bytes.count, let h = hexValue(bytes[i + 1]), let l = hexValue(bytes[i + 2]) {
                out.append(h << 4 | l); i += 3
            } else if b == 0x2b && plusIsSpace {
                out.append(0x20); i += 1
            } else {
                out.append(b); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `application/x-www-form-urlencoded` body for the Query protocol, keys
    /// in the given order.
    public static func form(_ pairs: [(String, String)]) -> String {
        pairs.map { encode($0.0) + "=" + encode($0.1) }.joined(separator: "&")
    }

    /// Parses a form body or query string into decoded pairs, in order.
    public static func parseForm(_ s: String) -> [(String, String)] {
        s.split(separator: "&", omittingEmptySubsequences: true).map { piece in
            if let eq = piece.firstIndex(of: "=") {
                return (decode(String(piece[..<eq]), plusIsSpace: true),
                        decode(String(piece[piece.index(after: eq)...]), plusIsSpace: true))
            }
            return (decode(String(piece), plusIsSpace: true), "")
        }
    }
}
