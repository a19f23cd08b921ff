import KLSystem

/// The one error of KLProcess: what failed, on which command or pid, and what
/// to do; `exitCode` is what a supervisor exits with for it (127/126/1).
public struct ProcessError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The command does not exist (ENOENT, or not in any PATH directory).
        case commandNotFound
        /// The command exists but cannot be executed (EACCES, ENOEXEC, a directory).
        case notExecutable
        /// posix_spawn or exec failed for another reason (E2BIG, ENOMEM, ...).
        case spawnFailed
        /// kill(2) failed with something other than ESRCH.
        case signalFailed
        /// waitpid(2) failed.
        case waitFailed
        /// A pipe, poll, read or write failed.
        case ioFailed
        /// `runCapturing` ran out of time; the child's group was killed.
        case timedOut
    }

    public var code: Code
    /// The errno behind the failure, when there is one.
    public var errno: Int32?
    /// What failed and what to do, without a final period (the description
    /// appends the errno text).
    public var context: String

    public init(_ code: Code, errno: Int32? = nil, context: String) {
        self.code = code
        self.errno = errno
        self.context = context
    }

    /// 127 for a missing command, 126 for one that cannot be executed, 1 otherwise.
    public var exitCode: Int32 {
        switch code {
        case .commandNotFound: return 127
        case .notExecutable: return 126
        default: return 1
        }
    }

    public var description: String {
        guard let errno else { return context + "." }
        return "\(context) (\(errnoName(errno)))."
    }
}

/// "ENOENT: No such file or directory"-style text for an errno value.
func errnoName(_ value: Int32) -> String {
    let names: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO",
        E2BIG: "E2BIG", ENOEXEC: "ENOEXEC", EBADF: "EBADF", ECHILD: "ECHILD",
        EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", ENOTDIR: "ENOTDIR",
        EISDIR: "EISDIR", EINVAL: "EINVAL", EMFILE: "EMFILE", ETXTBSY: "ETXTBSY",
        EPIPE: "EPIPE", ELOOP: "ELOOP", ENAMETOOLONG: "ENAMETOOLONG", ENOSYS: "ENOSYS",
    ]
    return "\(names[value] ?? "errno \(value)"): \(errnoMessage(value))"
}
