import KLSystem
import Testing
import KLCore
@testable import KLProcess

/// `Signal` lives in the pure core with Linux's numbers written out; they must
/// be the C library's.
@Suite struct SignalNumberTests {
    @Test func namedSignals_matchTheCLibrary() {
        let pairs: [(Signal, Int32)] = [
            (.hangup, SIGHUP), (.interrupt, SIGINT), (.quit, SIGQUIT), (.kill, SIGKILL), (.user1, SIGUSR1),
            (.user2, SIGUSR2), (.pipe, SIGPIPE), (.alarm, SIGALRM), (.terminate, SIGTERM), (.child, SIGCHLD),
            (.windowChange, SIGWINCH), (.continue_, SIGCONT), (.stop, SIGSTOP),
        ]
        for (signal, number) in pairs { #expect(signal.rawValue == number, "\(signal.name)") }
        #expect(Signal(rawValue: SIGSEGV).name == "SIGSEGV")
        #expect(Signal(rawValue: SIGTSTP).name == "SIGTSTP")
        #expect(Signal(rawValue: SIGSYS).name == "SIGSYS")
    }

    /// The forwarded standard signals, against the C library's numbers.
    @Test func forwardedSignals_matchTheCLibrary() {
        let expected: [Int32] = [SIGHUP, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGTERM, SIGSTKFLT, SIGCONT, SIGTSTP,
                                 SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO, SIGPWR]
        #expect(Signal.forwarded.map(\.rawValue) == expected)
    }
}
