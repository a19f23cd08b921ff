import KLCore

/// Where log lines go. The default writes each line with one `write(2)` to
/// standard error; tests capture lines in memory.
public protocol LogSink: Sendable {
    func write(line: String)
}

public struct StandardErrorSink: LogSink {
    public init() {}
    public func write(line: String) { writeAll(fd: 2, line + "\n") }
}

/// A structured logger: a fixed message plus metadata, one line per event.
///
/// Keep `msg` constant for a kind of event and put the data in metadata
/// (`lock.name`, `child.pid`, …) so lines can be filtered and counted.
public struct Logger: Sendable {
    public var level: LogLevel
    public var format: LogFormat
    public var metadata: [(String, JSON)]
    public var sink: any LogSink
    public var clock: @Sendable () -> WallTime

    public init(level: LogLevel = .info, format: LogFormat = .json, metadata: [(String, JSON)] = [],
                sink: any LogSink = StandardErrorSink(), clock: @escaping @Sendable () -> WallTime = { wallNow() }) {
        self.level = level
        self.format = format
        self.metadata = metadata
        self.sink = sink
        self.clock = clock
    }

    /// A logger that adds `metadata` to every line.
    public func with(_ metadata: (String, JSON)...) -> Logger {
        var copy = self
        copy.metadata += metadata
        return copy
    }

    public func log(_ level: LogLevel, _ message: String, _ metadata: [(String, JSON)]) {
        guard level >= self.level else { return }
        sink.write(line: render(level, message, self.metadata + metadata))
    }

    public func trace(_ m: String, _ md: (String, JSON)...) { log(.trace, m, md) }
    public func debug(_ m: String, _ md: (String, JSON)...) { log(.debug, m, md) }
    public func info(_ m: String, _ md: (String, JSON)...) { log(.info, m, md) }
    public func notice(_ m: String, _ md: (String, JSON)...) { log(.notice, m, md) }
    public func warning(_ m: String, _ md: (String, JSON)...) { log(.warning, m, md) }
    public func error(_ m: String, _ md: (String, JSON)...) { log(.error, m, md) }
    public func critical(_ m: String, _ md: (String, JSON)...) { log(.critical, m, md) }

    func render(_ level: LogLevel, _ message: String, _ metadata: [(String, JSON)]) -> String {
        let ts = RFC3339.formatMillis(clock())
        switch format {
        case .json:
            var object = JSONObject()
            object["ts"] = .string(ts)
            object["level"] = .string(level.name)
            object["msg"] = .string(message)
            for (k, v) in metadata { object[k] = v }
            return JSON.object(object).serialized()
        case .text:
            var line = "\(ts) \(level.name) \(message)"
            for (k, v) in metadata {
                let value: String
                switch v {
                case .string(let s): value = s.contains(" ") || s.isEmpty ? JSON.quoted(s) : s
                default: value = v.serialized()
                }
                line += " \(k)=\(value)"
            }
            return line
        }
    }
}
