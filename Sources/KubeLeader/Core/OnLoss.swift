/// `--on-loss exit|standby`: what kube-leader does after it lost the lock
/// and its child (the whole process group) was stopped and reaped.
///
/// - `exit` (the default): exit 3; the container restarts (with the
///   kubelet's back-off).
/// - `standby`: stand by again in the same process, as a replica that just
///   started would, and lead again when the lock is won again. The old group
///   is gone before the election even reads the lock again
///   (docs/safety.md, "Standing by again after a loss").
public enum OnLoss: String, Sendable, Equatable, CaseIterable {
    case exit
    case standby
}
