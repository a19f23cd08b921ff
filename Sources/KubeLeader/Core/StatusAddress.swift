/// `--status-addr HOST:PORT`: a numeric IPv4 or bracketed IPv6 address (empty
/// host: every interface) and a port (0: the kernel picks one).
public struct StatusAddress: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: UInt16

    public init?(_ text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return nil }
            host = String(host.dropFirst().dropLast())
            guard host.utf8.allSatisfy({ $0 == 58 || $0 == 46 || (48...57).contains($0) || (97...102).contains($0) || (65...70).contains($0) }) else { return nil }
        } else if host.isEmpty {
            host = "0.0.0.0"
        } else {
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && UInt8($0) != nil }) else { return nil }
        }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
