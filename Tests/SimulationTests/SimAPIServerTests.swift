import KLCore
@testable import KLSimulation
import Testing

/// The simulated API server is as harsh as the real one: 409 on a stale
/// resourceVersion, no-op updates that keep it and send no event, a bounded
/// watch history with 410, deletions.
@Suite struct SimAPIServerTests {
    final class Sink {
        var items: [(Int, WatchItem)] = []
        var nextID = 0
    }

    func record(_ holder: String, renew: WallTime) -> LeaderElectionRecord {
        LeaderElectionRecord(holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: renew, renewTime: renew,
                             leaderTransitions: 0)
    }

    func call(_ server: SimAPIServer, _ request: SimRequest, at t: SimTime, _ sink: Sink) -> SimResponse {
        server.handle(request, at: t, deliver: { conn, item in sink.items.append((conn.id, item)) }, openWatch: {
            sink.nextID += 1
            return WatchConnection(id: sink.nextID, replica: 0, incarnation: 1)
        })
    }

    func created(_ server: SimAPIServer, _ sink: Sink, renew: WallTime) -> LockSnapshot? {
        let body = LockCodec.newObject(server.kind, namespace: "sim", name: "lock", record: record("a", renew: renew))
        guard case .object(let s) = call(server, .create(body), at: 0, sink) else { return nil }
        return s
    }

    @Test func create_twice_answersAlreadyExists() throws {
        let server = SimAPIServer(kind: .configMap, noisePerSecond: 0, historyCapacity: 100)
        let sink = Sink()
        _ = try #require(created(server, sink, renew: WallTime(seconds: 100)))
        let again = LockCodec.newObject(.configMap, namespace: "sim", name: "lock", record: record("b", renew: WallTime(seconds: 100)))
        guard case .status(409, "AlreadyExists") = call(server, .create(again), at: 1, sink) else {
            Issue.record("second create must answer 409 AlreadyExists"); return
        }
    }

    @Test func update_withStaleResourceVersion_answersConflict() throws {
        let server = SimAPIServer(kind: .lease, noisePerSecond: 0, historyCapacity: 100)
        let sink = Sink()
        let first = try #require(created(server, sink, renew: WallTime(seconds: 100)))
        let body = LockCodec.updatedObject(.lease, base: first, record: record("a", renew: WallTime(seconds: 101)))
        guard case .object(let second) = call(server, .update(body), at: 1, sink) else { Issue.record("update failed"); return }
        #expect(second.resourceVersion != first.resourceVersion)
        let stale = LockCodec.updatedObject(.lease, base: first, record: record("b", renew: WallTime(seconds: 102)))
        guard case .status(409, "Conflict") = call(server, .update(stale), at: 2, sink) else {
            Issue.record("an update from a stale resourceVersion must answer 409"); return
        }
    }

    /// ConfigMap records carry whole seconds: a second renew within the same
    /// second changes nothing, keeps the resourceVersion and sends no event.
    /// Lease times have microseconds: the same renew is a real change.
    @Test(arguments: [LockKind.configMap, .lease])
    func renew_withinTheSameSecond(kind: LockKind) throws {
        let server = SimAPIServer(kind: kind, noisePerSecond: 0, historyCapacity: 100)
        let sink = Sink()
        let first = try #require(created(server, sink, renew: WallTime(seconds: 100, nanoseconds: 100_000_000)))
        guard case .watchOpened = call(server, .watch(from: first.resourceVersion), at: 1, sink) else { Issue.record("watch"); return }
        let events = sink.items.count
        let body = LockCodec.updatedObject(kind, base: first, record: record("a", renew: WallTime(seconds: 100, nanoseconds: 600_000_000)))
        guard case .object(let second) = call(server, .update(body), at: 2, sink) else { Issue.record("update failed"); return }
        if kind == .configMap {
            #expect(second.resourceVersion == first.resourceVersion)
            #expect(sink.items.count == events)
        } else {
            #expect(second.resourceVersion != first.resourceVersion)
            #expect(sink.items.count == events + 1)
        }
    }

    @Test func watch_fromBeforeTheHistory_isExpired() throws {
        let server = SimAPIServer(kind: .configMap, noisePerSecond: 100, historyCapacity: 50)
        let sink = Sink()
        let first = try #require(created(server, sink, renew: WallTime(seconds: 100)))
        // One second later 100 other writes have pushed it out of the history.
        _ = call(server, .watch(from: first.resourceVersion), at: SimTime.second, sink)
        guard case .expired? = sink.items.first?.1 else { Issue.record("expected ERROR 410, got \(sink.items)"); return }
        guard case .list(_, let rv) = call(server, .list, at: SimTime.second, sink), let v = Int64(rv) else {
            Issue.record("list"); return
        }
        #expect(v > Int64(first.resourceVersion)!)
        sink.items.removeAll()
        _ = call(server, .watch(from: rv), at: SimTime.second, sink)
        #expect(sink.items.isEmpty)  // from the list's version: no error
    }

    @Test func restart_expiresEveryOlderVersion() throws {
        let server = SimAPIServer(kind: .lease, noisePerSecond: 0, historyCapacity: 1000)
        let sink = Sink()
        let first = try #require(created(server, sink, renew: WallTime(seconds: 100)))
        server.restart(at: SimTime.second, deliver: { c, i in sink.items.append((c.id, i)) })
        _ = call(server, .watch(from: String(Int64(first.resourceVersion)! - 1)), at: 2 * SimTime.second, sink)
        #expect(sink.items.contains { if case .expired = $0.1 { return true }; return false },
                "expected ERROR 410 after a restart, got \(sink.items)")
    }

    @Test func delete_isSeenByWatchers_andUpdatesThenAnswerNotFound() throws {
        let server = SimAPIServer(kind: .configMap, noisePerSecond: 0, historyCapacity: 100)
        let sink = Sink()
        let first = try #require(created(server, sink, renew: WallTime(seconds: 100)))
        _ = call(server, .watch(from: nil), at: 1, sink)
        guard case .added? = sink.items.last?.1 else { Issue.record("a watch without a version starts with ADDED"); return }
        #expect(server.delete(at: 2, deliver: { c, i in sink.items.append((c.id, i)) }))
        guard case .deleted? = sink.items.last?.1 else { Issue.record("expected DELETED"); return }
        let body = LockCodec.updatedObject(.configMap, base: first, record: record("a", renew: WallTime(seconds: 101)))
        guard case .status(404, _) = call(server, .update(body), at: 3, sink) else { Issue.record("update after delete must 404"); return }
    }
}
