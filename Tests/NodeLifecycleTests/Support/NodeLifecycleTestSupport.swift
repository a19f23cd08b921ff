import KLCore
import KLSystem
import KLTestSupport

/// The folder of this test target (for data files and helper scripts).
let testsDirectory = TestPaths.testsDirectory("NodeLifecycleTests")

/// Reads a whole file as UTF-8, or nil.
func readTextFile(_ path: String) -> String? { try? readWholeTextFile(path, limit: .max).get() }

@discardableResult
func writeTextFile(_ path: String, _ text: String) -> Bool {
    guard let f = fopen(path, "wb") else { return false }
    defer { fclose(f) }
    let bytes = Array(text.utf8)
    return fwrite(bytes, 1, bytes.count, f) == bytes.count
}

/// Runs a shell command, returns its stdout and exit status.
func runCommand(_ command: String) -> (output: String, status: Int32) {
    guard let pipe = popen(command, "r") else { return ("", -1) }
    var bytes = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, pipe)
        if n <= 0 { break }
        bytes.append(contentsOf: buf[0..<n])
    }
    let status = pclose(pipe)
    return (String(decoding: bytes, as: UTF8.self), status)
}

/// WallTime from a `YYYYMMDDTHHMMSSZ` string.
func wallTime(amz s: String) -> WallTime {
    let d = Array(s.utf8).map { Int($0) - 48 }
    func n(_ r: Range<Int>) -> Int { r.reduce(0) { $0 * 10 + d[$1] } }
    return CivilTime(year: n(0..<4), month: n(4..<6), day: n(6..<8), hour: n(9..<11),
                     minute: n(11..<13), second: n(13..<15)).wallTime
}
