import KLCore

/// OPA's coverage report (`opa test --coverage`), read leniently and merged
/// into line spans.
///
/// The shape is `{"files":{PATH:{"covered":[R],"not_covered":[R],...}}}`
/// with `R = {"start":{"row":N[,"col":N]},"end":{"row":N[,"col":N]}}`, and it
/// has changed across OPA versions: every field is omitted when empty or zero
/// (`opa test --coverage` prints only this report, whatever `--format` says),
/// so every field may be missing (an untested file has only `not_covered`), older
/// versions merge adjacent rows, newer ones give one range per expression
/// with columns, overlapping, and may add `kinds`. So the report is reduced
/// to rows: a row is covered when any covered range touches it, and not
/// covered when a not-covered range touches it and no covered range does
/// (a line whose expression ran counts as run, as OPA counts it). Columns
/// and `kinds` are ignored.
public enum CoverageReport {
    /// Inclusive row span, 1-based.
    public struct Span: Sendable, Equatable, Comparable, CustomStringConvertible {
        public var start: Int
        public var end: Int
        public init(_ start: Int, _ end: Int) { self.start = start; self.end = end }
        public static func < (a: Span, b: Span) -> Bool { (a.start, a.end) < (b.start, b.end) }
        /// `12-14`, or `12` for one row.
        public var description: String { start == end ? "\(start)" : "\(start)-\(end)" }
    }

    /// One file of the report, reduced to rows.
    public struct File: Sendable, Equatable {
        public var path: String
        public var coveredRows: Set<Int>
        /// Rows in a not-covered range and in no covered range.
        public var notCoveredRows: Set<Int>

        public init(path: String, coveredRows: Set<Int>, notCoveredRows: Set<Int>) {
            self.path = path
            self.coveredRows = coveredRows
            self.notCoveredRows = notCoveredRows.subtracting(coveredRows)
        }

        public var uncoveredSpans: [Span] { CoverageReport.spans(rows: notCoveredRows) }
    }

    /// Parses the report; files come back sorted by path.
    public static func parse(_ json: JSON, source: String) throws(PolicyCheckError) -> [File] {
        guard let top = json.objectValue else {
            throw bad(source, "the report must be a JSON object with \"files\"")
        }
        guard let filesJSON = top["files"], !filesJSON.isNull else { return [] }  // no policy files at all
        guard let files = filesJSON.objectValue else { throw bad(source, "\"files\" must be an object of file reports") }
        var out: [File] = []
        for (path, entry) in files {
            guard let fields = entry.objectValue else { throw bad(source, "files[\(JSON.quoted(path))] must be an object") }
            let covered = try rows(fields["covered"], "files[\(JSON.quoted(path))].covered", source)
            let notCovered = try rows(fields["not_covered"], "files[\(JSON.quoted(path))].not_covered", source)
            out.append(File(path: path, coveredRows: covered, notCoveredRows: notCovered))
        }
        return out.sorted { $0.path < $1.path }
    }

    /// The rows a list of ranges touches. A range without `end` is its
    /// `start` row (and the reverse); one with neither says nothing.
    public static func rows(_ ranges: JSON?, _ place: String, _ source: String) throws(PolicyCheckError) -> Set<Int> {
        guard let ranges, !ranges.isNull else { return [] }
        guard let list = ranges.arrayValue else { throw bad(source, "\(place) must be an array of ranges") }
        var rows: Set<Int> = []
        for (i, range) in list.enumerated() {
            guard range.objectValue != nil else { throw bad(source, "\(place)[\(i)] must be a range object") }
            let start = try row(range["start"], "\(place)[\(i)].start", source)
            let end = try row(range["end"], "\(place)[\(i)].end", source)
            guard let first = start ?? end else { continue }
            let last = end ?? first
            rows.formUnion(min(first, last)...max(first, last))
        }
        return rows
    }

    static func row(_ position: JSON?, _ place: String, _ source: String) throws(PolicyCheckError) -> Int? {
        guard let position, !position.isNull else { return nil }
        guard position.objectValue != nil else { throw bad(source, "\(place) must be an object with \"row\"") }
        guard let rowJSON = position["row"], !rowJSON.isNull else { return nil }
        guard let row = rowJSON.intValue, row >= 1 else { throw bad(source, "\(place).row must be a positive whole number") }
        return row
    }

    /// Consecutive rows merged into spans, in order: {3,4,5,9} → 3-5, 9.
    public static func spans(rows: Set<Int>) -> [Span] {
        var out: [Span] = []
        for row in rows.sorted() {
            if let last = out.last, last.end + 1 == row {
                out[out.count - 1].end = row
            } else {
                out.append(Span(row, row))
            }
        }
        return out
    }

    static func bad(_ source: String, _ problem: String) -> PolicyCheckError {
        PolicyCheckError(.badReport, "\(source) is not an OPA coverage report: \(problem). Produce it with `opa test --coverage DIR`.")
    }
}
