import KLCore
import KLSystem

/// The processes below us, read from /proc: what a process-group kill misses.
///
/// A grandchild that calls setsid(2) or setpgid(2) leaves the child's process
/// group, so `kill(-pgid, SIGKILL)` does not reach it. It is still our
/// descendant: while its parent lives, through the parent; once the parent
/// dies, because kube-leader is PID 1 or a child subreaper
/// (PR_SET_CHILD_SUBREAPER), which makes orphans ours. Walking the ppid links
/// of /proc/[pid]/stat finds them all.
///
/// Not found: processes that are not our descendants at all (a daemon that
/// re-parented itself to a different subreaper below us and then lost it is
/// found again; one started through another service, such as a container
/// runtime's API, never is).
public enum ProcessTree {
    /// One line of /proc/[pid]/stat, the fields we need.
    public struct Entry: Sendable, Equatable {
        public var pid: Int32
        /// State letter: R, S, D, Z (zombie), T, ...
        public var state: Character
        public var parent: Int32
        public var group: Int32
    }

    /// Parses "/proc/[pid]/stat": `pid (comm) state ppid pgrp ...`. The comm
    /// may hold spaces and parentheses, so fields are read after the LAST ")".
    public static func parseStat(_ text: String) -> Entry? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close,
              let pid = Int32(text[..<open].trimmingCharacters(in: " ")) else { return nil }
        let rest = text[text.index(after: close)...].split(separator: " ", omittingEmptySubsequences: true)
        guard rest.count >= 3, let state = rest[0].first, let parent = Int32(rest[1]), let group = Int32(rest[2]) else { return nil }
        return Entry(pid: pid, state: state, parent: parent, group: group)
    }

    /// Every process whose chain of parents reaches `root` (not `root` itself),
    /// among `entries`.
    public static func descendants(of root: Int32, in entries: [Entry]) -> [Entry] {
        var children: [Int32: [Entry]] = [:]
        for entry in entries { children[entry.parent, default: []].append(entry) }
        var found: [Entry] = []
        var queue = [root]
        var seen: Set<Int32> = [root]
        while let pid = queue.popLast() {
            for child in children[pid] ?? [] where seen.insert(child.pid).inserted {
                found.append(child)
                queue.append(child.pid)
            }
        }
        return found
    }

    /// Reads every /proc/[pid]/stat; nil when /proc cannot be read.
    public static func snapshot(procRoot: String = "/proc") -> [Entry]? {
        guard let dir = opendir(procRoot) else { return nil }
        defer { closedir(dir) }
        var entries: [Entry] = []
        while let item = readdir(dir) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard let first = name.utf8.first, first >= UInt8(ascii: "1"), first <= UInt8(ascii: "9"),
                  name.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) else { continue }
            // A process may exit between readdir and open: skip it.
            if let text = readSmall(procRoot + "/" + name + "/stat"), let entry = parseStat(text) {
                entries.append(entry)
            }
        }
        return entries
    }

    private static func readSmall(_ path: String) -> String? {
        guard case .success(let text) = readWholeTextFile(path, limit: 64 * 1024), !text.isEmpty else { return nil }
        return text
    }

    /// What one `killAll` round did.
    public struct KillRound: Sendable {
        /// Processes that got SIGKILL by pid (descendants outside the group included).
        public var signalled: [Int32]
        /// Whatever exited and was reaped in this round (the child among them).
        public var reaped: [(pid: Int32, status: TerminationStatus)]
        /// Processes still there after reaping: descendants of ours (zombies
        /// whose parent has not died yet included) or members of the group.
        public var survivors: Int
    }

    /// SIGKILLs process group `group` and every living descendant of this
    /// process, reaps what has exited, and counts what is left. A process
    /// forked after the /proc snapshot and outside the group is missed by this
    /// round but counted as a survivor: call again until none is left.
    ///
    /// - Important: kills EVERY descendant of the caller. Only for a process
    ///   whose descendants all belong to the supervised command (kube-leader).
    public static func killAll(group: Int32) -> KillRound {
        let me = getpid()
        // 1. Who is there (before any of them dies and turns into a zombie).
        let living = snapshot().map { descendants(of: me, in: $0).filter { $0.state != "Z" } } ?? []
        // 2. The group at once, then each descendant that left it.
        _ = kill(-group, SIGKILL)
        var signalled: [Int32] = []
        for entry in living {
            if entry.group == group || kill(entry.pid, SIGKILL) == 0 { signalled.append(entry.pid) }
        }
        let reaped = Reaper.reapAll()
        var survivors = 0
        if let entries = snapshot() {
            survivors = descendants(of: me, in: entries).count
        }
        if survivors == 0, kill(-group, 0) == 0 { survivors = 1 }
        return KillRound(signalled: signalled, reaped: reaped, survivors: survivors)
    }
}

private extension Substring {
    func trimmingCharacters(in set: Character) -> Substring {
        var s = self
        while s.first == set { s = s.dropFirst() }
        while s.last == set { s = s.dropLast() }
        return s
    }
}
