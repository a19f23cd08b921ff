import KLSystem
import Testing
import CShims
import KLCore
@testable import KLProcess

@Suite struct ChildProcessTests {
    @Test("the child's exit code passes through", arguments: [0, 1, 42, 255] as [Int32])
    func exitCode_passesThrough(code: Int32) throws {
        let status = try runToExit(["sh", "-c", "exit \(code)"])
        #expect(status == .exited(code))
        #expect(status?.exitCode == code)
    }

    @Test("death by a signal is 128+N", arguments: [(Signal.kill, 137), (Signal.terminate, 143)] as [(Signal, Int32)])
    func deathBySignal_isSignaled_with128PlusN(signal: Signal, expected: Int32) throws {
        let ready = TestPipe()
        defer { ready.close() }
        let child = try ChildProcess.spawn(["sh", "-c", "echo ready; exec sleep 60"], standardOutput: ready.write)
        #expect(ready.readLine() == "ready")
        #expect(try child.signalGroup(signal))
        let status = try child.waitForExit(timeout: .seconds(30))
        #expect(status == .signaled(signal))
        #expect(status?.exitCode == expected)
    }

    @Test func childLeadsItsOwnProcessGroup() throws {
        let out = TestPipe()
        defer { out.close() }
        let child = try ChildProcess.spawn(["sh", "-c", "cut -d' ' -f5 /proc/$$/stat"],
                                           standardOutput: out.write)
        let line = out.readLine()
        #expect(line == String(child.pid))
        #expect(try child.waitForExit(timeout: .seconds(30)) == .exited(0))
        #expect(getpgid(0) != child.pid)
    }

    /// Without a terminal on stdin (as in tests and most containers) asking
    /// for the foreground changes nothing and the child runs normally.
    /// (In its own process with stdin on /dev/null, so a developer's terminal is never touched.)
    @Test func foregroundTTY_withoutATerminal_stillRuns() async {
        await #expect(processExitsWith: .exitCode(4)) {
            let null = open("/dev/null", O_RDONLY)
            guard null >= 0, dup2(null, 0) == 0 else { exit(10) }
            guard let child = try? ChildProcess.spawn(["sh", "-c", "exit 4"], foregroundTTY: true),
                  let status = try? child.waitForExit(timeout: .seconds(30)) else { exit(11) }
            exit(status.exitCode)
        }
    }

    @Test func signalGroup_afterTheGroupIsGone_returnsFalse() throws {
        let child = try ChildProcess.spawn(["true"])
        #expect(try child.waitForExit(timeout: .seconds(30)) == .exited(0))
        #expect(try child.signalGroup(.terminate) == false)
        #expect(child.signal(.terminate) == false)
    }

    @Test func waitForExit_withTimeout_returnsNilWhileRunning() throws {
        let child = try ChildProcess.spawn(["sleep", "60"])
        #expect(try child.waitForExit(timeout: .milliseconds(50)) == nil)
        #expect(child.signal(.kill))
        #expect(try child.waitForExit(timeout: .seconds(30)) == .signaled(.kill))
    }

    /// Each signal a supervisor forwards reaches the child's process group,
    /// and the child's own trap for it runs (tini `run_inner_tests.py`).
    @Test("a forwarded signal reaches the child", .timeLimit(.minutes(1)), arguments: Signal.forwarded)
    func forwardedSignal_reachesTheChildsTrap(signal: Signal) throws {
        let traps = Signal.forwarded.enumerated()
            .map { "trap 'exit \(20 + $0.offset)' \($0.element.rawValue)" }
            .joined(separator: "; ")
        let script = "\(traps); while :; do sleep 1 & echo ready; wait $!; done"
        let ready = TestPipe()
        defer { ready.close() }
        let child = try ChildProcess.spawn(["sh", "-c", script], standardOutput: ready.write)
        #expect(ready.readLine() == "ready")
        #expect(try child.signalGroup(signal))
        let expected = Int32(20 + Signal.forwarded.firstIndex(of: signal)!)
        let status = try child.waitForExit(timeout: .seconds(30))
        if status == nil { try child.signalGroup(.kill); _ = try child.waitForExit() }
        #expect(status == .exited(expected))
    }

    @Test func signalNames() {
        #expect(Signal.terminate.name == "SIGTERM")
        #expect(Signal.windowChange.description == "SIGWINCH")
        #expect(Signal(rawValue: 40).name == "SIG40")
        #expect(Signal.forwarded.count == 18)
        let rtmin = Int32(cshims_sigrtmin()), rtmax = Int32(cshims_sigrtmax())
        #expect(Signal.forwardedHere.suffix(2).map(\.rawValue) == [rtmax - 1, rtmax])
        #expect(Signal.forwardedHere.contains(Signal(rawValue: rtmin)))
        #expect(!Signal.forwardedHere.contains(Signal(rawValue: rtmin - 1)), "the C library's own signal")
    }
}

