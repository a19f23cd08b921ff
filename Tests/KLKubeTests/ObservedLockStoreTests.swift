import KLCore
import KLKube
import Synchronization
import Testing

/// The lock store wrapper passes everything through and tells the board.
@Suite struct ObservedLockStoreTests {
    /// Answers from a list; records what was asked.
    final class Canned: LockStore {
        var answers: [Result<LockSnapshot?, KubeError>]
        var calls: [String] = []
        init(_ answers: [Result<LockSnapshot?, KubeError>]) { self.answers = answers }
        var describe: String { "lease ns/l" }
        func next(_ name: String) throws(KubeError) -> LockSnapshot? {
            calls.append(name)
            return try answers.removeFirst().get()
        }
        func get(timeout: Duration) throws(KubeError) -> Election.Observation {
            try next("get").map { .present($0) } ?? .absent
        }
        func create(_ record: LeaderElectionRecord, timeout: Duration) throws(KubeError) -> LockSnapshot { try next("create")! }
        func update(_ record: LeaderElectionRecord, base: LockSnapshot, timeout: Duration) throws(KubeError) -> LockSnapshot {
            try next("update")!
        }
        func waitForChange(known: LockSnapshot?, deadline: MonotonicClock.Instant) throws(KubeError) -> LockChange {
            try next("watch").map { .observed(.present($0)) } ?? .deadline
        }
        func stopWatching() { calls.append("stop") }
        var isWatching: Bool { false }
    }

    func lease(_ holder: String, rv: String) -> LockSnapshot {
        var object = LockCodec.newObject(.lease, namespace: "ns", name: "l", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: nil, renewTime: nil, leaderTransitions: 2))
        object[path: "metadata", "resourceVersion"] = .string(rv)
        return LockCodec.decode(.lease, object: object)
    }

    @Test func passesThrough_andReportsAcquireRenewFailureReleaseAndWatchTrouble() throws {
        let changes = Mutex<[LeaderStatus.Change]>([])
        let board = StatusBoard(LeaderStatus(identity: "me", namespace: "ns", lockName: "l", kind: .lease)) { change, _ in
            changes.withLock { $0.append(change) }
        }
        let inner = Canned([
            .success(lease("other", rv: "3")),                 // watch
            .failure(KubeError(.watchFailed, "watch broke")),     // watch
            .success(lease("me", rv: "9")),                     // update: acquire
            .success(lease("me", rv: "10")),                    // update: renew
            .failure(KubeError(.conflict, "conflict")),         // update: renew fails
            .success(lease("me", rv: "11")),                    // get (slow path)
            .success(lease("", rv: "12")),                      // update: release
        ])
        let store = ObservedLockStore(inner, board: board)
        let base = lease("other", rv: "3")
        let record = base.record!
        #expect(try store.waitForChange(known: nil, deadline: .now) == .observed(.present(base)))
        #expect(throws: KubeError.self) { _ = try store.waitForChange(known: nil, deadline: .now) }
        #expect(try store.update(record, base: base, timeout: .seconds(1)).resourceVersion == "9")
        #expect(board.snapshot.fencingToken == "9" && board.snapshot.childEnvironment["KUBE_LEADER_FENCING_TOKEN"] == "9")
        _ = try store.update(record, base: base, timeout: .seconds(1))
        #expect(throws: KubeError.self) { _ = try store.update(record, base: base, timeout: .seconds(1)) }
        #expect(try store.get(timeout: .seconds(1)) == .present(lease("me", rv: "11")))
        _ = try store.update(record, base: base, timeout: .seconds(1))
        store.stopWatching()

        #expect(inner.calls == ["watch", "watch", "update", "update", "update", "get", "update", "stop"])
        let s = board.snapshot
        #expect(changes.withLock { $0 } == [.acquired, .stopped])
        #expect(!s.leading && s.fencingToken == nil)
        #expect(s.watchRestarts == 1 && s.renewFailures == 1 && s.slowPaths == 1 && s.renewDurations.count == 1)
        #expect(s.holderChanges == 2)  // other → me → (released)
    }
}
