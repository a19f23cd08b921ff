import Testing
import KLCore
import KLSystem
import KLTestSupport
@testable import KLProcess

/// A FUSE mount whose files can be looked up but never opened
/// (scripts/lib/hung_fuse.py): the exec of a binary there hangs, as on a
/// FUSE or NFS mount whose server stopped answering. Needs root (CI is).
final class HungMount {
    let path: String
    let server: ChildProcess

    init() throws {
        let dir = makeTemporaryDirectory(prefix: "kl-hung")
        path = dir + "/mnt"
        mkdir(path, 0o755)
        let ready = dir + "/ready"
        server = try ChildProcess.spawn(["python3", TestPaths.packageRoot + "/scripts/lib/hung_fuse.py", path, ready])
        let clock = MonotonicClock()
        let deadline = clock.now + .seconds(20)
        while access(ready, F_OK) != 0 {
            if clock.now > deadline || (try? server.waitForExit(timeout: .milliseconds(20))) != nil {
                throw ProcessError(.spawnFailed, errno: 0, context: "hung_fuse.py did not mount \(path) (root needed)")
            }
        }
    }

    func stop() {
        server.signal(.terminate)
        if (try? server.waitForExit(timeout: .seconds(10))) == nil {
            server.signal(.kill)
            _ = try? server.waitForExit()
        }
    }
}

/// `startSupervised` returns at the fork; the exec and its
/// PATH search happen in the child; the outcome arrives on a pipe the
/// caller polls. Nothing here waits on the exec.
@Suite(.serialized, .timeLimit(.minutes(1)))
struct SupervisedStartTests {
    /// Waits for the child to exit (reaping it), then reads the report,
    /// which is complete once the child is gone.
    func finish(_ start: SupervisedStart) throws -> (TerminationStatus?, Result<Void, ProcessError>?) {
        let status = try start.child.waitForExit(timeout: .seconds(30))
        return (status, start.checkExec())
    }

    @Test func execSucceeds_reportsSuccess() throws {
        let start = try ChildProcess.startSupervised(["true"])
        let (status, report) = try finish(start)
        #expect(status == .exited(0))
        guard case .success? = report else { Issue.record("\(String(describing: report))"); return }
        #expect(start.checkExec() == nil, "reported once")
    }

    @Test func missingBareName_is127_namingThePath() throws {
        let start = try ChildProcess.startSupervised(["kl-no-such-command-xyz"], environment: ["PATH": "/nonexistent:/usr/bin"])
        let (status, report) = try finish(start)
        #expect(status == .exited(127))
        guard case .failure(let error)? = report else { Issue.record("\(String(describing: report))"); return }
        #expect(error.exitCode == 127)
        #expect(error.description.contains("not found in PATH (/nonexistent:/usr/bin)"), "\(error)")
    }

    @Test func notExecutable_is126_namingTheFile() throws {
        let dir = makeTemporaryDirectory()
        let file = dir + "/script"
        let fd = open(file, O_WRONLY | O_CREAT, 0o644)
        close(fd)
        // Found in PATH but without execute permission: EACCES (execvp's rule), 126.
        let start = try ChildProcess.startSupervised(["script"], environment: ["PATH": "/nonexistent:" + dir])
        let (status, report) = try finish(start)
        #expect(status == .exited(127))
        guard case .failure(let error)? = report else { Issue.record("\(String(describing: report))"); return }
        #expect(error.exitCode == 126)
        #expect(error.description.contains(file), "\(error)")
    }

    /// The exec hangs on a dead mount: the start returns at once, nothing
    /// is reported, and the child (its own group) is stopped by a signal to
    /// its group as at the renew deadline.
    @Test func execHangingOnADeadMount_neverBlocksTheCaller_andTheGroupSignalStopsIt() throws {
        let mount = try HungMount()
        defer { mount.stop() }
        let clock = MonotonicClock()
        let before = clock.now
        let start = try ChildProcess.startSupervised([mount.path + "/server"])
        #expect(clock.now - before < .seconds(1), "returned at the fork")
        var fds = [pollfd(fd: start.execReport, events: Int16(POLLIN), revents: 0)]
        #expect(poll(&fds, 1, 500) == 0, "no exec report: the exec hangs")
        #expect(start.checkExec() == nil)
        #expect(try start.child.signalGroup(.terminate))
        let status = try start.child.waitForExit(timeout: .seconds(10))
        #expect(status == .signaled(.terminate))
        if case .failure(let e)? = start.checkExec() { Issue.record("a killed exec is no spawn failure: \(e)") }
    }
}
