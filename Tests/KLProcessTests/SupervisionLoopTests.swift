import Testing
import KLCore
import KLSystem
@testable import KLProcess

/// The primitives together, in the shape of kube-leader's loop (the sketch in
/// docs/supervision.md): a SIGTERM to us is forwarded to the child's group,
/// the child's trap exits 7, it is reaped, and the loop ends with the
/// child's status. In its own process (signal mask, subreaper, waitpid(-1)).
@Suite struct SupervisionLoopTests {
    @Test(.timeLimit(.minutes(1)))
    func sigtermToSupervisor_isForwarded_andChildCodeIsReturned() async {
        await #expect(processExitsWith: .exitCode(7)) {
            guard let inbox = try? SignalInbox(signals: Signal.forwarded) else { exit(100) }
            guard Reaper.becomeSubreaper() else { exit(101) }
            let ready = TestPipe()
            // "ready" only once `sleep` runs, so the group signal reaches it too
            // (a sleep forked after the signal would linger holding our stdout).
            let script = "trap 'exit 7' TERM; while :; do sleep 1 & echo ready; wait $!; done"
            guard let child = try? ChildProcess.spawn(["sh", "-c", script], standardOutput: ready.write)
            else { exit(102) }
            guard ready.readLine() == "ready" else { exit(103) }
            inbox.watchExit(of: child)
            pthread_kill(pthread_self(), SIGTERM)   // as if `docker stop` signalled us

            var status: TerminationStatus?
            var forwarded = 0
            let clock = MonotonicClock()
            let deadline = clock.now + .seconds(30)
            while status == nil && clock.now < deadline {
                for event in inbox.wait(timeout: .seconds(1)) {
                    if case .signal(let signal, _) = event, Signal.forwarded.contains(signal) {
                        guard (try? child.signalGroup(signal)) == true else { exit(104) }
                        forwarded += 1
                    }
                }
                for (pid, result) in Reaper.reapAll() where pid == child.pid { status = result }
            }
            guard forwarded == 1 else { exit(105) }
            exit(status?.exitCode ?? 106)
        }
    }

    /// With the inbox kube-leader opens (every forwarded
    /// signal, real-time ones included), none of them ends the process; each
    /// arrives through the signalfd. (Thread-directed: the test runner's own
    /// threads do not block them.)
    @Test(.timeLimit(.minutes(1)))
    func everyForwardedSignal_arrivesThroughTheInbox_andNoneEndsTheProcess() async {
        await #expect(processExitsWith: .exitCode(0)) {
            guard let inbox = try? SignalInbox(signals: Signal.forwardedHere + [.child]) else { exit(100) }
            for signal in Signal.forwardedHere {
                pthread_kill(pthread_self(), signal.rawValue)
                var got = false
                for _ in 0..<10 where !got {
                    got = inbox.wait(timeout: .seconds(1)).contains { event in
                        if case .signal(signal, _) = event { return true } else { return false }
                    }
                }
                guard got else { exit(signal.rawValue) }
            }
            exit(0)
        }
    }
}
