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

    /// The standard signals (1...31) kube-leader passes on to its child's
    /// process group, as tini does: tini blocks every signal except the
    /// synchronous ones and forwards whatever it does not handle itself
    /// (`tini.c`, `configure_signals` and `wait_and_forward_signal`). So:
    /// every catchable signal except
    /// - SIGCHLD (reaping), SIGKILL and SIGSTOP (cannot be caught);
    /// - the synchronous ones, which report a fault of kube-leader itself
    ///   and must keep their default action: SIGILL, SIGTRAP, SIGABRT,
    ///   SIGBUS, SIGFPE, SIGSEGV, SIGSYS;
    /// - SIGTTIN and SIGTTOU, which tini ignores (a background kube-leader
    ///   must not stop on a terminal access);
    /// - SIGPIPE: ignored, so a write to a closed connection or log pipe fails
    ///   with EPIPE; the kernel sends it to kube-leader's own writing thread,
    ///   and forwarding it would kill the child for our broken pipe.
    ///
    /// The real-time signals (SIGRTMIN...SIGRTMAX, numbers of the C library)
    /// are forwarded too: see `forwarded(realtime:)`.
    public static let forwarded: [Signal] = (Int32(1)...31)
        .filter { !notForwarded.contains($0) }
        .map { Signal(rawValue: $0) }

    /// Standard signals that are never forwarded (see `forwarded`).
    public static let notForwarded: Set<Int32> = [
        9, 19, 17,                  // SIGKILL, SIGSTOP, SIGCHLD
        4, 5, 6, 7, 8, 11, 31,      // SIGILL SIGTRAP SIGABRT SIGBUS SIGFPE SIGSEGV SIGSYS
        21, 22,                     // SIGTTIN, SIGTTOU (ignored, as in tini)
        13,                         // SIGPIPE (ignored)
    ]

    /// Every signal kube-leader forwards: `forwarded` plus the real-time
    /// signals `realtime` (the C library's SIGRTMIN...SIGRTMAX: glibc keeps
    /// 32 and 33 for itself, musl 32 to 34).
    public static func forwarded(realtime: ClosedRange<Int32>) -> [Signal] {
        forwarded + realtime.map { Signal(rawValue: $0) }
    }

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
