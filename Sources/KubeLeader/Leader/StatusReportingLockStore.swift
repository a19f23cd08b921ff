import KLCore
import KLKube
import KLSystem

/// A `LockStore` that reports every read and write of the lock to a
/// `SharedLeaderStatus` and passes everything through unchanged: the election
/// neither knows nor waits for the surfaces that read the shared status.
public final class StatusReportingLockStore: LockStore {
    let inner: any LockStore
    let sharedStatus: SharedLeaderStatus

    public init(_ inner: any LockStore, sharedStatus: SharedLeaderStatus) {
        self.inner = inner
        self.sharedStatus = sharedStatus
    }

    public var lockConfig: LockSession.Config { inner.lockConfig }

    public func send(_ request: LockSession.Request, timeout: Duration) -> LockSession.Answer {
        inner.send(request, timeout: timeout)
    }

    public func readWatch(until: MonotonicClock.Instant) -> LockSession.WatchRead { inner.readWatch(until: until) }

    public func closeWatch() { inner.closeWatch() }
    public var watchWaitFD: Int32? { inner.watchWaitFD }

    public func report(_ report: LockSession.Report, now: MonotonicClock.Instant) {
        switch report {
        case .read(let snapshot): sharedStatus.update { $0.observed(snapshot, duringLeadership: true) }
        case .watched(let snapshot): sharedStatus.update { $0.observed(snapshot) }
        case .wrote(let snapshot, let sentAt): sharedStatus.update { $0.wrote(snapshot, sentAt: sentAt, now: now) }
        case .writeFailed: sharedStatus.update { $0.writeFailed(); return nil }
        case .watchFailed: sharedStatus.update { $0.watchRestarted(); return nil }
        }
        inner.report(report, now: now)
    }
}
