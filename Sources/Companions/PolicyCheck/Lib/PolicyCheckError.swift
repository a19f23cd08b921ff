import KLCore

/// The one error type of policy-check: a code that decides the exit status
/// and a full-sentence message (what failed, on which input, what to do).
public struct PolicyCheckError: CodedError, Equatable {
    /// Kinds of failure. A struct over an internal enum so new codes do not
    /// break callers that switch over them.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Raw: String { case usage, badInput, badReport, opaMissing, opaFailed }
        let raw: Raw

        /// A bad command line or option value.
        public static let usage = Code(raw: .usage)
        /// The objects to check are not JSON or not shaped as Kubernetes prints them.
        public static let badInput = Code(raw: .badInput)
        /// The coverage report is unreadable or not shaped as OPA writes it.
        public static let badReport = Code(raw: .badReport)
        /// The `opa` executable could not be found or started.
        public static let opaMissing = Code(raw: .opaMissing)
        /// `opa` ran but failed in a way that is not a test failure.
        public static let opaFailed = Code(raw: .opaFailed)

        public var description: String { raw.rawValue }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The documented exit status: 127 when `opa` is missing (as a shell
    /// reports a command not found), 2 for everything else that stops a
    /// check before it could judge anything.
    public var exitCode: Int32 { code == .opaMissing ? 127 : 2 }
}
