import KLCore

/// The one error type of node-lifecycle: a code callers can switch on and a
/// full-sentence description (what failed, on which object, what to do).
public struct NodeLifecycleError: CodedError, Equatable {
    public enum Code: Sendable, Equatable {
        /// Bad flags or environment (exit code 2).
        case usage
        /// A queue message that is not a lifecycle message we understand.
        case malformedMessage
        /// No credentials source worked, or one was misconfigured.
        case credentials
        /// An AWS API answered with an error (`awsCode` says which).
        case aws
        /// The network or HTTP layer failed before AWS answered.
        case transport
        /// The Kubernetes API failed.
        case kube
        /// A file could not be read.
        case file
        /// A deadline passed.
        case timeout
    }

    public var code: Code
    public var message: String
    /// AWS error code (`AccessDenied`, `AWS.SimpleQueueService.NonExistentQueue`,
    /// `ValidationError`, `SignatureDoesNotMatch`, ...), when AWS sent one.
    public var awsCode: String?
    /// HTTP status of the failing answer, when there was one.
    public var httpStatus: Int?

    public init(_ code: Code, _ message: String, awsCode: String? = nil, httpStatus: Int? = nil) {
        self.code = code
        self.message = message
        self.awsCode = awsCode
        self.httpStatus = httpStatus
    }
}
