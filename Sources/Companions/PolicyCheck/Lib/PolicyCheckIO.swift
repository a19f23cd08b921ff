/// What the commands need from the outside world, so the command logic runs
/// in unit tests against a fake and in the binary against `SystemIO`.
public protocol PolicyCheckIO {
    /// The bytes of a file, or of standard input for `-`.
    func read(_ path: String) throws(PolicyCheckError) -> [UInt8]
    /// Whether `path` is a directory (false when it does not exist).
    func isDirectory(_ path: String) -> Bool
    /// Every `*.rego` file under `directory`, recursively, sorted, named
    /// `directory/…`.
    func regoFiles(under directory: String) throws(PolicyCheckError) -> [String]
    /// Runs a command to completion. Throws `.opaMissing` when it cannot be
    /// found or executed.
    func run(_ argv: [String], timeout: Duration) throws(PolicyCheckError) -> CommandOutput
    func writeOut(_ text: String)
    func writeErr(_ text: String)
}

/// How a command ended and what it printed.
public struct CommandOutput: Sendable, Equatable {
    /// The exit code, or 128+N for a command killed by signal N.
    public var status: Int32
    public var stdout: [UInt8]
    public var stderr: String

    public init(status: Int32, stdout: [UInt8], stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }
}
