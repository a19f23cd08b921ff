import Glibc
import KLCore
import KLSupport

/// The object with `kind` and `apiVersion` first (filled in when missing), as the real server writes it.
func typeFirst(_ o: JSON, _ r: ResourceType) -> JSON {
    var out = JSONObject([("kind", o["kind"] ?? .string(r.kind)), ("apiVersion", o["apiVersion"] ?? .string(r.apiVersion))])
    for (k, v) in o.objectValue ?? JSONObject() where k != "kind" && k != "apiVersion" { out[k] = v }
    return .object(out)
}

func readFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
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
