#if canImport(Glibc)
import Glibc
#endif
import KLCore
import KLProcess
import Testing
import KLSupport

/// Issue 20, supervision rows, on the built binary against kube-apiserver-fake.
/// kube-leader is not PID 1 here (the test runner is its parent): the case
/// of tini in front, `shareProcessNamespace`, or `kill` from a sidecar.
@Suite(.serialized, .timeLimit(.minutes(2)))
struct KubeLeaderIssue20Tests {
    func startShell(_ cluster: Cluster, _ identity: String, _ shell: String, extra: [String] = []) throws -> Replica {
        let args = ["--lock-kind", cluster.kind.rawValue] + cluster.timing + extra + [cluster.lockName, "--", "sh", "-c", shell]
        let r = try Replica(identity: identity, arguments: args, environment: cluster.environment(identity: identity), dir: cluster.dir)
        cluster.replicas.append(r)
        return r
    }

    /// Row 6: signals kube-leader used to die of (default action) reach the
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
}
