import KLCore

/// Suspend and resume of a replica's host: while suspended,
/// its CLOCK_MONOTONIC stops and CLOCK_BOOTTIME runs on; nothing on the host
/// runs (the election thread, the main thread, the child's processes: their
/// events wait for the resume); the network and the API server go on.
extension World {
    /// Time replica `r`'s host spent suspended before true time `t`.
    func suspended(_ r: Int, before t: SimTime) -> SimTime {
        replicas[r].suspensions.reduce(0) { sum, s in s.from < t ? sum + min(t, s.until) - s.from : sum }
    }

    /// The resume time while `r` is suspended now; nil when it runs.
    func resumeTime(_ r: Int) -> SimTime? {
        replicas[r].suspensions.first { $0.from <= now && now < $0.until }?.until
    }

    /// The true time at which `r` has been running (not suspended) for
    /// `active` of true time since 0: the inverse of `t - suspended(r, before: t)`.
    func activeToTrue(_ r: Int, _ active: SimTime) -> SimTime {
        var t = active
        for s in replicas[r].suspensions.sorted(by: { $0.from < $1.from }) where s.from < t { t += s.until - s.from }
        return t
    }

    /// CLOCK_BOOTTIME of replica `r`: runs on while suspended.
    func bootNow(_ r: Int) -> MonotonicInstant { MonotonicInstant(nanoseconds: replicas[r].clock.local(now)) }

    /// The true time at which `r`'s boot clock reads `instant` (never in the past).
    func bootTrueTime(_ r: Int, _ instant: MonotonicInstant) -> SimTime {
        let clock = replicas[r].clock
        if instant.nanoseconds &- clock.offset > (1 << 60) { return SimTime.max / 4 }
        return max(now, clock.trueTime(atLocal: instant.nanoseconds))
    }

    /// A reading of `r`'s monotonic clock (in the past), on its boot clock:
    /// what the kernel knows, the offset at that moment.
    func bootInstant(_ r: Int, ofMonotonic instant: MonotonicInstant) -> MonotonicInstant {
        let active = replicas[r].clock.trueTime(atLocal: instant.nanoseconds)
        return MonotonicInstant(nanoseconds: replicas[r].clock.local(activeToTrue(r, active)))
    }

    /// Suspends `r`'s host now for `duration`.
    func suspend(_ r: Int, for duration: SimTime) {
        replicas[r].suspensions.append((from: now, until: now + duration))
        if let p = replicas[r].process { p.frozenUntil = max(p.frozenUntil, now + duration) }
    }
}

extension ScriptStep {
    /// Replica `r`'s host is suspended (or its VM paused) for `duration`.
    public static func suspend(_ r: Int, for duration: SimTime) -> ScriptStep {
        ScriptStep("host of replica-\(r) suspended for \(duration.traceText)") { w in w.suspend(r, for: duration) }
    }
}
