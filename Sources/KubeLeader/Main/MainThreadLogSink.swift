import KLSystem
import Synchronization

/// The main thread's log lines: never blocking it, even when nobody reads
/// stderr.
///
/// A container's stderr is a pipe to the runtime; when nobody drains it, a
/// blocking `write(2)` waits forever, and a main thread waiting there would
/// never send the SIGKILL due at the renew deadline + kill grace. So the main
/// thread writes through its own open file description of that pipe, opened
/// again through /proc/self/fd/2 with O_NONBLOCK (setting O_NONBLOCK on fd 2
/// itself would change it for the child and the election thread too, which
/// share it). A line that does not fit is dropped and counted; lines up to
/// PIPE_BUF (4096 bytes) are written whole or not at all.
///
/// Regular files (no back-pressure) and anything /proc cannot reopen (a
/// socket) keep the usual blocking write.
final class MainThreadLogSink: LogSink, @unchecked Sendable {
    private let fd: Int32
    private let fallback: any LogSink
    /// Lines dropped because stderr was full.
    let dropped = Atomic<Int>(0)

    init(fallback: any LogSink = StandardErrorSink()) {
        self.fallback = fallback
        var info = stat()
        let kind = fstat(2, &info) == 0 ? info.st_mode & S_IFMT : 0
        if kind == S_IFIFO || kind == S_IFCHR {
            fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC)
        } else {
            fd = -1
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    func write(line: String) {
        guard fd >= 0 else { return fallback.write(line: line) }
        var text = line + "\n"
        let complete = text.withUTF8 { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let (n, _) = retryingEINTR { rawWrite(fd, buffer.baseAddress! + offset, buffer.count - offset) }
                if n < 0 { return false }
                offset += n
            }
            return true
        }
        if !complete { dropped.add(1, ordering: .relaxed) }
    }
}

// At file level: inside the sink, `write` names its own method.
private func rawWrite(_ fd: Int32, _ bytes: UnsafePointer<UInt8>, _ count: Int) -> Int { write(fd, bytes, count) }
