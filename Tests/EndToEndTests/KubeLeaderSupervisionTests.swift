import KLCore
import KLProcess
import Testing
import KLSystem

/// The supervision rows of docs/simulation.md's table, on the built binary against kube-apiserver-fake:
/// - row 3: what the child leaves behind (`sh -c 'worker & exit 0'`, a
///   grandchild that left the group with setsid) is killed and reaped before
///   the lock is released, and on lease loss before kube-leader exits 3;
/// - row 5: the main thread stops the child on its own renew deadline while
///   the election thread is blocked (here: on a stderr nobody reads);
/// - row 6: SIGTERM while an acquire is in flight: the acquire that lands is
///   released before the exit, nothing is started.
/// kube-leader is not PID 1 here (the test runner is its parent): it relies
/// on PR_SET_CHILD_SUBREAPER, the case the issue describes.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct KubeLeaderSupervisionTests {
    /// Starts a replica running `shell` (a `sh -c` script) instead of a worker.
    func startShell(_ cluster: Cluster, _ identity: String, _ shell: String, token: String? = nil) throws -> Replica {
        let args = ["--lock-kind", cluster.kind.rawValue] + cluster.timing + [cluster.lockName, "--", "sh", "-c", shell]
        let r = try Replica(identity: identity, arguments: args, environment: cluster.environment(identity: identity, token: token),
                            dir: cluster.dir)
        cluster.replicas.append(r)
        return r
    }

    /// The worker command line for a background process `id` (same log and
    /// flock as every worker: if it outlives the lock, the next worker sees
    /// its flock and records an overlap).
    func worker(_ cluster: Cluster, _ id: String) -> String {
        "python3 \(Paths.worker) \(cluster.workerLog) \(cluster.workerLock) \(id)"
    }

    /// Row 3: `sh -c 'worker & exit 0'`. The background worker is killed and
    /// reaped before the release; the next leader's worker then gets the
    /// flock. With `setsid` the worker leaves the child's process group, so
    /// only the /proc walk over our descendants (as subreaper) finds it.
    @Test(arguments: [false, true])
    func childLeavesABackgroundProcess_itIsKilledBeforeTheLockIsReleased(setsid: Bool) throws {
        let cluster = try Cluster()
        let pidFile = cluster.dir.file("bg.pid")
        let a = try startShell(cluster, "a", "\(setsid ? "setsid " : "")\(worker(cluster, "a-bg")) & echo $! > \(pidFile); sleep 1; exit 0")
        #expect(eventually { cluster.log.starts.contains { $0.id == "a-bg" } }, "\(cluster.diagnostics)")
        let b = try cluster.start("b")
        #expect(eventually { b.log.contains("held by another replica") }, "\(cluster.diagnostics)")

        #expect(a.wait()?.exitCode == 0, "\(a.log)")
        #expect(eventually { cluster.log.starts.contains { $0.id == "b" } }, "\(cluster.diagnostics)")
        cluster.expectNoOverlap()
        #expect(cluster.log.stops.allSatisfy { $0.id != "a-bg" }, "a-bg was SIGKILLed, it records no stop")

        // The kill came before the release, in kube-leader's own account.
        let log = a.log
        let lines = log.split(separator: "\n")
        let killed = try #require(lines.firstIndex { $0.contains("killed the remaining processes of the child") }, "\(log)")
        let released = try #require(lines.firstIndex { $0.contains("\"msg\":\"released lock\"") }, "\(log)")
        #expect(killed < released)
        let pid = try #require(Int32(readFile(pidFile).trimmingWhitespace))
        #expect(log.contains("\(pid)"), "the background worker's pid is among the killed: \(log)")
        #expect(kill(pid, 0) == -1 && errno == ESRCH, "the background worker is gone")
    }

    /// Row 3 on lease loss: the child ignores SIGTERM and has a setsid'd
    /// helper; after the kill grace the group and the helper get SIGKILL,
    /// everything is reaped, kube-leader exits 3, and the standby's worker
    /// (after the lease) finds no flock left behind.
    @Test(arguments: [LockKind.configMap, .lease])
    func leaseLost_childAndEverythingItStartedAreKilledBeforeExit3(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        try cluster.server.registerToken("token-a")
        try cluster.server.registerToken("token-b")
        let a = try startShell(cluster, "a", "trap '' TERM; setsid \(worker(cluster, "a-bg")) & sleep 1000", token: "token-a")
        #expect(eventually { cluster.log.starts.contains { $0.id == "a-bg" } }, "\(cluster.diagnostics)")
        let b = try cluster.start("b", token: "token-b")
        #expect(eventually { b.log.contains("held by another replica") }, "\(cluster.diagnostics)")

        try cluster.server.setFaults(["partitionedTokens": ["token-a"], "partitionMode": "reset"])
        #expect(a.wait(.seconds(15))?.exitCode == 3, "\(a.log)")
        let log = a.log
        #expect(log.contains("killing child: it did not stop within the kill grace"), "\(log)")
        #expect(log.contains("killed the remaining processes of the child"), "\(log)")
        #expect(eventually(.seconds(15)) { cluster.log.starts.contains { $0.id == "b" } }, "\(cluster.diagnostics)")
        cluster.expectNoOverlap()
    }

    /// Row 6: SIGTERM lands while the create is in flight (the fake server
    /// delays every answer by 600 ms). The create lands after the signal;
    /// kube-leader must release it before exiting 143, and start nothing.
    @Test func sigtermWhileTheAcquireIsInFlight_releasesWhatLanded_startsNothing() throws {
        let cluster = try Cluster()
        try cluster.server.registerToken("sigterm-a")
        try cluster.server.setFaults(["latencyMs": 600])
        let a = try cluster.start("a", token: "sigterm-a")
        // The server counts a request when it arrives, before the delay.
        #expect(eventually(.seconds(20)) {
            let (_, stats) = (try? cluster.server.request("GET", "/fake/stats")) ?? (0, nil)
            return (stats?["byToken"]?["sigterm-"]?["create"]?.intValue ?? 0) >= 1
        }, "\(a.log)")
        a.signal(.terminate)
        #expect(a.wait(.seconds(10))?.exitCode == 143, "\(a.log)")
        // The create was sent, so it lands (600 ms after it arrived) if it
        // has not yet: wait for the object, then it must not name a dead holder.
        #expect(eventually(.seconds(5)) { cluster.server.lock(.configMap, name: cluster.lockName) != nil }, "the create landed")
        try cluster.server.setFaults(["latencyMs": 0])
        let holder = cluster.holder
        #expect(holder == "", "a dead process holds the lock: \(a.log)")
        #expect(cluster.log.starts.isEmpty, "nothing was started")
        #expect(a.log.contains("stopping before leading"), "\(a.log)")
        #expect(a.log.contains("\"msg\":\"released lock\""), "\(a.log)")
    }

    struct BlockedCase: CustomTestStringConvertible, Sendable {
        var kind: LockKind
        /// The worker ignores SIGTERM: only the SIGKILL at deadline + kill
        /// grace stops it, sent by a main thread whose own log writes find
        /// stderr full too.
        var ignoresSigterm: Bool
        var testDescription: String { "\(kind.rawValue)\(ignoresSigterm ? ", child ignores SIGTERM" : "")" }
    }

    /// Row 5: the election thread blocks (its log writes go to a stderr
    /// nobody reads, and its renews hang) longer than the renew deadline.
    /// The main thread stops the child on its own deadline anyway, before a
    /// standby could see the lease expire: lease after the last change of
    /// the lock that an observer (this test, polling) saw. "Stopped" is when
    /// the test can take the worker's flock: the child is dead.
    @Test(arguments: [BlockedCase(kind: .configMap, ignoresSigterm: false), BlockedCase(kind: .lease, ignoresSigterm: false),
                      BlockedCase(kind: .configMap, ignoresSigterm: true)])
    func electionThreadBlocked_mainThreadStopsTheChildOnItsOwnDeadline(_ c: BlockedCase) throws {
        let cluster = try Cluster(kind: c.kind)
        try cluster.server.registerToken("token-a")
        let output = StalledOutput()
        let args = ["--lock-kind", c.kind.rawValue] + cluster.timing
            + [cluster.lockName, "--", "python3", Paths.worker, cluster.workerLog, cluster.workerLock, "a"]
            + (c.ignoresSigterm ? ["--ignore-term"] : [])
        let process = try ChildProcess.spawn([Paths.kubeLeader] + args, environment: cluster.environment(identity: "a", token: "token-a"),
                                             standardOutput: output.writeEnd, standardError: output.writeEnd)
        var status: TerminationStatus?
        defer {
            if status == nil {
                _ = process.signal(.kill)
                output.drain(for: .milliseconds(200))
                _ = try? process.waitForExit(timeout: .seconds(5))
            }
        }
        #expect(eventually { output.drain(for: .zero); return cluster.log.starts.count == 1 }, "\(output.text)")
        let flock = FlockProbe(path: cluster.workerLock)
        #expect(!flock.take(), "the worker holds its flock")

        // Watch the lock as a standby would: when did it last change?
        var lastVersion = cluster.server.lock(c.kind, name: cluster.lockName)?.resourceVersion
        var lastChange = MonotonicClock.now
        let watch = {
            let version = cluster.server.lock(c.kind, name: cluster.lockName)?.resourceVersion
            if version != lastVersion { lastVersion = version; lastChange = MonotonicClock.now }
        }
        #expect(eventually(.seconds(5)) { output.drain(for: .zero); watch(); return lastChange.duration(to: .now) < .milliseconds(300) },
                "a renew was seen")

        // Block the election thread: stderr full, renews hang.
        #expect(output.fill(), "the pipe could be filled")
        try cluster.server.setFaults(["partitionedTokens": ["token-a"], "partitionMode": "hang"])
        var stoppedAt: MonotonicClock.Instant?
        #expect(eventually(.seconds(10)) {
            watch()
            if flock.take() { stoppedAt = .now }
            return stoppedAt != nil
        }, "the child was never stopped")
        let stopped = try #require(stoppedAt)
        let sinceRenew = lastChange.duration(to: stopped)
        #expect(sinceRenew < .seconds(4), "stopped \(sinceRenew) after the last renew seen, lease 4s")
        #expect(sinceRenew > .seconds(1), "not before the renew deadline: \(sinceRenew)")

        // Unblock stderr: kube-leader finishes the stop and exits 3.
        #expect(eventually(.seconds(15)) {
            output.drain(for: .zero)
            status = try? process.waitForExit(timeout: .zero)
            return status != nil
        })
        #expect(status == .exited(3), "\(output.text)")
    }
}

