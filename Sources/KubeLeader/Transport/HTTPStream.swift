import KLCore
import KLSystem
/// The body of a response read as it arrives (watch streams). Used by one
/// thread at a time. A read that times out leaves the stream usable.
public final class HTTPStream: @unchecked Sendable {
    public let status: Int
    public let headers: [(String, String)]
    private let client: HTTPClient
    private let reader: WireReader
    private let head: ResponseHead
    private let body: BodyReader
    private var pending: [UInt8] = []
    /// Start of the bytes of `pending` not yet returned (lines are cut off
    /// by moving it, not by shifting the buffer once per line).
    private var lineStart = 0
    /// Index in `pending` up to which it was searched for a line feed.
    private var scanned = 0
    private let maxLineBytes: Int
    private let maxBodyBytes: Int
    private var closed = false
    private var ended = false

    init(client: HTTPClient, reader: WireReader, head: ResponseHead, framing: BodyFraming) {
        self.client = client
        self.reader = reader
        self.head = head
        self.status = head.status
        self.headers = head.headers
        self.body = BodyReader(framing: framing)
        self.maxLineBytes = client.limits.maxLineBytes
        self.maxBodyBytes = client.limits.maxBodyBytes
    }

    deinit { close() }

    /// The first header with this name, compared case-insensitively.
    public func header(_ name: String) -> String? { headerValue(headers, name) }

    /// The next `\n`-terminated line of the body, without the `\n` (and `\r`).
    /// A last line without `\n` is returned too. nil at the clean end of the
    /// body; throws `.timedOut` at the deadline, `.connectionClosed` when the
    /// server cut the body short, `.tooLarge` (and closes the stream) when a
    /// line passes `HTTPLimits.maxLineBytes` without ending.
    public func readLine(deadline: MonotonicClock.Instant) throws(TransportError) -> String? {
        while true {
            if let lf = pending[scanned...].firstIndex(of: 10) {
                var end = lf
                if end > lineStart && pending[end - 1] == 13 { end -= 1 }
                let line = String(decoding: pending[lineStart..<end], as: UTF8.self)
                lineStart = lf + 1
                scanned = lineStart
                if lineStart == pending.count { resetPending() }
                return line
            }
            scanned = pending.count
            if pending.count - lineStart > maxLineBytes {
                resetPending()
                close()
                throw TransportError(.tooLarge, "A line of the streamed response from \(reader.channel.endpoint) is longer than the cap of \(byteSizeText(maxLineBytes)) and has not ended; the server does not behave like a Kubernetes API server (or the object is far too large).")
            }
            if lineStart > 0 {  // drop the lines already returned before reading more
                pending.removeFirst(lineStart)
                scanned -= lineStart
                lineStart = 0
            }
            guard let piece = try nextPiece(deadline: deadline) else {
                if pending.isEmpty { return nil }
                let line = String(decoding: pending, as: UTF8.self)
                resetPending()
                return line
            }
            pending.append(contentsOf: piece)
        }
    }

    /// The descriptor to poll before `readLine` (a host that waits on more
    /// than the stream); nil when a line or bytes are already buffered (read
    /// at once) or the stream is over.
    public var waitFD: Int32? {
        if closed || ended || pending[lineStart...].contains(10) || reader.buffered > 0 || reader.channel.pendingBytes > 0 { return nil }
        let fd = reader.channel.pollFD
        return fd < 0 ? nil : fd
    }

    /// The rest of the body (at most `HTTPLimits.maxBodyBytes`, else `.tooLarge`).
    public func readAll(deadline: MonotonicClock.Instant) throws(TransportError) -> [UInt8] {
        var out = Array(pending[lineStart...])
        resetPending()
        while let piece = try nextPiece(deadline: deadline) {
            out.append(contentsOf: piece)
            if out.count > maxBodyBytes {
                close()
                throw TransportError(.tooLarge, "The response body from \(reader.channel.endpoint) is larger than the cap of \(byteSizeText(maxBodyBytes)).")
            }
        }
        return out
    }

    private func resetPending() {
        pending.removeAll(keepingCapacity: true)
        lineStart = 0
        scanned = 0
    }

    /// Closes the connection (or returns it to the pool when the body was
    /// read to its end).
    public func close() {
        if closed { return }
        closed = true
        if ended {
            client.finish(reader, head: head, framing: body.framing)
        } else {
            reader.channel.close()
        }
    }

    private func nextPiece(deadline: MonotonicClock.Instant) throws(TransportError) -> [UInt8]? {
        if closed || ended { return nil }
        do {
            if let piece = try body.next(reader, deadline: deadline) { return piece }
            ended = true
            return nil
        } catch {
            if error.code != .timedOut { close() }
            throw error
        }
    }
}
