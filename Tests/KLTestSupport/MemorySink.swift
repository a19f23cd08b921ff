import KLCore
import KLSystem
import Synchronization

/// Log lines captured in memory, for assertions (swift-log's testing advice:
/// pass a logger with an in-memory sink).
public final class MemorySink: LogSink {
    private let lines = Mutex<[String]>([])

    public init() {}

    public func write(line: String) { lines.withLock { $0.append(line) } }

    /// Every line written so far.
    public var all: [String] { lines.withLock { $0 } }
    /// All lines, newline-separated.
    public var text: String { all.joined(separator: "\n") }
    /// Whether any line contains `s`.
    public func contains(_ s: String) -> Bool { all.contains { $0.contains(s) } }
    /// The lines that are JSON objects, parsed.
    public var json: [JSON] { all.compactMap { try? JSON.parse($0) } }
    /// The parsed lines whose `msg` is `msg`.
    public func messages(_ msg: String) -> [JSON] { json.filter { $0["msg"]?.stringValue == msg } }
}
