import Testing
import KLSystem
@testable import KLProcess

/// /proc parsing and the kill of everything below us (what a
/// child leaves behind is killed and reaped before the lock is released).
@Suite struct ProcessTreeTests {
    @Test func parseStat_readsFieldsAfterTheLastParenthesis() {
        let plain = ProcessTree.parseStat("4242 (sleep) S 100 4242 100 0 -1 4194560 ...")
        #expect(plain == ProcessTree.Entry(pid: 4242, state: "S", parent: 100, group: 4242))
        // A comm with spaces and ")" in it (a process may name itself so).
        let odd = ProcessTree.parseStat("77 (a) b (c) Z 1 70 70 0")
        #expect(odd == ProcessTree.Entry(pid: 77, state: "Z", parent: 1, group: 70))
        #expect(ProcessTree.parseStat("") == nil)
        #expect(ProcessTree.parseStat("12 (x) R") == nil)
        #expect(ProcessTree.parseStat("x (x) R 1 1") == nil)
    }

    @Test func descendants_followParentLinks_andIgnoreOthers() {
        let e = { (pid: Int32, parent: Int32) in ProcessTree.Entry(pid: pid, state: "S", parent: parent, group: pid) }
        let entries = [e(1, 0), e(10, 1), e(20, 10), e(21, 10), e(30, 20), e(40, 1), e(50, 40)]
        let found = Set(ProcessTree.descendants(of: 10, in: entries).map(\.pid))
        #expect(found == [20, 21, 30])
        #expect(ProcessTree.descendants(of: 99, in: entries).isEmpty)
    }

    @Test func snapshot_seesThisProcess() throws {
        let entries = try #require(ProcessTree.snapshot())
        #expect(entries.contains { $0.pid == getpid() && $0.parent == getppid() })
    }

    /// A child that leaves a background process in its group and one that
    /// left the group with setsid: after the child exits, `killAll` finds and
    /// kills both (as subreaper they are ours), reaps them, and reports 0.
    @Test(.timeLimit(.minutes(1)))
    func killAll_killsGroupMembersAndSetsidEscapees_andReapsThem() async {
        await #expect(processExitsWith: .exitCode(0)) {
            guard Reaper.becomeSubreaper() else { exit(100) }
            let ready = TestPipe()
            let script = "sleep 300 & echo $!; setsid sleep 300 & echo $!; wait"
            guard let child = try? ChildProcess.spawn(["sh", "-c", script], standardOutput: ready.write),
                  let first = ready.readLine().flatMap({ Int32($0) }),
                  let second = ready.readLine().flatMap({ Int32($0) }) else { exit(101) }
            // The escapee is in a group of its own: a group kill misses it.
            blockingSleep(.milliseconds(200))
            guard getpgid(second) != child.pid, getpgid(first) == child.pid else { exit(102) }
            // The shell itself ends (as `sh -c 'worker & exit 0'` would).
            kill(child.pid, SIGKILL)
            var reapedChild = false
            var rounds = 0
            while rounds < 50 {
                rounds += 1
                let round = ProcessTree.killAll(group: child.pid)
                if round.reaped.contains(where: { $0.pid == child.pid }) { reapedChild = true }
                if round.survivors == 0 { break }
                blockingSleep(.milliseconds(50))
            }
            guard reapedChild else { exit(103) }
            // Gone, and reaped (kill(pid, 0) on an unreaped zombie would succeed).
            guard kill(first, 0) == -1, errno == ESRCH else { exit(104) }
            guard kill(second, 0) == -1, errno == ESRCH else { exit(105) }
            exit(0)
        }
    }
}
