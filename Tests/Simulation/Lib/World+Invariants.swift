import KLCore

/// The invariants: violations, liveness checkpoints.
extension World {
    // MARK: Invariants

    func violate(_ kind: Violation.Kind, _ message: String) {
        switch kind {
        case .overlap: overlapCount += 1
        case .budget: budgetCount += 1
        case .liveness: livenessCount += 1
        }
        if violations.count < 50 { violations.append(Violation(kind: kind, time: now, message: message)) }
        if kind != .budget || budgetCount <= 20 { trace("VIOLATION \(kind.rawValue): \(message)") }
    }

    func checkLiveness(_ index: Int) {
        if now < longLeaseUntil {
            trace("liveness checkpoint \(index) skipped: another writer set a longer lease (until \(longLeaseUntil.traceText))")
            return
        }
        if leaderChild() == nil {
            violate(.liveness, "no leader's child running at checkpoint \(index) (faults stopped \((now - checkpoints[index]) / SimTime.ms) ms before)")
        }
    }
}
