import KLCore
import Synchronization

/// pager-tester's Prometheus metrics (text exposition format 0.0.4), shared
/// by the scheduler, the PagerDuty client and the `--metrics-addr` server.
///
/// - `pager_tester_last_verdict{person_id,name,verdict}`: 1 for the person's
///   last verdict, 0 for the other three (all 0 before the first verdict);
/// - `pager_tester_last_verdict_timestamp_seconds{person_id,name}`;
/// - `pager_tester_pages_sent_total`, `…_failed_total`,
///   `…_deduplicated_total` (PagerDuty or the start-up look-up said "already
///   paged"), `pager_tester_pages_skipped_total{person_id,name,reason}`;
/// - `pager_tester_rate_limit_waits_total`: 429 answers waited out.
public final class PagerMetrics: Sendable {
    struct Person: Sendable {
        var id: String
        var name: String
        var verdict: PageVerdict?
        var verdictTime: WallTime?
        var skippedLate = 0
        var skippedCoalesced = 0
    }

    struct State: Sendable {
        var people: [Person] = []
        var sent = 0
        var failed = 0
        var deduplicated = 0
        var rateLimitWaits = 0
    }

    /// Why a fire time was skipped.
    public enum SkipReason: String, Sendable {
        /// Picked up later than `--missed-grace` (process down or suspended,
        /// wall clock jumped).
        case late
        /// Another page for the same person was still queued.
        case coalesced
    }

    private let state = Mutex(State())

    public init(people: [(id: String, name: String)] = []) {
        state.withLock { s in s.people = people.map { Person(id: $0.id, name: $0.name) } }
    }

    /// Adds a person (their series show 0 until something happens).
    public func register(personID: String, name: String) {
        state.withLock { s in _ = index(&s, personID, name) }
    }

    func index(_ s: inout State, _ id: String, _ name: String) -> Int {
        if let i = s.people.firstIndex(where: { $0.id == id && $0.name == name }) { return i }
        s.people.append(Person(id: id, name: name))
        return s.people.count - 1
    }

    public func recordVerdict(personID: String, name: String, verdict: PageVerdict, at time: WallTime) {
        state.withLock { s in
            let i = index(&s, personID, name)
            s.people[i].verdict = verdict
            s.people[i].verdictTime = time
        }
    }

    public func recordSkip(personID: String, name: String, reason: SkipReason, count: Int = 1) {
        state.withLock { s in
            let i = index(&s, personID, name)
            switch reason {
            case .late: s.people[i].skippedLate += count
            case .coalesced: s.people[i].skippedCoalesced += count
            }
        }
    }

    public func pageSent() { state.withLock { $0.sent += 1 } }
    public func pageFailed() { state.withLock { $0.failed += 1 } }
    public func pageDeduplicated() { state.withLock { $0.deduplicated += 1 } }
    public func rateLimitWait() { state.withLock { $0.rateLimitWaits += 1 } }

    public var sent: Int { state.withLock { $0.sent } }
    public var failed: Int { state.withLock { $0.failed } }
    public var deduplicated: Int { state.withLock { $0.deduplicated } }
    public var rateLimitWaits: Int { state.withLock { $0.rateLimitWaits } }
    public var skipped: Int { state.withLock { $0.people.reduce(0) { $0 + $1.skippedLate + $1.skippedCoalesced } } }

    /// The last verdict per person id (nil before the first).
    public func lastVerdict(personID: String) -> PageVerdict? {
        state.withLock { s in s.people.first(where: { $0.id == personID })?.verdict }
    }

    /// The exposition text served at `/metrics`.
    public func exposition() -> String {
        let s = state.withLock { $0 }
        var out = PrometheusText()
        func labels(_ p: Person) -> [PrometheusText.Label] { [("person_id", p.id), ("name", p.name)] }
        out.family("pager_tester_last_verdict", .gauge,
                   help: "1 for the verdict of the person's last verified test page, 0 for the other verdicts (all 0 before the first).")
        for p in s.people {
            for v in PageVerdict.allCases {
                out.sample("pager_tester_last_verdict", labels(p) + [("verdict", v.rawValue)], p.verdict == v ? 1 : 0)
            }
        }
        out.family("pager_tester_last_verdict_timestamp_seconds", .gauge, help: "When the person's last verdict was reached (Unix seconds).")
        for p in s.people {
            guard let t = p.verdictTime else { continue }
            out.sample("pager_tester_last_verdict_timestamp_seconds", labels(p), "\(t.seconds)")
        }
        out.family("pager_tester_pages_sent_total", .counter, help: "Test incidents created.")
        out.sample("pager_tester_pages_sent_total", s.sent)
        out.family("pager_tester_pages_failed_total", .counter, help: "Test pages PagerDuty did not accept (after retries).")
        out.sample("pager_tester_pages_failed_total", s.failed)
        out.family("pager_tester_pages_deduplicated_total", .counter,
                   help: "Test pages not sent because PagerDuty already had an incident with the same incident_key.")
        out.sample("pager_tester_pages_deduplicated_total", s.deduplicated)
        out.family("pager_tester_pages_skipped_total", .counter, help: "Fire times skipped without a page, per person and reason.")
        for p in s.people {
            out.sample("pager_tester_pages_skipped_total", labels(p) + [("reason", "late")], p.skippedLate)
            out.sample("pager_tester_pages_skipped_total", labels(p) + [("reason", "coalesced")], p.skippedCoalesced)
        }
        out.family("pager_tester_rate_limit_waits_total", .counter, help: "429 (rate limited) answers from PagerDuty that were waited out.")
        out.sample("pager_tester_rate_limit_waits_total", s.rateLimitWaits)
        return out.text
    }
}