/// 127 and 126, known before spawn returns, for spawn and for exec.
@Suite struct CommandErrorTests {
    @Test func missingBareName_isCommandNotFound127() {
        #expect {
            _ = try ChildProcess.spawn(["kl-no-such-command-xyz"])
        } throws: { error in
            let error = error as? ProcessError
            return error?.code == .commandNotFound && error?.exitCode == 127
                && error?.description.contains("not found in PATH") == true
        }
    }

    @Test func missingAbsolutePath_isCommandNotFound127() {
        #expect {
            _ = try ChildProcess.spawn(["/nonexistent/kl-dir/tool"])
        } throws: { error in
            let error = error as? ProcessError
            return error?.code == .commandNotFound && error?.errno == ENOENT && error?.exitCode == 127
        }
    }

    @Test func commandIsLookedUp_inTheChildsPATH() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        dir.file("kl-only-here", contents: "#!/bin/sh\nexit 9\n", mode: 0o755)
        #expect(try runToExit(["kl-only-here"], environment: ["PATH": dir.path]) == .exited(9))
        #expect(throws: ProcessError.self) { _ = try ChildProcess.spawn(["kl-only-here"]) }
    }

    /// Spawning `argv` fails as not executable, exit code 126.
    func expectNotExecutable126(_ argv: [String], environment: [String: String]?, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(sourceLocation: sourceLocation) {
            _ = try ChildProcess.spawn(argv, environment: environment)
        } throws: { error in
            let error = error as? ProcessError
            return error?.code == .notExecutable && error?.exitCode == 126
        }
    }

    @Test func nonExecutableFile_isNotExecutable126() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let file = dir.file("plain", contents: "#!/bin/sh\nexit 0\n", mode: 0o644)
        for (argv, env) in [([file], nil), (["plain"], ["PATH": dir.path])] as [([String], [String: String]?)] {
            expectNotExecutable126(argv, environment: env)
        }
    }

    @Test func directory_isNotExecutable126() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        _ = mkdir(dir.path + "/subdir", 0o755)
        for (argv, env) in [([dir.path], nil), (["subdir"], ["PATH": dir.path])] as [([String], [String: String]?)] {
            expectNotExecutable126(argv, environment: env)
        }
    }

    /// A later PATH entry with a real executable wins over an earlier
    /// non-executable file of the same name, as with execvp.
    @Test func nonExecutableEarlierInPATH_isSkipped() throws {
        let first = TemporaryDirectory(), second = TemporaryDirectory()
        defer { first.remove(); second.remove() }
        first.file("tool", contents: "#!/bin/sh\nexit 1\n", mode: 0o644)
        second.file("tool", contents: "#!/bin/sh\nexit 7\n", mode: 0o755)
        #expect(try runToExit(["tool"], environment: ["PATH": "\(first.path):\(second.path)"]) == .exited(7))
    }

    @Test func emptyArgv_isCommandNotFound() {
        #expect(throws: ProcessError.self) { _ = try ChildProcess.spawn([]) }
    }

    @Test func execReplacingProcess_failures_return127And126() throws {
        #expect(execReplacingProcess(["kl-no-such-command-xyz"]).exitCode == 127)
        #expect(execReplacingProcess(["/nonexistent/tool"]).exitCode == 127)
        #expect(execReplacingProcess(["/tmp"]).exitCode == 126)
    }

    /// Signals the supervisor blocked for its inbox must not stay blocked in
    /// the program that replaces it (the mask survives execve).
    @Test func execReplacingProcess_unblocksSignalsForTheNewProgram() async {
        await #expect(processExitsWith: .exitCode(42)) {
            guard (try? SignalInbox(signals: Signal.forwarded)) != nil else { exit(10) }
            let check = "test \"$(grep SigBlk /proc/self/status | cut -f2)\" = 0000000000000000 && exit 42; exit 1"
            _ = execReplacingProcess(["sh", "-c", check])
            exit(11)
        }
    }

    @Test func execReplacingProcess_runsTheCommandInOurPlace() async {
        await #expect(processExitsWith: .exitCode(42)) {
            _ = execReplacingProcess(["sh", "-c", "exit 42"], environment: ["PATH": "/usr/bin:/bin"])
        }
    }
}
