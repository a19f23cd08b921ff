import KLCore
import KLSupport
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
    private var closed = false
    private var ended = false

    init(client: HTTPClient, reader: WireReader, head: ResponseHead, framing: BodyFraming) {
        self.client = client
        self.reader = reader
        self.head = head
        self.status = head.status
        self.headers = head.headers
        self.body = BodyReader(framing: framing)
    }

    deinit { close() }

    /// The first header with this name, compared case-insensitively.
    public func header(_ name: String) -> String? { headerValue(headers, name) }

    /// The next `\n`-terminated line of the body, without the `\n` (and `\r`).
    /// A last line without `\n` is returned too. nil at the clean end of the
    /// body; throws `.timedOut` at the deadline, `.connectionClosed` when the
    /// server cut the body short.
    public func readLine(deadline: MonotonicClock.Instant) throws(HTTPError) -> String? {
        while true {
            if let lf = pending.firstIndex(of: 10) {
                var end = lf
                if end > 0 && pending[end - 1] == 13 { end -= 1 }
                let line = String(decoding: pending[..<end], as: UTF8.self)
                pending.removeFirst(lf + 1)
                return line
            }
            guard let piece = try nextPiece(deadline: deadline) else {
                if pending.isEmpty { return nil }
                let line = String(decoding: pending, as: UTF8.self)
                pending.removeAll()
                return line
            }
            pending.append(contentsOf: piece)
        }
    }

    /// The rest of the body.
    public func readAll(deadline: MonotonicClock.Instant) throws(HTTPError) -> [UInt8] {
        var out = pending
        pending.removeAll()
        while let piece = try nextPiece(deadline: deadline) { out.append(contentsOf: piece) }
        return out
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

    private func nextPiece(deadline: MonotonicClock.Instant) throws(HTTPError) -> [UInt8]? {
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
