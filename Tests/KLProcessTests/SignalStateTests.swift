import CShims
import Testing
import KLCore
import KLSystem
@testable import KLProcess

/// The "SigBlk:" and "SigIgn:" lines of a /proc status file, as hex strings.
func signalLines(_ status: String) -> (blocked: String?, ignored: String?) {
    var blocked: String?, ignored: String?
    for line in status.split(separator: "\n") {
        let parts = line.split(separator: "\t")
        guard parts.count == 2 else { continue }
        if parts[0] == "SigBlk:" { blocked = String(parts[1]) }
        if parts[0] == "SigIgn:" { ignored = String(parts[1]) }
    }
    return (blocked, ignored)
}

/// The child must not inherit a supervisor's signal state: kube-leader
/// blocks SIGTERM & co. for its signalfd, and a child with them blocked or
/// ignored would never see a forwarded SIGTERM. glibc's posix_spawn would
/// also leave its internal signals 32/33 ignored without SETSIGDEF covering
/// them (regression guard for the memset in cshims_spawn).
@Suite struct SignalStateTests {
    @Test(.timeLimit(.minutes(1)))
    func child_hasEmptyMaskAndDefaultDispositions_thoughParentBlocksAndIgnores() async {
        // In a separate process: ignoring signals is process-wide.
        await #expect(processExitsWith: .exitCode(0)) {
            var mask = sigset_t()
            sigemptyset(&mask)
            for signal in [SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGCHLD, SIGWINCH] { sigaddset(&mask, signal) }
            guard pthread_sigmask(SIG_BLOCK, &mask, nil) == 0 else { exit(10) }
            guard cshims_set_signal_ignored(SIGUSR2, 1) == 0, cshims_set_signal_ignored(SIGQUIT, 1) == 0 else { exit(11) }
            // Sanity: this thread really blocks and ignores something.
            let fd = open("/proc/thread-self/status", O_RDONLY | O_CLOEXEC)
            var buffer = [UInt8](repeating: 0, count: 8192)
            let n = read(fd, &buffer, buffer.count)
            close(fd)
            let parent = signalLines(String(decoding: buffer[0..<max(n, 0)], as: UTF8.self))
            guard parent.blocked != nil, parent.blocked != "0000000000000000" else { exit(13) }
            guard parent.ignored != nil, parent.ignored != "0000000000000000" else { exit(14) }

            for argv in [["grep", "-E", "SigBlk|SigIgn", "/proc/self/status"],
                         ["sh", "-c", "grep -E 'SigBlk|SigIgn' /proc/self/status"]] {
                guard let result = try? runCapturing(argv, timeout: .seconds(30)) else { exit(15) }
                let child = signalLines(result.stdoutText)
                guard child.blocked == "0000000000000000" else { exit(16) }
                guard child.ignored == "0000000000000000" else { exit(17) }
            }
            exit(0)
        }
    }
}

/// SignalInbox, each in its own process: blocking signals changes the test
/// thread, and the inbox must see what it blocked.
@Suite struct SignalInboxTests {
    /// A thread-directed signal (pthread_kill to ourselves) is blocked by the
    /// inbox and read back through the signalfd with our pid as sender.
    @Test(.timeLimit(.minutes(1)))
    func signalToOurThread_arrivesAsEvent_withSenderPID() async {
        await #expect(processExitsWith: .exitCode(0)) {
            guard let inbox = try? SignalInbox(signals: [.terminate, .user1, .hangup]) else { exit(10) }
            guard inbox.signals.contains(.child) else { exit(11) }
            pthread_kill(pthread_self(), SIGUSR1)
            pthread_kill(pthread_self(), SIGHUP)
            let events = inbox.wait(timeout: .seconds(20))
            guard events.contains(.signal(.user1, senderPID: getpid())) else { exit(12) }
            guard events.contains(.signal(.hangup, senderPID: getpid())) else { exit(13) }
            guard events.count == 2 else { exit(14) }
            exit(0)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func wait_timesOut_withNoEvents() async {
        await #expect(processExitsWith: .exitCode(0)) {
            guard let inbox = try? SignalInbox(signals: [.terminate]) else { exit(10) }
            let clock = MonotonicClock()
            let start = clock.now
            guard inbox.wait(timeout: .milliseconds(100)).isEmpty else { exit(11) }
            guard clock.now - start >= .milliseconds(100) else { exit(12) }
            exit(0)
        }
    }

