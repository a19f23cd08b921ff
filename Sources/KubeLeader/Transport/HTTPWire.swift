import KLCore
import KLSystem
/// HTTP/1.1 framing: a buffered reader over a channel, response heads,
/// and body decoding (Content-Length, chunked, until-close). Every step
/// either completes and updates its state or throws without consuming
/// input, so a read that times out can be retried later (watch streams).

/// Reads bytes from a channel through a buffer.
final class WireReader: @unchecked Sendable {
    let channel: any HTTPChannel
    private var buffer: [UInt8] = []
    private var start = 0
    private(set) var atEOF = false
    /// Bytes received from the server so far (to tell "closed before any
    /// response byte" from a truncated response).
    private(set) var received = 0

    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 16 * 1024, alignment: 8)

    init(channel: any HTTPChannel) {
        self.channel = channel
    }

    deinit { scratch.deallocate() }

    var buffered: Int { buffer.count - start }

    /// Reads more from the channel; false at end of stream.
    @discardableResult
    func fill(deadline: MonotonicClock.Instant) throws(TransportError) -> Bool {
        if atEOF { return false }
        if start > 0 && start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        let n = try channel.read(into: scratch, deadline: deadline)
        if n == 0 {
            atEOF = true
            return false
        }
        received += n
        buffer.append(contentsOf: UnsafeRawBufferPointer(rebasing: scratch[0..<n]))
        return true
    }

    /// One line without its LF (and CR). nil at end of stream before any byte
    /// of a line; a partial line at end of stream is an error.
    /// A line longer than `limit` throws `tooLong(limit)` (a protocol error by default).
    func readLine(limit: Int, deadline: MonotonicClock.Instant,
                  tooLong: ((Int) -> TransportError)? = nil) throws(TransportError) -> [UInt8]? {
        var scannedPastStart = 0  // relative: fill() may move the buffered bytes
        while true {
            if let lf = buffer[(start + scannedPastStart)...].firstIndex(of: 10) {
                var end = lf
                if end > start && buffer[end - 1] == 13 { end -= 1 }
                let line = Array(buffer[start..<end])
                start = lf + 1
                return line
            }
            scannedPastStart = buffered
            if buffered > limit {
                if let tooLong { throw tooLong(limit) }
                throw TransportError(.protocolError, "The response from \(channel.endpoint) has a line longer than \(limit) bytes; the server does not speak HTTP/1.1 as expected.")
            }
            if try !fill(deadline: deadline) {
                if buffered == 0 { return nil }
                throw TransportError(.connectionClosed, "The server \(channel.endpoint) closed the connection in the middle of a response line.")
            }
        }
    }

    /// Up to `max` bytes (at least one); empty at end of stream.
    func readSome(max: Int, deadline: MonotonicClock.Instant) throws(TransportError) -> [UInt8] {
        if buffered == 0 {
            if try !fill(deadline: deadline) { return [] }
        }
        let n = min(max, buffered)
        let out = Array(buffer[start..<(start + n)])
        start += n
        return out
    }
}

/// Status line and headers of one response.
struct ResponseHead: Sendable {
    var version: String
    var status: Int
    var headers: [(String, String)]

    func header(_ name: String) -> String? { headerValue(headers, name) }

    /// Tokens of all `name` headers, lower-cased ("Connection: close, TE").
    func tokens(_ name: String) -> [String] {
        let wanted = asciiLowercased(name)
        var out: [String] = []
        for (k, v) in headers where asciiLowercased(k) == wanted {
            for part in v.split(separator: ",") { out.append(asciiLowercased(trimOWS(Substring(part)))) }
        }
        return out
    }

    /// Whether the server lets us reuse the connection after this response.
    var keepAlive: Bool {
        let conn = tokens("Connection")
        if conn.contains("close") { return false }
        if version == "HTTP/1.0" { return conn.contains("keep-alive") }
        return true
    }
}

public func trimOWS(_ s: Substring) -> String {
    var s = s
    while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
    while let l = s.last, l == " " || l == "\t" { s.removeLast() }
    return String(s)
}

let maxHeadLine = 64 * 1024
let maxHeaders = 256

