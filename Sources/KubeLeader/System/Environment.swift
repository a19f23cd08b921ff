#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CShims
import KLCore

/// Reads the process environment once, through a C accessor (the `environ`
/// global is not concurrency-safe in Swift 6). Only each binary's `Main`
/// calls this; everything else takes the dictionary as a parameter.
public enum ProcessEnvironment {
    public static func current() -> [String: String] {
        var result: [String: String] = [:]
        guard var p = cshims_environ() else { return result }
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") {
                result[String(s[..<eq])] = String(s[s.index(after: eq)...])
            }
            p += 1
        }
        return result
    }

    /// The command-line arguments (without the program name).
    public static func arguments() -> [String] { Array(CommandLine.arguments.dropFirst()) }

    /// This machine's host name (the pod name, unless `hostNetwork`), empty
    /// when it cannot be read. The corresponding C function is `gethostname`.
    public static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "" }
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self)
    }
}

/// Writes bytes to a file descriptor in full, retrying EINTR and short writes.
public func writeAll(fd: Int32, _ text: String) {
    var text = text
    text.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let (n, _) = retryingEINTR { write(fd, buffer.baseAddress! + offset, buffer.count - offset) }
            if n < 0 { return }
            offset += n
        }
    }
}