/// Takes the workers' flock without waiting: success means no worker (and
/// nothing a worker left) holds it any more.
final class FlockProbe {
    let fd: Int32
    init(path: String) { fd = open(path, O_RDWR | O_CLOEXEC) }
    deinit { if fd >= 0 { close(fd) } }
    func take() -> Bool { fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0 }
}

/// kube-leader's stdout+stderr as a pipe the test reads, or stops reading and
/// fills, so every write to it blocks.
final class StalledOutput {
    let readEnd: Int32
    let writeEnd: Int32
    private(set) var bytes: [UInt8] = []
    var text: String { String(decoding: bytes, as: UTF8.self) }

    init() {
        var fds: [Int32] = [0, 0]
        precondition(pipe(&fds) == 0)
        readEnd = fds[0]
        writeEnd = fds[1]
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        let flags = fcntl(readEnd, F_GETFL)
        _ = fcntl(readEnd, F_SETFL, flags | O_NONBLOCK)
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    /// Reads what is there (and keeps reading for `duration`).
    func drain(for duration: Duration) {
        let until = MonotonicClock.now + duration
        var buffer = [UInt8](repeating: 0, count: 65536)
        repeat {
            while true {
                let n = read(readEnd, &buffer, buffer.count)
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            if duration > .zero {
                var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
                nanosleep(&pause, nil)
            }
        } while MonotonicClock.now < until
    }

    /// Fills the pipe through a second, non-blocking open file description
    /// (O_NONBLOCK on the shared one would make kube-leader's writes fail
    /// instead of block). Returns false if it could not.
    func fill() -> Bool {
        drain(for: .zero)
        let fd = open("/proc/self/fd/\(writeEnd)", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        let chunk = [UInt8](repeating: UInt8(ascii: "."), count: 4096)
        var total = 0
        while true {
            let n = write(fd, chunk, chunk.count)
            if n > 0 { total += n; continue }
            // A partial page may still fit: fill it byte by byte.
            var byte: UInt8 = UInt8(ascii: ".")
            while write(fd, &byte, 1) == 1 { total += 1 }
            return errno == EAGAIN && total > 0
        }
    }
}