/// Reads one response head (status line + headers), skipping 1xx interim
/// responses. Returns nil when the server closed before sending any byte.
/// The whole head, interim responses included, is capped at `maxBytes`.
func readResponseHead(_ reader: WireReader, deadline: MonotonicClock.Instant,
                      maxBytes: Int = HTTPLimits().maxHeadBytes) throws(TransportError) -> ResponseHead? {
    let ep = reader.channel.endpoint
    var used = 0
    let tooLong = { (_: Int) -> TransportError in
        TransportError(.tooLarge, "The response headers from \(ep) are larger than the cap of \(byteSizeText(maxBytes)); the server does not behave like a Kubernetes API server.")
    }
    func line() throws(TransportError) -> [UInt8]? {
        let l = try reader.readLine(limit: max(0, min(maxHeadLine, maxBytes - used)), deadline: deadline, tooLong: tooLong)
        if let l { used += l.count + 2 }
        if used > maxBytes { throw tooLong(maxBytes) }
        return l
    }
    while true {
        guard let statusLine = try line() else {
            if reader.received == 0 { return nil }
            throw TransportError(.connectionClosed, "The server \(ep) closed the connection before sending a complete response.")
        }
        let text = String(decoding: statusLine, as: UTF8.self)
        let parts = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), parts[1].count == 3, let status = Int(parts[1]), status >= 100 else {
            throw TransportError(.protocolError, "The server \(ep) sent an invalid HTTP status line \(quoteForMessage(text)); check that the URL points at an HTTP server.")
        }
        var headers: [(String, String)] = []
        while true {
            guard let line = try line() else {
                throw TransportError(.connectionClosed, "The server \(ep) closed the connection in the middle of the response headers.")
            }
            if line.isEmpty { break }
            let h = String(decoding: line, as: UTF8.self)
            guard let colon = h.firstIndex(of: ":"), colon != h.startIndex, h.first != " ", h.first != "\t" else {
                throw TransportError(.protocolError, "The server \(ep) sent an invalid header line \(quoteForMessage(h)).")
            }
            headers.append((String(h[..<colon]), trimOWS(h[h.index(after: colon)...])))
            if headers.count > maxHeaders {
                throw TransportError(.tooLarge, "The server \(ep) sent more than \(maxHeaders) headers; the server does not behave like a Kubernetes API server.")
            }
        }
        // 1xx are interim (100 Continue, 103 Early Hints); 101 would switch protocols, which we never ask for.
        if status < 200 && status != 101 { continue }
        return ResponseHead(version: String(parts[0]), status: status, headers: headers)
    }
}

public func quoteForMessage(_ s: String) -> String {
    let cut = s.count > 80 ? String(s.prefix(80)) + "…" : s
    return "\"" + cut + "\""
}

/// How the body of a response ends (RFC 9112 section 6.3).
enum BodyFraming: Sendable, Equatable {
    case none
    case length(Int)
    case chunked
    case untilClose
}

func bodyFraming(method: String, head: ResponseHead, endpoint: String) throws(TransportError) -> BodyFraming {
    if method == "HEAD" || head.status == 204 || head.status == 304 || head.status < 200 { return .none }
    let te = head.tokens("Transfer-Encoding")
    if !te.isEmpty {
        guard te.last == "chunked" else {
            throw TransportError(.protocolError, "The server \(endpoint) sent an unsupported Transfer-Encoding \(quoteForMessage(te.joined(separator: ", "))).")
        }
        return .chunked
    }
    let lengths = head.tokens("Content-Length")
    if let first = lengths.first {
        guard lengths.allSatisfy({ $0 == first }), let n = Int(first), n >= 0, first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw TransportError(.protocolError, "The server \(endpoint) sent an invalid Content-Length \(quoteForMessage(lengths.joined(separator: ", "))).")
        }
        return .length(n)
    }
    return .untilClose
}

/// Decodes a body piece by piece. State survives a timed-out read.
final class BodyReader: @unchecked Sendable {
    private enum State {
        case length(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkEnd
        case trailers
        case untilClose
        case done
    }
    private var state: State
    private var total = 0
    let framing: BodyFraming
    /// Cap on the decoded body (and chunk trailers); `Int.max` for streams,
    /// whose lines are capped instead.
    let maxBytes: Int

    init(framing: BodyFraming, maxBytes: Int = Int.max) {
        self.framing = framing
        self.maxBytes = maxBytes
        switch framing {
        case .none: state = .done
        case .length(let n): state = n == 0 ? .done : .length(remaining: n)
        case .chunked: state = .chunkSize
        case .untilClose: state = .untilClose
        }
    }

    var isDone: Bool { if case .done = state { return true }; return false }

    /// The next piece of the body, or nil at its end.
    func next(_ reader: WireReader, deadline: MonotonicClock.Instant) throws(TransportError) -> [UInt8]? {
        let ep = reader.channel.endpoint
        while true {
            switch state {
            case .done:
                return nil
            case .length(let remaining):
                if total + remaining > maxBytes { throw tooLarge(ep, declared: total + remaining) }
                let piece = try reader.readSome(max: min(remaining, 64 * 1024), deadline: deadline)
                if piece.isEmpty {
                    throw TransportError(.connectionClosed, "The server \(ep) closed the connection after \(total) of \(total + remaining) body bytes; the response is incomplete.")
                }
                total += piece.count
                state = remaining == piece.count ? .done : .length(remaining: remaining - piece.count)
                return piece
            case .untilClose:
                let piece = try reader.readSome(max: 64 * 1024, deadline: deadline)
                if piece.isEmpty {
                    state = .done
                    return nil
                }
                total += piece.count
                if total > maxBytes { throw tooLarge(ep, declared: nil) }
                return piece
            case .chunkSize:
                guard let line = try reader.readLine(limit: 4096, deadline: deadline) else {
                    throw truncatedChunked(ep)
                }
                guard let size = parseChunkSize(line) else {
                    throw TransportError(.protocolError, "The server \(ep) sent an invalid chunk size line \(quoteForMessage(String(decoding: line, as: UTF8.self))).")
                }
                if size > maxBytes - total { throw tooLarge(ep, declared: nil) }
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                let piece = try reader.readSome(max: min(remaining, 64 * 1024), deadline: deadline)
                if piece.isEmpty { throw truncatedChunked(ep) }
                total += piece.count
                state = remaining == piece.count ? .chunkEnd : .chunkData(remaining: remaining - piece.count)
                return piece
            case .chunkEnd:
                guard let line = try reader.readLine(limit: 4096, deadline: deadline) else { throw truncatedChunked(ep) }
                guard line.isEmpty else {
                    throw TransportError(.protocolError, "The server \(ep) sent chunk data longer than its declared size.")
                }
                state = .chunkSize
            case .trailers:
                guard let line = try reader.readLine(limit: maxHeadLine, deadline: deadline) else { throw truncatedChunked(ep) }
                total += line.count + 2
                if total > maxBytes { throw tooLarge(ep, declared: nil) }
                if line.isEmpty { state = .done }
            }
        }
    }

