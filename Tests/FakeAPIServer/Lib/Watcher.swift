import CShims
import Glibc
import KLCore
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
    /// Read end (polled by the connection thread) and write end of the wake-up pipe.
    let wakeRead: Int32, wakeWrite: Int32
    private let queue = Mutex<[String]>([])

    init?(resource: ResourceType, filter: ObjectFilter) {
        var fds: [Int32] = [0, 0]
        guard cshims_pipe_cloexec_nonblock(&fds) == 0 else { return nil }
        self.resource = resource
        self.filter = filter
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
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
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    /// Takes every queued line and clears the wake-up pipe.
    func drain() -> [String] {
        var scratch = [UInt8](repeating: 0, count: 256)
        while scratch.withUnsafeMutableBytes({ read(wakeRead, $0.baseAddress, 256) }) > 0 {}
        return queue.withLock { q in defer { q.removeAll() }; return q }
    }
}
