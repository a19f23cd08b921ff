import KLCore
import KLSystem

/// Options of the scheduler; defaults as `pager-tester run --help` shows.
public struct SchedulerOptions: Sendable {
    /// Check each test incident this long after creating it (nil: never).
    public var verifyAfter: Duration?
    /// Resolve the test incident this long after creating it if nobody did.
    public var resolveAfter: Duration?
    /// Checks before concluding `no-notification` or `notification-failed`:
    /// the wait doubles each time, since notification rules can delay
    /// notifications and a later rule may succeed (default 3).
    public var verifyAttempts = 3
    /// A fire time picked up later than this while pager-tester was not busy
    /// paging is skipped (default 5 min).
    public var missedGrace: Duration = .seconds(300)
    /// Longest single sleep, so a wall-clock jump is noticed quickly (default 30 s).
    public var maxSleep: Duration = .seconds(30)
    /// Log what would be sent; send nothing.
    public var dryRun = false
    /// Most incident creations in any 60 s (PagerDuty allows about 6 a minute
    /// per service; default 6). Pages due together wait for a slot.
    public var maxCreatesPerMinute = 6
    /// Attempts of one page after a 5xx or network error (default 3): the
    /// `incident_key` makes a retry safe (PagerDuty refuses a duplicate).
    public var createAttempts = 3
    /// Wait between those attempts (default 30 s).
    public var createRetryWait: Duration = .seconds(30)

    public init() {}
}

/// A page whose fire time has come, waiting for its turn.
public struct QueuedPage: Sendable, Equatable {
    public var person: Int
    public var fireTime: WallTime
    /// Not before this time (a 429's reset, a retry's wait).
    public var notBefore: WallTime
    public var attempt = 1
    /// Ask PagerDuty for the `incident_key` before creating: the fire time is
    /// from before this process started (a previous run or replica may have
    /// paged it, and the person may even have resolved it already), or an
    /// earlier attempt may have reached PagerDuty.
    public var lookUpFirst: Bool
}

/// Runs the pages one job at a time: each person's cron fire times plus the
/// follow-ups (verify, resolve) of the incidents created. This file decides
/// which job is due and when (queue, pacing, lateness, follow-ups); the page
/// runner that carries a job out against PagerDuty is
/// PagerScheduler+PageRunner.swift.
///
/// Never twice:
/// 1. Each page carries `incident_key` `pager-tester/PERSON_ID/FIRE_TIME`.
///    PagerDuty refuses a second create with the key while the first
///    incident is open; that refusal counts as "already paged".
/// 2. At start-up, fire times of the last `catchUpWindow` (`missedGrace`
///    plus the minutes pacing needs to page everybody) are replayed, after
///    looking their key up (`GET /incidents?incident_key=`): a restart or a
///    fail-over in the middle of a fire time pages the rest, nobody twice.
/// 3. A wall-clock jump backward never repeats a page: a person's next fire
///    time is always after the last one handled.
///
/// Nobody skipped:
/// 4. Due pages wait in a queue and are sent at most `maxCreatesPerMinute`
///    per 60 s; a 429 re-queues the page after `ratelimit-reset`. A queued
///    page is never dropped for waiting.
/// 5. A fire time is skipped only when it is noticed more than `missedGrace`
///    late while pager-tester was not busy (process suspended, wall clock
///    jumped), or when the same person still has a page queued. Each skip
///    is an error-level log line and `pager_tester_pages_skipped_total`.
public struct PagerScheduler: Sendable {
    public var people: [Person]
    public var client: PagerDutyClient
    public var options: SchedulerOptions
    public let metrics: PagerMetrics
    var logger: Logger { client.logger }
    var clock: any BlockingClock<WallTime> { client.clock }
    /// Next fire time per person not yet noticed (same order as `people`).
    public private(set) var nextFire: [WallTime?]
    /// The last fire time noticed per person.
    var lastNoticed: [WallTime?]
    /// Due pages, waiting for their turn.
    public internal(set) var queue: [QueuedPage] = []
    /// Verify and resolve jobs waiting for their time.
    public internal(set) var followUps: [FollowUp] = []
    /// Times of the creations in the last 60 s (the pacing window).
    var recentCreates: [WallTime] = []
    /// When this scheduler started: earlier fire times are looked up first.
    public let startedAt: WallTime
    /// Fire times this far back are replayed at start-up.
    public let catchUpWindow: Duration
    var lastCheck: WallTime?
    var lastStepRanJob = false
    /// The final verdicts logged so far (person name, verdict).
    public internal(set) var verdicts: [(String, PageVerdict)] = []
    /// Incidents pager-tester resolved itself.
    var resolvedIncidents: [String] = []

