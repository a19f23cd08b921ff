/// The coverage gate's verdict on a report: what is not covered, what is
/// untested, and the overall percentage. Pure: the caller lists the policy
/// files and reads the report.
public struct CoverageGate: Sendable, Equatable {
    /// A file whose rows were not all covered, with the spans that were not.
    public struct Uncovered: Sendable, Equatable {
        public var file: String
        public var spans: [CoverageReport.Span]
    }

    public var uncovered: [Uncovered] = []
    /// Policy files (not `_test.rego`) that no test evaluated: missing from
    /// the report, or in it without a single covered row.
    public var untested: [String] = []
    public var coveredLines = 0
    public var notCoveredLines = 0

    public var passed: Bool { uncovered.isEmpty && untested.isEmpty }

    /// Covered lines over all counted lines, 0–100; 100 for an empty report.
    public var percent: Double {
        let total = coveredLines + notCoveredLines
        return total == 0 ? 100 : Double(coveredLines) * 100 / Double(total)
    }

    /// Judges `files` (from the report) against the `.rego` files found on
    /// disk (`policyFiles`; `_test.rego` files among them are ignored).
    public init(files: [CoverageReport.File], policyFiles: [String]) {
        for file in files {
            coveredLines += file.coveredRows.count
            notCoveredLines += file.notCoveredRows.count
        }
        var untestedSet: Set<String> = []
        for path in policyFiles where !path.hasSuffix("_test.rego") {
            let entry = files.first { CoverageGate.samePath($0.path, path) }
            if entry == nil || entry!.coveredRows.isEmpty { untestedSet.insert(entry?.path ?? path) }
        }
        for file in files where !file.notCoveredRows.isEmpty && !untestedSet.contains(file.path) {
            if file.coveredRows.isEmpty && !file.path.hasSuffix("_test.rego") {
                untestedSet.insert(file.path)  // in the report, never run, not on disk under DIR
                continue
            }
            uncovered.append(Uncovered(file: file.path, spans: file.uncoveredSpans))
        }
        untested = untestedSet.sorted()
    }

    /// The report names files as OPA was given them (`policies/a.rego`,
    /// `./policies/a.rego` or absolute); the disk walk names them from DIR.
    static func samePath(_ a: String, _ b: String) -> Bool {
        let x = normalized(a), y = normalized(b)
        return x == y || x.hasSuffix("/" + y) || y.hasSuffix("/" + x)
    }

    static func normalized(_ path: String) -> String {
        var parts: [Substring] = []
        for part in path.split(separator: "/", omittingEmptySubsequences: true) where part != "." {
            parts.append(part)
        }
        return (path.hasPrefix("/") ? "/" : "") + parts.joined(separator: "/")
    }

    /// One line per finding: `FILE:START-END`, `FILE:LINE`, `FILE: untested`.
    public var findingLines: [String] {
        var lines: [String] = []
        for u in uncovered { lines += u.spans.map { "\(u.file):\($0)" } }
        lines += untested.map { "\($0): untested" }
        return lines
    }
}
