/// A POSIX signal number with Swift names for the ones a supervisor handles
/// (the C names are in each doc comment). A struct rather than an enum so any
/// number, including real-time signals, can be represented.
///
/// Pure (no Glibc here, so the supervision phase machine and the simulation
/// can use it): the numbers are Linux's, the same on x86_64 and aarch64
/// (asm-generic); `SignalNumberTests` checks them against Glibc's constants.
public struct Signal: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// SIGHUP
    public static let hangup = Signal(rawValue: 1)
    /// SIGINT
    public static let interrupt = Signal(rawValue: 2)
    /// SIGQUIT
    public static let quit = Signal(rawValue: 3)
    /// SIGKILL (cannot be caught, blocked or ignored)
    public static let kill = Signal(rawValue: 9)
    /// SIGUSR1
    public static let user1 = Signal(rawValue: 10)
    /// SIGUSR2
    public static let user2 = Signal(rawValue: 12)
    /// SIGPIPE
    public static let pipe = Signal(rawValue: 13)
    /// SIGALRM
    public static let alarm = Signal(rawValue: 14)
    /// SIGTERM
    public static let terminate = Signal(rawValue: 15)
    /// SIGCHLD
    public static let child = Signal(rawValue: 17)
    /// SIGWINCH
    public static let windowChange = Signal(rawValue: 28)
    /// SIGCONT
    public static let continue_ = Signal(rawValue: 18)
    /// SIGSTOP (cannot be caught, blocked or ignored)
    public static let stop = Signal(rawValue: 19)

    /// The signals a supervisor passes on to its child's process group, as
    /// tini forwards everything it does not handle itself: SIGTERM, SIGINT,
    /// SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH.
    public static let forwarded: [Signal] = [
        .terminate, .interrupt, .hangup, .quit, .user1, .user2, .windowChange,
    ]

    private static let names: [Int32: String] = [
        1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL",
        5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE",
        9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
        13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 17: "SIGCHLD",
        18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN",
        22: "SIGTTOU", 23: "SIGURG", 24: "SIGXCPU", 25: "SIGXFSZ",
        26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
        30: "SIGPWR", 31: "SIGSYS", 16: "SIGSTKFLT",
    ]

    /// The C name, "SIGTERM"; "SIG34" for a number without one.
    public var name: String { Self.names[rawValue] ?? "SIG\(rawValue)" }

    public var description: String { name }
}
