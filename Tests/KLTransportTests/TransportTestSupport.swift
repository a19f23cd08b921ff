import KLCore
import KLNetworkTestSupport
@testable import KLTransport

/// Opens the stream of a `GET /watch` from `server` on a new client.
func openWatch(_ server: TestServer, limits: HTTPLimits = HTTPLimits()) throws -> HTTPStream {
    try HTTPClient(baseURL: server.url, limits: limits).openStream(HTTPRequest(method: "GET", path: "/watch"), timeout: .seconds(5))
}

/// An in-memory channel that returns the given pieces, one per read, then EOF.
final class ScriptedChannel: HTTPChannel, @unchecked Sendable {
    let endpoint = "scripted:0"
    private var pieces: [[UInt8]]
    init(_ pieces: [[UInt8]]) { self.pieces = pieces }
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicClock.Instant) throws(TransportError) -> Int {
        guard !pieces.isEmpty else { return 0 }
        var piece = pieces.removeFirst()
        if piece.count > buffer.count {
            pieces.insert(Array(piece[buffer.count...]), at: 0)
            piece = Array(piece[..<buffer.count])
        }
        buffer.copyBytes(from: piece)
        return piece.count
    }
    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicClock.Instant, written: inout Int) throws(TransportError) { written += bytes.count }
    func isIdleUsable() -> Bool { true }
    func close() {}
}

let farDeadline = MonotonicClock.now + .seconds(3600)