    public var pagesSent: Int { metrics.sent }
    public var pagesFailed: Int { metrics.failed }
    public var pagesMissed: Int { metrics.skipped }

    public struct FollowUp: Sendable {
        public enum Kind: Sendable, Equatable { case verify(attempt: Int), resolve }
        public var kind: Kind
        public var person: Int
        public var incident: CreatedIncident
        public var due: WallTime
    }

    public init(people: [Person], client: PagerDutyClient, options: SchedulerOptions) {
        self.people = people
        self.options = options
        let metrics = client.metrics ?? PagerMetrics()
        for p in people { metrics.register(personID: p.id, name: p.name) }
        self.metrics = metrics
        var client = client
        client.metrics = metrics
        self.client = client
        let now = client.clock.now
        startedAt = now
        let perMinute = max(1, options.maxCreatesPerMinute)
        catchUpWindow = options.missedGrace + .seconds(60 * ((people.count + perMinute - 1) / perMinute))
        let from = now.adding(.zero - catchUpWindow)
        nextFire = people.map { $0.cron.next(after: from) }
        lastNoticed = people.map { _ in nil }
    }

    /// Runs until `stop` (forever when nil).
    public mutating func run(until stop: WallTime? = nil) {
        logger.info("scheduler started", ("people", .number(String(people.count))),
                    ("dry_run", .bool(options.dryRun)), ("max_creates_per_minute", .number(String(options.maxCreatesPerMinute))),
                    ("catch_up_seconds", .number(String(catchUpWindow.components.seconds))))
        for (person, fire) in zip(people, nextFire) {
            guard let fire else { continue }
            logger.info(fire <= startedAt ? "replaying recent fire time" : "next page",
                        ("person.name", .string(person.name)), ("person.id", .string(person.id)),
                        ("fire_time", .string(RFC3339.format(fire))),
                        ("fire_time_local", .string(formatLocal(fire, in: person.cron.zone) + " " + person.cron.zone.name)))
        }
        while stop.map({ clock.now < $0 }) ?? true {
            step(until: stop)
        }
    }

    /// Notices due fire times, then runs the earliest due job, or sleeps
    /// toward it (at most `maxSleep`).
    public mutating func step(until stop: WallTime? = nil) {
        let now = clock.now
        noticeDueFireTimes(now)
        var best: WallTime? = nil
        var page: Int? = nil
        var followUp: Int? = nil
        if let i = queue.indices.min(by: { order(queue[$0]) < order(queue[$1]) }) {
            best = max(queue[i].notBefore, options.dryRun ? now : nextCreateSlot(now))
            page = i
        }
        if let i = followUps.indices.min(by: { followUps[$0].due < followUps[$1].due }), best == nil || followUps[i].due < best! {
            best = followUps[i].due
            followUp = i
            page = nil
        }
        for t in nextFire { if let t, best == nil || t < best! { best = t; page = nil; followUp = nil } }
        lastCheck = now
        guard let due = best, due <= now, page != nil || followUp != nil else {
            var wait = best.map { min($0.duration(since: now), options.maxSleep) } ?? options.maxSleep
            if let stop, stop > now { wait = min(wait, stop.duration(since: now)) }
            lastStepRanJob = false
            clock.sleep(for: max(wait, .milliseconds(1)))
            return
        }
        lastStepRanJob = true
        if let i = page {
            runPage(queue.remove(at: i))
        } else if let i = followUp {
            runFollowUp(followUps.remove(at: i))
        }
    }

    /// Queue order: earliest allowed time, then fire time, then file order.
    func order(_ p: QueuedPage) -> (Int64, Int32, Int64, Int) {
        (p.notBefore.seconds, p.notBefore.nanoseconds, p.fireTime.seconds, p.person)
    }

