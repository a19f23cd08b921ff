import KLCore

/// A parsed HTTP/1.1 request.
struct HTTPRequest {
    var method: String
    /// The path without the query, percent-decoded.
    var path: String
    var query: [String: String]
    /// Header names lower-cased.
    var headers: [String: String]
    var body: [UInt8]

    var bearerToken: String? {
        guard let auth = headers["authorization"] else { return nil }
        let parts = auth.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingWhitespace
    }

    var keepAlive: Bool { headers["connection"]?.lowercased() != "close" }
}

/// An HTTP response with a complete body.
struct HTTPResponse {
    var status: Int
    var headers: [(String, String)] = []
    var body: [UInt8] = []

    init(status: Int, json: JSON, headers: [(String, String)] = []) {
        self.status = status
        self.headers = [("Content-Type", "application/json")] + headers
        self.body = Array((json.serialized() + "\n").utf8)
    }

    init(status: Int, text: String, contentType: String = "text/plain; charset=utf-8") {
        self.status = status
        self.headers = [("Content-Type", contentType)]
        self.body = Array(text.utf8)
    }

    func encoded(keepAlive: Bool) -> [UInt8] {
        var head = "HTTP/1.1 \(status) \(reasonPhrase(status))\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(body.count)\r\n"
        if !keepAlive { head += "Connection: close\r\n" }
        head += "\r\n"
        return Array(head.utf8) + body
    }
}

func reasonPhrase(_ status: Int) -> String {
    switch status {
    case 200: "OK"
    case 201: "Created"
    case 400: "Bad Request"
    case 401: "Unauthorized"
    case 403: "Forbidden"
    case 404: "Not Found"
    case 405: "Method Not Allowed"
    case 406: "Not Acceptable"
    case 409: "Conflict"
    case 410: "Gone"
    case 415: "Unsupported Media Type"
    case 422: "Unprocessable Entity"
    case 429: "Too Many Requests"
    case 500: "Internal Server Error"
    case 502: "Bad Gateway"
    case 503: "Service Unavailable"
    case 504: "Gateway Timeout"
    default: "Status \(status)"
    }
}

/// Reads requests off a transport, keeping leftover bytes between requests
/// (keep-alive). Bodies may use Content-Length or chunked encoding.
final class HTTPReader {
    enum ReadError: Error { case closed, malformed(String) }

    private let transport: Transport
    private var buffer: [UInt8] = []
    private var start = 0
    private static let maxHeader = 1 << 20
    private static let maxBody = 64 << 20

    init(transport: Transport) { self.transport = transport }

    /// The next request, or nil when the peer closed cleanly between requests.
    func next() throws(ReadError) -> HTTPRequest? {
        var headerEnd: Int
        while true {
            if let end = findHeaderEnd() { headerEnd = end; break }
            if buffer.count - start > Self.maxHeader { throw .malformed("request header too large") }
            if !fill() {
                if buffer.count == start { return nil }
                throw .closed
            }
        }
        let headText = String(decoding: buffer[start..<headerEnd], as: UTF8.self)
        start = headerEnd + 4
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count == 3 else { throw .malformed("bad request line") }
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = String(line[line.index(after: colon)...]).trimmingWhitespace
            if let old = headers[name] { headers[name] = old + "," + value } else { headers[name] = value }
        }
        let target = String(requestLine[1])
        let (path, query) = splitTarget(target)
        var body: [UInt8] = []
        if headers["transfer-encoding"]?.lowercased().contains("chunked") == true {
            body = try readChunked()
        } else if let lengthText = headers["content-length"] {
            guard let length = Int(lengthText), length >= 0, length <= Self.maxBody else { throw .malformed("bad Content-Length") }
            body = try readExactly(length)
        }
        compact()
        return HTTPRequest(method: String(requestLine[0]), path: path, query: query, headers: headers, body: body)
    }

    /// Reads and discards until the peer gives up (the "hang" partition).
    func drainUntilClosed() {
        buffer.removeAll(); start = 0
        while fill() { buffer.removeAll(); start = 0 }
    }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16384)
        let n = chunk.withUnsafeMutableBytes { transport.read(into: $0.baseAddress!, count: $0.count) }
        if n <= 0 { return false }
        buffer.append(contentsOf: chunk[0..<n])
        return true
    }

    private func compact() {
        if start > 0 { buffer.removeFirst(start); start = 0 }
    }

    private func findHeaderEnd() -> Int? {
        guard buffer.count - start >= 4 else { return nil }
        var i = start
        while i + 3 < buffer.count {
            if buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 { return i }
            i += 1
        }
        return nil
    }

    private func readExactly(_ count: Int) throws(ReadError) -> [UInt8] {
        while buffer.count - start < count { if !fill() { throw .closed } }
        let out = Array(buffer[start..<start + count])
        start += count
        return out
    }

    private func readLine() throws(ReadError) -> String {
        while true {
            var i = start
            while i + 1 < buffer.count {
                if buffer[i] == 13 && buffer[i + 1] == 10 {
                    let line = String(decoding: buffer[start..<i], as: UTF8.self)
                    start = i + 2
                    return line
                }
                i += 1
            }
            if buffer.count - start > Self.maxHeader { throw .malformed("chunk line too long") }
            if !fill() { throw .closed }
        }
    }

    private func readChunked() throws(ReadError) -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let line = try readLine()
            let sizeText = line.split(separator: ";", maxSplits: 1).first.map(String.init)?.trimmingWhitespace ?? ""
            guard let size = Int(sizeText, radix: 16), size >= 0 else { throw .malformed("bad chunk size") }
            if size == 0 {
                while try !readLine().isEmpty {}   // trailers
                return body
            }
            if body.count + size > Self.maxBody { throw .malformed("body too large") }
            body += try readExactly(size)
            guard try readLine().isEmpty else { throw .malformed("chunk not followed by CRLF") }
        }
    }
}

/// Splits `/path?a=b&c` into a decoded path and query map.
func splitTarget(_ target: String) -> (String, [String: String]) {
    let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
    let path = percentDecode(String(parts[0]))
    var query: [String: String] = [:]
    if parts.count == 2 {
        for pair in parts[1].split(separator: "&") {
            let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = percentDecode(String(kv[0]), plusIsSpace: true)
            query[key] = kv.count == 2 ? percentDecode(String(kv[1]), plusIsSpace: true) : ""
        }
    }
    return (path, query)
}

func percentDecode(_ s: String, plusIsSpace: Bool = false) -> String {
    var out: [UInt8] = []
    let bytes = Array(s.utf8)
    var i = 0
    while i < bytes.count {
        let b = bytes[i]
        if b == UInt8(ascii: "%"), i + 2 < bytes.count,
           let v = UInt8(String(decoding: bytes[i + 1...i + 2], as: UTF8.self), radix: 16) {
            out.append(v); i += 3
        } else if plusIsSpace && b == UInt8(ascii: "+") {
            out.append(32); i += 1
        } else {
            out.append(b); i += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}
