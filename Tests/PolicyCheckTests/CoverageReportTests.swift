import KLCore
import Testing
@testable import PolicyCheckKit

/// Reports as OPA writes them. `opa120` is the real output of OPA 1.20.2
/// (via policies/tools/opa_driver.py) for three files: one partly covered,
/// its test, and one no test evaluates.
enum Reports {
    static let opa120 = """
        {"files": {"p/ports.rego": {"covered": [{"start": {"row": 3, "col": 1}, "end": {"row": 3, "col": 18}}, {"start": {"row": 4, "col": 2}, "end": {"row": 4, "col": 26}}, {"start": {"row": 5, "col": 2}, "end": {"row": 5, "col": 30}}, {"start": {"row": 6, "col": 2}, "end": {"row": 6, "col": 34}}, {"start": {"row": 6, "col": 9}, "end": {"row": 6, "col": 34}}], "not_covered": [{"start": {"row": 9, "col": 1}, "end": {"row": 9, "col": 18}}, {"start": {"row": 10, "col": 2}, "end": {"row": 10, "col": 24}}, {"start": {"row": 11, "col": 2}, "end": {"row": 11, "col": 21}}], "covered_lines": 4, "not_covered_lines": 3, "coverage": 57.142857142857146}, "p/ports_test.rego": {"covered": [{"start": {"row": 5, "col": 1}, "end": {"row": 5, "col": 9}}, {"start": {"row": 6, "col": 2}, "end": {"row": 6, "col": 54}}], "covered_lines": 2, "coverage": 100}, "p/unused.rego": {"not_covered": [{"start": {"row": 3, "col": 1}, "end": {"row": 3, "col": 6}}, {"start": {"row": 3, "col": 10}, "end": {"row": 3, "col": 31}}], "not_covered_lines": 1}}, "covered_lines": 6, "not_covered_lines": 4, "coverage": 60}
        """

    /// The same run as an older OPA prints it: adjacent rows merged, no columns.
    static let opaOld = """
        {"files": {"p/ports.rego": {"covered": [{"start": {"row": 3}, "end": {"row": 6}}], "not_covered": [{"start": {"row": 9}, "end": {"row": 11}}], "coverage": 57.1}, "p/ports_test.rego": {"covered": [{"start": {"row": 5}, "end": {"row": 6}}], "coverage": 100}, "p/unused.rego": {"not_covered": [{"start": {"row": 3}, "end": {"row": 3}}]}}, "coverage": 60}
        """

    /// Newest shape: overlapping per-expression ranges, `kinds`, a row both
    /// covered (one expression) and in a not-covered range (another).
    static let opaNewest = """
        {"files": {"a.rego": {"covered": [{"start": {"row": 3, "col": 1}, "end": {"row": 5, "col": 2}}, {"start": {"row": 4, "col": 2}, "end": {"row": 4, "col": 9}}], "not_covered": [{"start": {"row": 4, "col": 12}, "end": {"row": 4, "col": 20}, "kinds": ["early_exit"]}, {"start": {"row": 8, "col": 2}, "end": {"row": 9, "col": 7}, "kinds": ["index_excluded"]}, {"start": {"row": 9, "col": 1}, "end": {"row": 10, "col": 3}}], "covered_lines": 3, "not_covered_lines": 3, "coverage": 50}}, "covered_lines": 3, "not_covered_lines": 3, "coverage": 50}
        """

    /// Everything covered, trimmed from the run over policies/.
    static let full = """
        {"files": {"policies/istio-port-names/src.rego": {"covered": [{"start": {"row": 10, "col": 1}, "end": {"row": 13, "col": 2}}, {"start": {"row": 16, "col": 1}, "end": {"row": 16, "col": 91}}, {"start": {"row": 19, "col": 1}, "end": {"row": 21, "col": 28}}], "covered_lines": 8, "coverage": 100}, "policies/istio-port-names/src_test.rego": {"covered": [{"start": {"row": 8, "col": 1}, "end": {"row": 8, "col": 101}}], "covered_lines": 1, "coverage": 100}}, "covered_lines": 9, "coverage": 100}
        """
}