    /// The earliest time the next creation keeps within `maxCreatesPerMinute`.
    mutating func nextCreateSlot(_ now: WallTime) -> WallTime {
        // A wall-clock jump backward leaves "future" entries: drop them
        // rather than wait for them (a 429 would re-queue the page anyway).
        recentCreates.removeAll { $0 <= now.adding(.seconds(-60)) || $0 > now }
        let limit = max(1, options.maxCreatesPerMinute)
        guard recentCreates.count >= limit else { return now }
        return recentCreates[recentCreates.count - limit].adding(.seconds(60))
    }

    /// How long a job may take before the time it took counts as a
    /// suspension or clock jump rather than work: a verification makes two
    /// requests, each of which may wait out 429s up to `jobTimeout`.
    var jobBound: Duration { client.jobTimeout * 2 + client.requestTimeout * 4 }

    /// Whether fire time `t`, noticed at `now`, is too late to page.
    func isLate(_ t: WallTime, now: WallTime) -> Bool {
        let late = now.duration(since: t)
        if t <= startedAt { return late > catchUpWindow }
        // It came due while we were busy with a (bounded) job: not late.
        if lastStepRanJob, let check = lastCheck, t > check, now.duration(since: check) <= jobBound { return false }
        return late > options.missedGrace
    }

    /// Moves fire times that have come into the queue, or skips them loudly.
    mutating func noticeDueFireTimes(_ now: WallTime) {
        for i in people.indices {
            guard var t = nextFire[i], t <= now else { continue }
            let person = people[i]
            var keep: WallTime? = nil
            var late: [WallTime] = []
            var lateCount = 0
            var coalesced = 0
            var seen = 0
            while t <= now, seen < 100_000 {
                seen += 1
                if isLate(t, now: now) {
                    lateCount += 1
                    if late.count < 3 { late.append(t) }
                } else {
                    if keep != nil { coalesced += 1 }
                    keep = t
                }
                lastNoticed[i] = t
                guard let n = person.cron.next(after: t) else { break }
                t = n
            }
            nextFire[i] = person.cron.next(after: max(now, lastNoticed[i] ?? now))
            if let keep {
                if queue.contains(where: { $0.person == i }) {
                    coalesced += 1
                } else {
                    queue.append(QueuedPage(person: i, fireTime: keep, notBefore: keep, lookUpFirst: keep <= startedAt))
                }
            }
            let md: [(String, JSON)] = [("person.name", .string(person.name)), ("person.id", .string(person.id))]
            if lateCount > 0 {
                metrics.recordSkip(personID: person.id, name: person.name, reason: .late, count: lateCount)
                logger.log(.error, "missed page", md + [
                    ("fire_times", .array(late.map { .string(RFC3339.format($0)) })), ("missed_count", .number(String(lateCount))),
                    ("late_seconds", .number(String(now.duration(since: late[0]).components.seconds))),
                    ("reason", "picked up later than --missed-grace while not busy (process down or suspended, wall clock jumped)"),
                ])
            }
            if coalesced > 0 {
                metrics.recordSkip(personID: person.id, name: person.name, reason: .coalesced, count: coalesced)
                logger.log(.error, "missed page", md + [
                    ("missed_count", .number(String(coalesced))),
                    ("reason", "a page for this person is still queued; fire times are closer together than the queue drains"),
                ])
            }
        }
    }

    /// Queues the verify and resolve follow-ups of an incident.
    public mutating func schedule(_ incident: CreatedIncident, person: Int) {
        let now = clock.now
        if let v = options.verifyAfter {
            followUps.append(FollowUp(kind: .verify(attempt: 1), person: person, incident: incident, due: now.adding(v)))
        }
        if let r = options.resolveAfter {
            followUps.append(FollowUp(kind: .resolve, person: person, incident: incident, due: now.adding(r)))
        }
    }
}

extension PagerScheduler {
    /// Runs the queue and the follow-ups only, earliest first (`notify`).
    public mutating func stepFollowUps() {
        guard let i = followUps.indices.min(by: { followUps[$0].due < followUps[$1].due }) else { return }
        let now = clock.now
        if followUps[i].due > now {
            clock.sleep(for: min(followUps[i].due.duration(since: now), options.maxSleep))
            return
        }
        runFollowUp(followUps.remove(at: i))
    }
}