    private func tooLarge(_ ep: String, declared: Int?) -> TransportError {
        let what = declared.map { "declares \($0) bytes, more than" } ?? "is larger than"
        return TransportError(.tooLarge, "The response body from \(ep) \(what) the cap of \(byteSizeText(maxBytes)); the server does not behave like a Kubernetes API server (or the object is far too large).")
    }

    private func truncatedChunked(_ ep: String) -> TransportError {
        TransportError(.connectionClosed, "The server \(ep) closed the connection in the middle of a chunked body (after \(total) bytes); the response is incomplete.")
    }
}

/// `1a;name=value` -> 26. nil when not a hex size or absurdly large.
func parseChunkSize(_ line: [UInt8]) -> Int? {
    var value = 0
    var digits = 0
    var i = 0
    while i < line.count {
        let b = line[i]
        let d: Int
        switch b {
        case 48...57: d = Int(b) - 48
        case 65...70: d = Int(b) - 55
        case 97...102: d = Int(b) - 87
        default: d = -1
        }
        if d < 0 { break }
        digits += 1
        if digits > 15 { return nil }
        value = value * 16 + d
        i += 1
    }
    if digits == 0 { return nil }
    // Only whitespace and a chunk extension (";...") may follow.
    while i < line.count, line[i] == 32 || line[i] == 9 { i += 1 }
    if i < line.count && line[i] != 59 { return nil }
    return value
}

/// Serialises a request head and body. A control character (or a space in
/// the path) would end or split the head early and let the rest of a value
/// be read as another header or request: refused, naming the header (never
/// its value: it may be a token).
func encodeRequest(_ request: HTTPRequest, hostHeader: String, pathPrefix: String) throws(TransportError) -> [UInt8] {
    let target = pathPrefix + request.path
    if let bad = target.utf8.first(where: { $0 <= 32 || $0 == 127 }) {
        throw TransportError(.invalidRequest, "The request path contains \(controlText(bad)); refusing to send it.")
    }
    for (k, v) in request.headers {
        if k.isEmpty || k.utf8.contains(where: { $0 <= 32 || $0 == 127 || $0 == 58 }) {
            throw TransportError(.invalidRequest, "The request header name \(quoteForMessage(String(decoding: k.utf8.filter { $0 > 32 && $0 != 127 }, as: UTF8.self))) is not a valid HTTP token; refusing to send it.")
        }
        if let bad = v.utf8.first(where: { ($0 < 32 && $0 != 9) || $0 == 127 }) {
            throw TransportError(.invalidRequest, "The value of the request header \"\(k)\" contains \(controlText(bad)); header values must be one line of text. Refusing to send it.")
        }
    }
    var head = "\(request.method) \(pathPrefix)\(request.path) HTTP/1.1\r\n"
    let names = request.headers.map { asciiLowercased($0.0) }
    if !names.contains("host") { head += "Host: \(hostHeader)\r\n" }
    for (k, v) in request.headers { head += "\(k): \(v)\r\n" }
    if !names.contains("content-length") && (!request.body.isEmpty || ["POST", "PUT", "PATCH"].contains(request.method)) {
        head += "Content-Length: \(request.body.count)\r\n"
    }
    head += "\r\n"
    var out = Array(head.utf8)
    out.append(contentsOf: request.body)
    return out
}

/// "a control character (byte 0x0D, carriage return)" for messages.
public func controlText(_ b: UInt8) -> String {
    let hex = "0123456789ABCDEF".utf8.map { $0 }
    let code = String(decoding: [48, 120, hex[Int(b >> 4)], hex[Int(b & 15)]], as: UTF8.self)
    let name: String
    switch b {
    case 13: name = ", carriage return"
    case 10: name = ", line feed"
    case 0: name = ", NUL"
    case 32: return "a space (byte 0x20)"
    default: name = ""
    }
    return "a control character (byte \(code)\(name))"
}