@Suite struct CoverageReportTests {
    typealias Span = CoverageReport.Span

    func files(_ text: String) throws -> [CoverageReport.File] {
        try CoverageReport.parse(JSON.parse(text), source: "report.json")
    }

    struct SpanCase: Sendable, CustomTestStringConvertible {
        var label: String
        var rows: Set<Int>
        var spans: [Span]
        var testDescription: String { label }
    }

    static let spanCases: [SpanCase] = [
        SpanCase(label: "no rows", rows: [], spans: []),
        SpanCase(label: "one row", rows: [7], spans: [Span(7, 7)]),
        SpanCase(label: "consecutive rows merge", rows: [3, 4, 5], spans: [Span(3, 5)]),
        SpanCase(label: "a gap splits", rows: [3, 4, 6, 9, 10], spans: [Span(3, 4), Span(6, 6), Span(9, 10)]),
    ]

    @Test(arguments: spanCases) func spans_mergeConsecutiveRows(_ c: SpanCase) {
        #expect(CoverageReport.spans(rows: c.rows) == c.spans)
    }

    @Test func spanText_isLineOrRange() {
        #expect("\(Span(4, 4))" == "4")
        #expect("\(Span(4, 9))" == "4-9")
    }

    struct RowsCase: Sendable, CustomTestStringConvertible {
        var label: String
        var ranges: String
        var rows: Set<Int>
        var testDescription: String { label }
    }

