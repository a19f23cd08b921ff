/// Why the fake API server could not start or keep going.
public struct FakeServerError: Error, Sendable, CustomStringConvertible {
    public enum Code: Sendable { case certificates, tls, listen, io, usage, state }
    public var code: Code
    public var message: String
    init(_ code: Code, _ message: String) { self.code = code; self.message = message }
    public var description: String { "kube-apiserver-fake: \(message)." }
}
