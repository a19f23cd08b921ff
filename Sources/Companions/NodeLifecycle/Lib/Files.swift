#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Reads a small text file (a token, a CA) whole. Errors name the file and
/// the reason (errno), e.g. an unreadable projected token.
public func readSmallFile(_ path: String) throws(NodeLifecycleError) -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 {
        let err = errno
        throw NodeLifecycleError(.file, "Cannot read \(path): \(String(cString: strerror(err))); check the volume mount and the file's permissions.")
    }
    defer { close(fd) }
    var bytes = [UInt8]()
    var buf = [UInt8](repeating: 0, count: 16384)
    while true {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            let err = errno
            if err == EINTR { continue }
            throw NodeLifecycleError(.file, "Cannot read \(path): \(String(cString: strerror(err))); check the volume mount and the file's permissions.")
        }
        if n == 0 { break }
        bytes.append(contentsOf: buf[0..<n])
        if bytes.count > 1 << 20 {
            throw NodeLifecycleError(.file, "\(path) is larger than 1 MiB; it is not a token file.")
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}
