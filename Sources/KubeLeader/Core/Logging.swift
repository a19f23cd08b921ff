// Log levels and formats are plain values, so configuration (pure, in
// KLCore and in each companion's config) holds them typed; the logger that
// writes lines is KLSystem's `Logger`.

/// Log levels, with swift-log's names, lowest first.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable {
    case trace, debug, info, notice, warning, error, critical

    public var name: String {
        switch self {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    /// The level named `name` (any case), or nil.
    public init?(name: String) {
        guard let level = LogLevel.allCases.first(where: { $0.name == name.lowercased() }) else { return nil }
        self = level
    }

    /// Every level's name, lowest first: for help texts and error messages.
    public static let names: [String] = allCases.map(\.name)

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }
}

public enum LogFormat: String, Sendable, CaseIterable {
    /// One JSON object per line: `ts`, `level`, `msg`, then dotted keys.
    case json
    /// `2026-11-28T09:51:45.123Z info acquired lock lock.name=x lock.holder=y`
    case text

    /// The format named `name` (any case), or nil.
    public init?(name: String) { self.init(rawValue: name.lowercased()) }
}
