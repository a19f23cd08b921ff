#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A POSIX signal number with Swift names for the ones a supervisor handles
/// (the C names are in each doc comment). A struct rather than an enum so any
/// number, including real-time signals, can be represented.
public struct Signal: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// SIGHUP
    public static let hangup = Signal(rawValue: SIGHUP)
    /// SIGINT
    public static let interrupt = Signal(rawValue: SIGINT)
    /// SIGQUIT
    public static let quit = Signal(rawValue: SIGQUIT)
    /// SIGKILL (cannot be caught, blocked or ignored)
    public static let kill = Signal(rawValue: SIGKILL)
    /// SIGUSR1
    public static let user1 = Signal(rawValue: SIGUSR1)
    /// SIGUSR2
    public static let user2 = Signal(rawValue: SIGUSR2)
    /// SIGPIPE
    public static let pipe = Signal(rawValue: SIGPIPE)
    /// SIGALRM
    public static let alarm = Signal(rawValue: SIGALRM)
    /// SIGTERM
    public static let terminate = Signal(rawValue: SIGTERM)
    /// SIGCHLD
    public static let child = Signal(rawValue: SIGCHLD)
    /// SIGWINCH
    public static let windowChange = Signal(rawValue: SIGWINCH)
    /// SIGCONT
    public static let continue_ = Signal(rawValue: SIGCONT)
    /// SIGSTOP (cannot be caught, blocked or ignored)
    public static let stop = Signal(rawValue: SIGSTOP)

    /// The signals a supervisor passes on to its child's process group, as
    /// tini forwards everything it does not handle itself: SIGTERM, SIGINT,
    /// SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH.
    public static let forwarded: [Signal] = [
        .terminate, .interrupt, .hangup, .quit, .user1, .user2, .windowChange,
    ]

    private static let names: [Int32: String] = [
        SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL",
        SIGTRAP: "SIGTRAP", SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE",
        SIGKILL: "SIGKILL", SIGUSR1: "SIGUSR1", SIGSEGV: "SIGSEGV", SIGUSR2: "SIGUSR2",
        SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGCHLD: "SIGCHLD",
        SIGCONT: "SIGCONT", SIGSTOP: "SIGSTOP", SIGTSTP: "SIGTSTP", SIGTTIN: "SIGTTIN",
        SIGTTOU: "SIGTTOU", SIGURG: "SIGURG", SIGXCPU: "SIGXCPU", SIGXFSZ: "SIGXFSZ",
        SIGVTALRM: "SIGVTALRM", SIGPROF: "SIGPROF", SIGWINCH: "SIGWINCH", SIGIO: "SIGIO",
        SIGPWR: "SIGPWR", SIGSYS: "SIGSYS", 16: "SIGSTKFLT",
    ]

    /// The C name, "SIGTERM"; "SIG34" for a number without one.
    public var name: String { Self.names[rawValue] ?? "SIG\(rawValue)" }

    public var description: String { name }
}
