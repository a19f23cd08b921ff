import KLCore
import KLLeader
import KLKube
import Synchronization
import Testing

/// The lock store wrapper passes the I/O through and tells the shared status what
/// the session reports.
@Suite struct StatusReportingLockStoreTests {
    final class Canned: LockStore {
        var calls: [String] = []
        var lockConfig: LockSession.Config { LockSession.Config(kind: .lease, namespace: "ns", name: "l") }
        func send(_ request: LockSession.Request, timeout: Duration) -> LockSession.Answer {
            calls.append("send")
            return .ok(.null)
        }
        func readWatch(until: MonotonicClock.Instant) -> LockSession.WatchRead { calls.append("read"); return .timedOut }
        func closeWatch() { calls.append("close") }
    }

    func lease(_ holder: String, rv: String) -> LockSnapshot {
        var object = LockCodec.newObject(.lease, namespace: "ns", name: "l", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: nil, renewTime: nil, leaderTransitions: 2))
        object[path: "metadata", "resourceVersion"] = .string(rv)
        return LockCodec.decode(.lease, object: object)
    }

    @Test func passesThrough_andReportsAcquireRenewFailureReleaseAndWatchTrouble() throws {
        let changes = Mutex<[LeaderStatus.Change]>([])
        let sharedStatus = SharedLeaderStatus(LeaderStatus(identity: "me", namespace: "ns", lockName: "l", kind: .lease)) { change, _ in
            changes.withLock { $0.append(change) }
        }
        let inner = Canned()
        let store = StatusReportingLockStore(inner, sharedStatus: sharedStatus)
        let t = MonotonicClock.now
        #expect(store.send(.list, timeout: .seconds(1)) == .ok(.null))
        #expect(store.readWatch(until: t) == .timedOut)
        store.report(.watched(lease("other", rv: "3")), now: t)
        store.report(.watchFailed, now: t)
        store.report(.wrote(lease("me", rv: "9"), sentAt: t), now: t)
        #expect(sharedStatus.snapshot.fencingToken == "9" && sharedStatus.snapshot.childEnvironment["KUBE_LEADER_FENCING_TOKEN"] == "9")
        store.report(.wrote(lease("me", rv: "10"), sentAt: t), now: t + .milliseconds(3))
        store.report(.writeFailed, now: t)
        store.report(.read(lease("me", rv: "11")), now: t)
        store.report(.wrote(lease("", rv: "12"), sentAt: t), now: t)
        store.closeWatch()

        #expect(inner.calls == ["send", "read", "close"])
        let s = sharedStatus.snapshot
        #expect(changes.withLock { $0 } == [.acquired, .stopped])
        #expect(!s.leading && s.fencingToken == nil)
        #expect(s.watchRestarts == 1 && s.renewFailures == 1 && s.slowPaths == 1 && s.renewDurations.count == 1)
        #expect(s.holderChanges == 2)  // other → me → (released)
    }
}