    static let rowsCases: [RowsCase] = [
        RowsCase(label: "start and end", ranges: #"[{"start":{"row":2},"end":{"row":4}}]"#, rows: [2, 3, 4]),
        RowsCase(label: "columns are ignored", ranges: #"[{"start":{"row":2,"col":5},"end":{"row":2,"col":9}}]"#, rows: [2]),
        RowsCase(label: "overlapping ranges", ranges: #"[{"start":{"row":2},"end":{"row":5}},{"start":{"row":4},"end":{"row":7}}]"#, rows: [2, 3, 4, 5, 6, 7]),
        RowsCase(label: "missing end is the start row", ranges: #"[{"start":{"row":8}}]"#, rows: [8]),
        RowsCase(label: "missing start is the end row", ranges: #"[{"end":{"row":8}}]"#, rows: [8]),
        RowsCase(label: "start without row", ranges: #"[{"start":{"col":3},"end":{"row":8}}]"#, rows: [8]),
        RowsCase(label: "an empty range says nothing", ranges: #"[{}]"#, rows: []),
        RowsCase(label: "reversed range", ranges: #"[{"start":{"row":5},"end":{"row":3}}]"#, rows: [3, 4, 5]),
        RowsCase(label: "null list", ranges: "null", rows: []),
    ]

    @Test(arguments: rowsCases) func rows_fromRanges(_ c: RowsCase) throws {
        #expect(try CoverageReport.rows(JSON.parse(c.ranges), "covered", "r") == c.rows)
    }

    @Test func coveredRowWins_overANotCoveredRangeOnTheSameRow() throws {
        let f = try #require(try files(Reports.opaNewest).first)
        #expect(f.coveredRows == [3, 4, 5])
        #expect(f.notCoveredRows == [8, 9, 10])
        #expect(f.uncoveredSpans == [Span(8, 10)])
    }

    @Test func opa120Report_countsLinesAsOPADoes() throws {
        let gate = CoverageGate(files: try files(Reports.opa120), policyFiles: [])
        #expect(gate.coveredLines == 6)
        #expect(gate.notCoveredLines == 4)
        #expect(gate.percent == 60)
    }

    @Test func oldAndNewShapes_giveTheSameVerdict() throws {
        let new = CoverageGate(files: try files(Reports.opa120), policyFiles: ["p/ports.rego", "p/ports_test.rego", "p/unused.rego"])
        let old = CoverageGate(files: try files(Reports.opaOld), policyFiles: ["p/ports.rego", "p/ports_test.rego", "p/unused.rego"])
        #expect(new == old)
        #expect(new.findingLines == ["p/ports.rego:9-11", "p/unused.rego: untested"])
        #expect(!new.passed)
    }

    @Test func fullCoverage_passes() throws {
        let gate = CoverageGate(files: try files(Reports.full), policyFiles: ["policies/istio-port-names/src.rego", "policies/istio-port-names/src_test.rego"])
        #expect(gate.passed)
        #expect(gate.percent == 100)
        #expect(gate.findingLines.isEmpty)
    }

    @Test func policyFileMissingFromTheReport_isUntested() throws {
        let gate = CoverageGate(files: try files(Reports.full), policyFiles: ["policies/istio-port-names/src.rego", "policies/extra/new.rego", "policies/extra/new_test.rego"])
        #expect(gate.untested == ["policies/extra/new.rego"])
        #expect(gate.findingLines == ["policies/extra/new.rego: untested"])
    }

    @Test func reportPaths_matchDiskPaths_withDotOrAbsolutePrefixes() {
        #expect(CoverageGate.samePath("./policies/a.rego", "policies/a.rego"))
        #expect(CoverageGate.samePath("/repo/policies/a.rego", "policies//a.rego"))
        #expect(!CoverageGate.samePath("policies/a.rego", "policies/ba.rego"))
    }

    @Test func reportOnly_fileThatNeverRan_isUntested_withoutDiskFiles() throws {
        let gate = CoverageGate(files: try files(Reports.opa120), policyFiles: [])
        #expect(gate.untested == ["p/unused.rego"])
        #expect(gate.uncovered.map(\.file) == ["p/ports.rego"])
    }

    @Test func testFileWithUncoveredLines_isUncovered_notUntested() throws {
        let report = #"{"files":{"a_test.rego":{"not_covered":[{"start":{"row":4},"end":{"row":5}}]}}}"#
        let gate = CoverageGate(files: try files(report), policyFiles: ["a_test.rego"])
        #expect(gate.untested.isEmpty)
        #expect(gate.findingLines == ["a_test.rego:4-5"])
    }

    @Test func percentText_roundsDown_soAlmostFullNeverShows100() {
        #expect(CoverageOutput.percentText(99.96) == "99.9")
        #expect(CoverageOutput.percentText(100) == "100.0")
        #expect(CoverageOutput.percentText(0) == "0.0")
        #expect(CoverageOutput.percentText(57.142857) == "57.1")
    }

    @Test func emptyReport_passesAt100() throws {
        let gate = CoverageGate(files: try files("{}"), policyFiles: [])
        #expect(gate.passed)
        #expect(gate.percent == 100)
    }

    @Test(arguments: [
        ("[]", "the report must be a JSON object"),
        (#"{"files":[]}"#, "\"files\" must be an object"),
        (#"{"files":{"a.rego":1}}"#, "files[\"a.rego\"] must be an object"),
        (#"{"files":{"a.rego":{"covered":{}}}}"#, "files[\"a.rego\"].covered must be an array"),
        (#"{"files":{"a.rego":{"covered":[3]}}}"#, "files[\"a.rego\"].covered[0] must be a range object"),
        (#"{"files":{"a.rego":{"not_covered":[{"start":{"row":"3"}}]}}}"#, "files[\"a.rego\"].not_covered[0].start.row must be a positive whole number"),
        (#"{"files":{"a.rego":{"covered":[{"start":5}]}}}"#, "files[\"a.rego\"].covered[0].start must be an object"),
    ])
    func malformedReport_isBadReport(_ text: String, _ problem: String) throws {
        do {
            _ = try files(text)
            Issue.record("no error for \(text)")
        } catch let error as PolicyCheckError {
            #expect(error.code == .badReport)
            #expect(error.message.hasPrefix("report.json is not an OPA coverage report: \(problem)"))
            #expect(error.message.hasSuffix("Produce it with `opa test --coverage DIR`."))
        }
    }
}
