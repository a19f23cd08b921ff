import KLCore
import KLSystem

// The fake's files on disk (the state file and the generated token file):
// read whole, written atomically.

/// The whole file as text; nil when it cannot be read.
func readFile(_ path: String) -> String? {
    try? readWholeTextFile(path, limit: .max).get()
}

/// Writes PATH.tmp then renames it over PATH, so a crash never leaves half a file.
func writeFileAtomically(_ path: String, _ text: String, mode: mode_t = 0o644) -> Bool {
    let tmp = path + ".tmp"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
    guard fd >= 0 else { return false }
    writeAll(fd: fd, text)
    guard close(fd) == 0 else { return false }
    return rename(tmp, path) == 0
}
