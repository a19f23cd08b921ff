import KLCore
import KLSupport

/// The object with `kind` and `apiVersion` first (filled in when missing), as the real server writes it.
func typeFirst(_ o: JSON, _ r: ResourceType) -> JSON {
    var out = JSONObject([("kind", o["kind"] ?? .string(r.kind)), ("apiVersion", o["apiVersion"] ?? .string(r.apiVersion))])
    for (k, v) in o.objectValue ?? JSONObject() where k != "kind" && k != "apiVersion" { out[k] = v }
    return .object(out)
}

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
