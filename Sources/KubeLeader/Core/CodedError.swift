/// The shape of each module's one error (docs/kube-leader-design.md, "The
/// house"): a `code` that every decision reads, and a `message` that is a
/// full sentence (what failed, on which object, what to do) and, unless the
/// type says more, its `description`.
///
/// A protocol, not a shared generic struct: each module's error carries its
/// own context next to the code (KLKube's API call and server, an AWS error
/// code and HTTP status, PagerDuty's status, body and wait), so a generic
/// struct would need a context parameter and constrained extensions to give
/// back the same initialisers and fields: more code, not less. What is the
/// same everywhere lives here.
public protocol CodedError<Code>: Error, Sendable, CustomStringConvertible {
    /// The module's kinds of failure.
    associatedtype Code: Sendable, Equatable
    var code: Code { get }
    /// A full sentence.
    var message: String { get }
}

extension CodedError {
    public var description: String { message }
}
