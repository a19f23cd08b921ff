import Testing
import KLCore
import KLSystem
@testable import KLProcess

/// runCapturing against real processes (sh, cat, head from the base system).
@Suite struct RunCapturingTests {
    @Test func capturesStdoutAndStderrSeparately() throws {
        let result = try runCapturing(["sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(result.stdoutText == "out\n")
        #expect(result.stderrText == "err\n")
        #expect(result.status == .exited(3))
    }

    /// A child writing 1 MB to stdout and to stderr at once deadlocks a
    /// reader that drains one pipe after the other (each pipe holds 64 KB).
    @Test(.timeLimit(.minutes(1)))
    func largeOutputOnBothPipes_isReadWithoutDeadlock() throws {
        let script = "head -c 1048576 /dev/zero & head -c 1048576 /dev/zero >&2; wait"
        let result = try runCapturing(["sh", "-c", script])
        #expect(result.status == .exited(0))
        #expect(result.stdout.count == 1_048_576)
        #expect(result.stderr.count == 1_048_576)
        #expect(result.stdout.allSatisfy { $0 == 0 })
    }

    @Test(.timeLimit(.minutes(1)))
    func stdinBytes_arePassedThrough() throws {
        let input = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let result = try runCapturing(["cat"], stdin: input)
        #expect(result.status == .exited(0))
        #expect(result.stdout == input)
    }

    /// A child that exits without reading stdin makes our write fail with
    /// EPIPE; that must neither kill the test process (SIGPIPE) nor throw.
    @Test(.timeLimit(.minutes(1)))
    func childIgnoringStdin_doesNotRaiseSIGPIPE() throws {
        let input = [UInt8](repeating: 65, count: 1_000_000)
        let result = try runCapturing(["sh", "-c", "exec 0<&-; echo done"], stdin: input)
        #expect(result.stdoutText == "done\n")
        #expect(result.status == .exited(0))
    }

    @Test(.timeLimit(.minutes(1)))
    func timeout_killsTheWholeGroup_andThrowsTimedOut() throws {
        let clock = MonotonicClock()
        let start = clock.now
        // The grandchild `sleep` holds stdout open: only a group kill ends it.
        #expect {
            _ = try runCapturing(["sh", "-c", "sleep 30; echo never"], timeout: .milliseconds(300))
        } throws: { error in
            (error as? ProcessError)?.code == .timedOut
        }
        #expect(clock.now - start < .seconds(10))
    }

    @Test func environment_replacesOurs() throws {
        let result = try runCapturing(["sh", "-c", "echo \"$ONLY_THIS\" \"${HOME:-unset}\""],
                                      environment: ["ONLY_THIS": "yes", "PATH": "/usr/bin:/bin"])
        #expect(result.stdoutText == "yes unset\n")
    }

    @Test func missingCommand_throwsCommandNotFound() {
        #expect {
            _ = try runCapturing(["kl-no-such-command-xyz"])
        } throws: { error in
            let error = error as? ProcessError
            return error?.code == .commandNotFound && error?.exitCode == 127
                && error?.description.contains("kl-no-such-command-xyz") == true
        }
    }
}
