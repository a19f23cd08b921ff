/// `--leader-label KEY=VALUE`: a Kubernetes label the leader's Pod carries.
public struct LeaderLabel: Sendable, Equatable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }

    /// Parses and checks `KEY=VALUE` as the API server would (a qualified name
    /// with an optional DNS-subdomain prefix; a value of at most 63 characters).
    /// Returns why it is not valid, or the label.
    public static func parse(_ text: String) -> Result<LeaderLabel, UsageError> {
        guard let eq = text.firstIndex(of: "=") else {
            return .failure(UsageError("'\(text)' is not KEY=VALUE (for example role=leader)"))
        }
        let key = String(text[..<eq]), value = String(text[text.index(after: eq)...])
        var name = Substring(key)
        if let slash = key.firstIndex(of: "/") {
            let prefix = String(key[..<slash])
            guard LeaderConfig.isDNSSubdomain(prefix) else {
                return .failure(UsageError("label key prefix '\(prefix)' must be a DNS subdomain (lower-case letters, digits, '-', '.')"))
            }
            name = key[key.index(after: slash)...]
        }
        guard isLabelName(name, allowEmpty: false) else {
            return .failure(UsageError("label key '\(key)' is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
        }
        guard isLabelName(Substring(value), allowEmpty: true) else {
            return .failure(UsageError("label value '\(value)' is not valid: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit"))
        }
        return .success(LeaderLabel(key: key, value: value))
    }

    static func isLabelName(_ s: Substring, allowEmpty: Bool) -> Bool {
        if s.isEmpty { return allowEmpty }
        let u = Array(s.utf8)
        func alnum(_ c: UInt8) -> Bool { (48...57).contains(c) || (65...90).contains(c) || (97...122).contains(c) }
        return u.count <= 63 && alnum(u[0]) && alnum(u[u.count - 1])
            && u.allSatisfy { alnum($0) || $0 == 45 || $0 == 95 || $0 == 46 }
    }

    /// `KEY=VALUE`, for label selectors and logs.
    public var selector: String { "\(key)=\(value)" }
}
