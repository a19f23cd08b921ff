import KLCore
import KLSystem
import Synchronization

/// One change, kept in the bounded history so a watch can resume from an RV.
struct StoredEvent: Sendable {
    var rv: Int
    var type: String          // ADDED, MODIFIED, DELETED
    var resource: ResourceType
    var object: JSON
    var old: JSON?
}

/// A live watch: the store pushes matching event lines into its queue and
/// wakes the connection thread through a pipe.
final class Watcher: Sendable {
    let resource: ResourceType
    let filter: ObjectFilter
    /// Wakes the connection thread (which polls `wake.readFD`).
    let wake: WakePipe
    private let queue = Mutex<[String]>([])

    init?(resource: ResourceType, filter: ObjectFilter) {
        guard let wake = try? WakePipe() else { return nil }
        self.resource = resource
        self.filter = filter
        self.wake = wake
    }

    /// The event type this watcher sees for a stored change, if any: an
    /// object that leaves the selector is DELETED for it, one that enters is
    /// ADDED, as the real watch cache does.
    func eventType(for e: StoredEvent) -> String? {
        guard e.resource == resource else { return nil }
        let now = filter.matches(e.object)
        let before = e.old.map(filter.matches) ?? false
        switch e.type {
        case "MODIFIED":
            if now && before { return "MODIFIED" }
            if now { return "ADDED" }
            if before { return "DELETED" }
            return nil
        default:
            return now ? e.type : nil
        }
    }

    func event(for e: StoredEvent) -> String? {
        eventType(for: e).map { Watcher.line(type: $0, object: e.object) }
    }

    static func line(type: String, object: JSON) -> String {
        JSON.object(JSONObject([("type", .string(type)), ("object", object)])).serialized() + "\n"
    }

    func push(_ line: String) {
        queue.withLock { $0.append(line) }
        wake.wake()
    }

    /// Takes every queued line and clears the wake-up pipe.
    func drain() -> [String] {
        wake.drain()
        return queue.withLock { q in defer { q.removeAll() }; return q }
    }
}
