import KLCore
import KLTransport
import KLSystem

/// One event of a watch stream.
public struct KubeWatchEvent: Sendable {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    public var type: String
    /// The object; for ERROR a `Status` (code 410, reason `Expired`, when the
    /// resourceVersion is too old: list again and watch from the new one).
    public var object: JSON

    public init(type: String, object: JSON) {
        self.type = type
        self.object = object
    }
}

/// A running watch: one JSON event per line of a chunked response.
/// Used by one thread at a time.
public final class KubeWatch: @unchecked Sendable {
    public enum Next: Sendable {
        indirect case event(KubeWatchEvent)
        /// Nothing arrived before the deadline; the watch is still usable.
        case timedOut
        /// The server ended the stream (its `timeoutSeconds`, or a restart):
        /// watch again from the last seen resourceVersion.
        case ended
    }

    private let stream: HTTPStream
    private let context: KubeError

    init(stream: HTTPStream, error context: KubeError) {
        self.stream = stream
        self.context = context
    }

    deinit { stream.close() }

    /// One line of the stream as it came (the election's `LockSession`
    /// checks it), `.timedOut` at the deadline, `.ended` at the end.
    public enum Line: Sendable, Equatable {
        case line(String)
        case timedOut
        case ended
    }

    public func nextLine(deadline: MonotonicClock.Instant) throws(KubeError) -> Line {
        do {
            guard let line = try stream.readLine(deadline: deadline) else { return .ended }
            return .line(line)
        } catch {
            if error.code == .timedOut { return .timedOut }
            throw error.inCall(context)
        }
    }

    /// The next event, `.timedOut` at the deadline, `.ended` at the end.
    /// ERROR events (e.g. 410 Expired) are returned as events.
    public func next(deadline: MonotonicClock.Instant) throws(KubeError) -> Next {
        while true {
            let line: String?
            do {
                line = try stream.readLine(deadline: deadline)
            } catch {
                if error.code == .timedOut { return .timedOut }
                throw error.inCall(context)
            }
            guard let line else { return .ended }
            // The API server writes one event per line and never a blank one.
            guard let json = try? JSON.parse(line), let type = json["type"]?.stringValue, let object = json["object"] else {
                var e = context
                e.code = .badResponse
                e.message = "a watch event is not a JSON object with type and object: \(quoteForMessage(line))"
                stream.close()
                throw e
            }
            return .event(KubeWatchEvent(type: type, object: object))
        }
    }

    /// The descriptor to poll before `nextLine` (nil: read at once).
    public var waitFD: Int32? { stream.waitFD }

    /// Stops the watch (closes its connection).
    public func close() { stream.close() }
}
