import CShims
import KLCore
import KLSystem

/// Zombie reaping, as an init does (tini `reap_zombies`, `tini.c:563-611`).
///
/// A process whose parent exits is re-parented to PID 1, or to the nearest
/// ancestor that declared itself a child subreaper. As PID 1 in a container,
/// or as a subreaper elsewhere, kube-leader inherits the orphans of its
/// child and must wait for them, or they stay zombies.
public enum Reaper {
    /// Makes orphaned descendants our children (prctl PR_SET_CHILD_SUBREAPER,
    /// Linux 3.4). Not needed as PID 1, which reaps orphans anyway.
    /// - Returns: true when we are PID 1 or the call succeeded.
    @discardableResult
    public static func becomeSubreaper() -> Bool {
        if getpid() == 1 { return true }
        return cshims_set_child_subreaper() == 0
    }

    /// Reaps every child that has exited (`waitpid(-1, WNOHANG)` until nothing
    /// is left) and returns their pids and statuses, the supervised child's
    /// among them. Retries EINTR; ECHILD (no children at all) ends the loop.
    ///
    /// - Important: this takes the status of ANY child of this process,
    ///   including ones another part of the program waits for with
    ///   `waitpid(pid)` (`runCapturing`, `ChildProcess.waitForExit`).
    public static func reapAll() -> [(pid: Int32, status: TerminationStatus)] {
        var reaped: [(pid: Int32, status: TerminationStatus)] = []
        while true {
            var status: Int32 = 0
            let (pid, _) = retryingEINTR { waitpid(-1, &status, WNOHANG) }
            if pid <= 0 { return reaped }   // 0: children left but running; -1: ECHILD (or EINVAL)
            reaped.append((pid, TerminationStatus(waitStatus: status)))
        }
    }
}
