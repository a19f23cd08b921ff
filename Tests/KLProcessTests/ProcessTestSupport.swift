import CShims
import KLCore
import KLSystem
import KLTestSupport
@testable import KLProcess

/// A pipe whose ends are CLOEXEC (so children spawned by parallel tests do
/// not inherit them); the child gets `write` as its stdout.
struct TestPipe {
    let read: Int32
    let write: Int32

    init() {
        var pair: [Int32] = [-1, -1]
        precondition(cshims_pipe_cloexec(&pair) == 0, "pipe2 failed")
        read = pair[0]
        write = pair[1]
    }

    /// Reads one line (up to "\n" or EOF), failing after `timeout`.
    func readLine(timeout: Duration = .seconds(20)) -> String? {
        var bytes: [UInt8] = []
        let clock = MonotonicClock()
        let deadline = clock.now + timeout
        while clock.now < deadline {
            var fds = [pollfd(fd: read, events: Int16(POLLIN), revents: 0)]
            guard poll(&fds, 1, pollTimeoutMilliseconds(deadline - clock.now)) > 0 else { continue }
            var byte: UInt8 = 0
            let n = readByte(read, &byte)
            if n <= 0 { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }

    func close() {
        closeFD(read)
        closeFD(write)
    }
}

/// A temporary directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        path = makeTemporaryDirectory(prefix: "kl-process-test")
    }

    /// Writes a file with the given mode and returns its path.
    @discardableResult
    func file(_ name: String, contents: String, mode: mode_t) -> String {
        let file = path + "/" + name
        let fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        precondition(fd >= 0, "cannot create \(file)")
        var text = contents
        text.withUTF8 { _ = write(fd, $0.baseAddress, $0.count) }
        closeFD(fd)
        _ = chmod(file, mode)
        return file
    }

    func remove() {
        _ = try? runCapturing(["rm", "-rf", path])
    }
}

/// Spawns, waits (bounded) and returns the status; fails the caller on timeout.
func runToExit(_ argv: [String], environment: [String: String]? = nil) throws -> TerminationStatus? {
    let child = try ChildProcess.spawn(argv, environment: environment)
    guard let status = try child.waitForExit(timeout: .seconds(30)) else {
        _ = try? child.signalGroup(.kill)
        _ = try? child.waitForExit()
        return nil
    }
    return status
}

// Module-level wrappers: inside TestPipe, `read`/`write`/`close` name its own members.
private func readByte(_ fd: Int32, _ byte: inout UInt8) -> Int { read(fd, &byte, 1) }
private func closeFD(_ fd: Int32) { _ = close(fd) }
