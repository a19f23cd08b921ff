/// Exit codes of kube-leader (README.md, "Exit codes, signals, lease loss"). The child's
/// own code passes through unchanged; these are the ones kube-leader adds.
public enum ExitCode {
    /// Any other failure of kube-leader itself; the message says what and what to do.
    public static let failure: Int32 = 1
    /// Bad usage or configuration: nothing was started.
    public static let usage: Int32 = 2
    /// Leadership was lost; the child was stopped.
    public static let leadershipLost: Int32 = 3
    /// The command was found but could not be executed (EACCES, ENOEXEC).
    public static let notExecutable: Int32 = 126
    /// The command was not found (ENOENT).
    public static let notFound: Int32 = 127

    /// 128 + N for a child that died of signal N (tini, dumb-init, shells).
    public static func forSignal(_ signal: Int32) -> Int32 { 128 + signal }
}
