import KLCore

/// Registering watchers atomically with their first events.
extension Store {
    enum WatchStart {
        case events([String], Watcher)
        case expired(JSON)
    }

    /// Registers a watcher and returns the events it must send first: the
    /// current objects (RV "" or "0") or the history after `fromRV`.
    func startWatch(_ r: ResourceType, _ filter: ObjectFilter, fromRV: String?) -> WatchStart? {
        guard let watcher = Watcher(resource: r, filter: filter) else { return nil }
        return state.withLock { s in
            var initial: [String] = []
            if let fromRV, let rv = Int(fromRV), rv > 0 {
                if rv < s.historyFloor {
                    return .expired(Status.failure(code: 410, reason: "Expired", message: "too old resource version: \(rv) (\(s.historyFloor))"))
                }
                for e in s.history where e.rv > rv { if let line = watcher.event(for: e) { initial.append(line) } }
            } else {
                for (_, o) in (s.objects[r.qualified] ?? [:]).sorted(by: { $0.key < $1.key }) where filter.matches(o) {
                    initial.append(Watcher.line(type: "ADDED", object: decorate(r, o, s)))
                }
            }
            s.watchers[ObjectIdentifier(watcher)] = watcher
            return .events(initial, watcher)
        }
    }

    func stopWatch(_ watcher: Watcher) {
        _ = state.withLock { $0.watchers.removeValue(forKey: ObjectIdentifier(watcher)) }
    }

    var currentRV: Int { state.withLock { $0.resourceVersion } }
    var watcherCount: Int { state.withLock { $0.watchers.count } }
}