    /// wake() from another thread ends a wait without a signal; many wakes are one event.
    @Test(.timeLimit(.minutes(1)))
    func wakeFromAnotherThread_endsWait() async {
        await #expect(processExitsWith: .exitCode(0)) {
            guard let inbox = try? SignalInbox(signals: [.terminate]) else { exit(10) }
            let task = Task.detached { inbox.wake(); inbox.wake() }
            _ = task
            let events = inbox.wait(timeout: .seconds(20))
            guard events == [.wake] else { exit(11) }
            exit(0)
        }
    }

    /// A watched child's exit is reported as SIGCHLD from its pid, whether or
    /// not the real SIGCHLD reached our thread; the child is not reaped by it.
    @Test(.timeLimit(.minutes(1)))
    func watchedChildExit_arrivesAsChildSignal() async {
        await #expect(processExitsWith: .exitCode(0)) {
            guard let inbox = try? SignalInbox(signals: [.terminate]) else { exit(10) }
            guard let child = try? ChildProcess.spawn(["sh", "-c", "exit 5"]) else { exit(11) }
            guard inbox.watchExit(of: child) else { exit(12) }
            let clock = MonotonicClock()
            let deadline = clock.now + .seconds(20)
            var sawChild = false
            while !sawChild && clock.now < deadline {
                for event in inbox.wait(timeout: deadline - clock.now) {
                    if case .signal(.child, let pid) = event, pid == child.pid { sawChild = true }
                }
            }
            guard sawChild else { exit(13) }
            guard (try? child.waitForExit(timeout: .seconds(20))) == .exited(5) else { exit(14) }
            exit(0)
        }
    }
}

/// Reaping orphans, in its own process: waitpid(-1) would otherwise take the
/// children of tests running in parallel.
@Suite struct ReaperTests {
    /// `sh` starts a grandchild and exits before it: as a subreaper we inherit
    /// the orphan, and reapAll collects it (waitpid(-1) only returns our own
    /// children, so seeing its pid proves the re-parenting).
    @Test(.timeLimit(.minutes(1)))
    func orphanedGrandchild_isReaped_bySubreaper() async {
        await #expect(processExitsWith: .exitCode(0)) {
            guard Reaper.becomeSubreaper() else { exit(10) }
            // The grandchild keeps stdout open for 0.2 s, so runCapturing
            // returns after it has finished and sh has been reaped.
            guard let result = try? runCapturing(["sh", "-c", "sleep 0.2 & echo $!"], timeout: .seconds(20)),
                  result.status == .exited(0),
                  let grandchild = Int32(result.stdoutText.filter { !$0.isWhitespace })
            else { exit(11) }
            // Exit is complete (zombie) once its pidfd polls readable.
            guard (try? waitUntilExited(pid: grandchild, timeout: .seconds(20))) == true else { exit(12) }
            let reaped = Reaper.reapAll()
            guard reaped.count == 1, reaped[0].pid == grandchild, reaped[0].status == .exited(0) else { exit(13) }
            guard Reaper.reapAll().isEmpty else { exit(14) }
            exit(0)
        }
    }

    @Test(.timeLimit(.minutes(1)))
    func reapAll_collectsExitedChildren_withTheirStatus() async {
        await #expect(processExitsWith: .exitCode(0)) {
            guard let a = try? ChildProcess.spawn(["sh", "-c", "exit 3"]),
                  let b = try? ChildProcess.spawn(["sh", "-c", "kill -KILL $$"]) else { exit(10) }
            for child in [a, b] {
                guard (try? waitUntilExited(pid: child.pid, timeout: .seconds(20))) == true else { exit(11) }
            }
            let reaped = Dictionary(uniqueKeysWithValues: Reaper.reapAll().map { ($0.pid, $0.status) })
            guard reaped[a.pid] == .exited(3), reaped[b.pid] == .signaled(.kill), reaped.count == 2 else { exit(12) }
            exit(0)
        }
    }
}
