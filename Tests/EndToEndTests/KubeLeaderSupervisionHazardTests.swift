import KLCore
import KLProcess
import Testing
import KLSystem

/// Supervision hazards (forwarded signals, an exec that hangs, an exit while
/// OpenSSL runs) on the built binary against kube-apiserver-fake.
/// kube-leader is not PID 1 here (the test runner is its parent): the case
/// of tini in front, `shareProcessNamespace`, or `kill` from a sidecar.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct KubeLeaderSupervisionHazardTests {
    func startShell(_ cluster: Cluster, _ identity: String, _ shell: String, extra: [String] = []) throws -> Replica {
        let args = ["--lock-kind", cluster.kind.rawValue] + cluster.timing + extra + [cluster.lockName, "--", "sh", "-c", shell]
        let r = try Replica(identity: identity, arguments: args, environment: cluster.environment(identity: identity), dir: cluster.dir)
        cluster.replicas.append(r)
        return r
    }

    /// Signals kube-leader used to die of (default action) reach the
    /// child's group; kube-leader lives on and releases when the child exits.
    /// (SIGTSTP is forwarded too, but it stops the shell's `sleep`, and dash
    /// runs no trap for it: `SupervisionTests` and `SupervisionLoopTests` cover it.)
    @Test func signalsTiniForwards_reachTheChild_andNoneEndsKubeLeader() throws {
        let cluster = try Cluster()
        let seen = cluster.dir.file("seen")
        let ready = cluster.dir.file("ready")
        let stop = cluster.dir.file("stop")
        let realtime = Signal.forwardedHere.map(\.rawValue).filter { $0 > 31 }
        let numbers: [Int32] = [SIGPWR, SIGALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGURG, SIGUSR1, SIGWINCH,
                                SIGCONT, SIGIO, realtime[0], realtime[3], realtime.last!]
        let traps = numbers.map { "trap 'echo \($0) >> \(seen)' \($0)" }.joined(separator: "; ")
        let a = try startShell(cluster, "a", "\(traps); echo up > \(ready); while [ ! -e \(stop) ]; do sleep 0.05; done; exit 0")
        #expect(eventually { fileExists(ready) }, "\(cluster.diagnostics)")
        for number in numbers {
            a.signal(Signal(rawValue: number))
            #expect(eventually { readFile(seen).split(separator: "\n").contains(Substring("\(number)")) },
                    "SIG\(number) reached the child: \(a.log)")
            #expect(a.wait(.milliseconds(1)) == nil, "kube-leader lives after signal \(number): \(a.log)")
        }
        writeFile(stop, "")
        #expect(a.wait()?.exitCode == 0, "\(a.log)")
        #expect(a.log.contains("\"msg\":\"released lock\""), "\(a.log)")
    }

    /// The command is a binary on a FUSE mount that stopped answering
    /// (scripts/lib/hung_fuse.py; the hang is killable, as an NFS hard
    /// mount's). The exec hangs; the main thread does not wait for it, so
    /// when the renews fail the renew deadline still stops the hung child,
    /// and kube-leader exits 3 within renew deadline + kill grace.
    @Test func execHangingOnADeadMount_theRenewDeadlineStillStopsIt() throws {
        let mount = try HungMount()
        defer { mount.stop() }
        let cluster = try Cluster()
        try cluster.server.registerToken("token-a")
        let args = ["--lock-kind", cluster.kind.rawValue] + cluster.timing + [cluster.lockName, "--", mount.path + "/server"]
        let a = try Replica(identity: "a", arguments: args, environment: cluster.environment(identity: "a", token: "token-a"), dir: cluster.dir)
        cluster.replicas.append(a)
        #expect(eventually { a.log.contains("started child") }, "\(a.log)")
        #expect(a.wait(.seconds(1)) == nil, "still leading while the exec hangs: \(a.log)")
        let clock = MonotonicClock()
        let cut = clock.now
        try cluster.server.setFaults(["partitionedTokens": ["token-a"], "partitionMode": "reset"])
        #expect(a.wait(.seconds(15))?.exitCode == 3, "\(a.log)")
        // Renew deadline 2 s + kill grace 1 s, counted from the last renew (before the cut).
        #expect(clock.now - cut < .seconds(5), "stopped at the deadline: \(a.log)")
        #expect(a.log.contains("stopping child: leadership lost"), "\(a.log)")
    }

    /// SIGTERM while the exec hangs is forwarded to the child's
    /// group at once (the main loop is not stuck in the exec): kube-leader
    /// exits with the child's 143 and releases the lock.
    @Test func sigtermWhileTheExecHangs_isForwarded_andTheLockReleased() throws {
        let mount = try HungMount()
        defer { mount.stop() }
        let cluster = try Cluster()
        let args = ["--lock-kind", cluster.kind.rawValue] + cluster.timing + [cluster.lockName, "--", mount.path + "/server"]
        let a = try Replica(identity: "a", arguments: args, environment: cluster.environment(identity: "a"), dir: cluster.dir)
        cluster.replicas.append(a)
        #expect(eventually { a.log.contains("started child") }, "\(a.log)")
        a.signal(.terminate)
        #expect(a.wait(.seconds(5))?.exitCode == 143, "\(a.log)")
        #expect(a.log.contains("\"msg\":\"released lock\""), "\(a.log)")
    }

    /// kube-leader exits (SIGTERM while standing by: 143 at once,
    /// nothing held) while its election thread is inside OpenSSL: the API
    /// server's bytes come through a proxy one at a time, so that thread
    /// spends the whole handshake and read in OpenSSL's code. exit() would
    /// run OpenSSL's atexit clean-up under it (freeing what it uses);
    /// kube-leader ends with `_exit` after its last log line. The exit code
    /// must be 143 every time, never a crash.
    @Test func exitWhileTheElectionThreadIsInsideOpenSSL_alwaysHasTheRightCode() throws {
        let cluster = try Cluster()
        let portFile = cluster.dir.file("proxy.json")
        let out = openForOutput(portFile)
        let proxy = try ChildProcess.spawn(["python3", Paths.root + "/scripts/lib/dribble_proxy.py", "127.0.0.1", "\(cluster.server.port)", "1"],
                                           standardOutput: out)
        close(out)
        defer { proxy.signal(.kill); _ = try? proxy.waitForExit(timeout: .seconds(5)) }
        #expect(eventually { readFile(portFile).contains("port") })
        let port = try #require(try? JSON.parse(readFile(portFile))["port"]?.intValue)
        var environment = cluster.environment(identity: "a")
        environment["KUBE_LEADER_API_SERVER"] = "https://127.0.0.1:\(port)"
        var rng = SystemRandomNumberGenerator()
        for run in 0..<20 {
            let r = try Replica(identity: "a\(run)", arguments: ["--lock-kind", cluster.kind.rawValue] + cluster.timing + [cluster.lockName, "--", "true"],
                                environment: environment, dir: cluster.dir)
            // Somewhere in the first request's handshake or answer (about 2-3 s of dribbled bytes).
            let clock = MonotonicClock()
            let until = clock.now + .milliseconds(Int64.random(in: 100...1500, using: &rng))
            while clock.now < until { _ = r.wait(.milliseconds(20)) }
            r.signal(.terminate)
            let status = r.wait(.seconds(10))
            #expect(status == .exited(143), "run \(run): \(String(describing: status)) \(r.log)")
            if status != .exited(143) { break }
        }
        #expect(cluster.log.starts.isEmpty)
    }
}

/// A FUSE mount whose files can be looked up but never opened
/// (scripts/lib/hung_fuse.py). Needs root (CI is).
final class HungMount {
    let dir = TempDir()   // removed after the unmount (stop)
    let path: String
    let server: ChildProcess

    init() throws {
        path = dir.file("mnt")
        mkdir(path, 0o755)
        let ready = dir.file("ready")
        server = try ChildProcess.spawn(["python3", Paths.root + "/scripts/lib/hung_fuse.py", path, ready])
        #expect(eventually(.seconds(20)) { fileExists(ready) }, "hung_fuse.py mounted \(path) (root needed)")
    }

    func stop() {
        server.signal(.terminate)
        if (try? server.waitForExit(timeout: .seconds(10))) == nil {
            server.signal(.kill)
            _ = try? server.waitForExit()
        }
    }
}
