import KLCore

/// The JSON `istio-ports --format json` prints, for CI:
/// `{"violations":[{"kind","namespace","name","port","field","message"}],"services":N,"skipped":N,"pattern":…}`.
enum IstioPortsOutput {
    static func json(_ result: IstioPortsCheck.Result, rule: IstioPortRule) -> JSON {
        let violations: [JSON] = result.violations.map { v in
            [
                "kind": .string(v.kind), "namespace": .string(v.namespace), "name": .string(v.name),
                "port": .string(v.port), "field": .string(v.field.rawValue), "message": .string(v.message),
            ]
        }
        return [
            "violations": .array(violations),
            "services": JSON(result.services),
            "skipped": JSON(result.skipped),
            "pattern": .string(rule.pattern),
        ]
    }
}

/// The JSON `pdb --format json` prints:
/// `{"violations":[{"kind","namespace","name","reason","message"}],"workloads":N,"skipped":N,"budgets":N}`.
enum PDBOutput {
    static func json(_ result: PDBCheck.Result) -> JSON {
        let violations: [JSON] = result.violations.map { v in
            [
                "kind": .string(v.kind), "namespace": .string(v.namespace), "name": .string(v.name),
                "reason": .string(v.reason), "message": .string(v.message),
            ]
        }
        return [
            "violations": .array(violations),
            "workloads": JSON(result.workloads),
            "skipped": JSON(result.skipped),
            "budgets": JSON(result.budgets),
        ]
    }
}

/// The JSON `coverage --format json` prints:
/// `{"passed":B,"coverage":F,"covered_lines":N,"not_covered_lines":N,"uncovered":[{"file","start","end"}],"untested":[FILE]}`.
enum CoverageOutput {
    static func json(_ gate: CoverageGate) -> JSON {
        var uncovered: [JSON] = []
        for u in gate.uncovered {
            for span in u.spans {
                uncovered.append(["file": .string(u.file), "start": JSON(span.start), "end": JSON(span.end)])
            }
        }
        return [
            "passed": .bool(gate.passed),
            "coverage": .number(percentText(gate.percent)),
            "covered_lines": JSON(gate.coveredLines),
            "not_covered_lines": JSON(gate.notCoveredLines),
            "uncovered": .array(uncovered),
            "untested": .array(gate.untested.map { .string($0) }),
        ]
    }

    /// One decimal, rounded down so 99.96 % never shows as 100.0.
    static func percentText(_ percent: Double) -> String {
        let tenths = Int((percent * 10).rounded(.down))
        return "\(tenths / 10).\(tenths % 10)"
    }
}
