import KLCore

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

/// Decides which page or follow-up is due and when to wake up: a pure
/// machine. Its inputs are the time (read from a clock by the caller), the
/// people's schedules and what the runner reports back (a create went out,
/// a page must wait, an incident exists); its output is the next `Action`
/// (run this job, or sleep until then) and the fire times it skipped. It
/// does no I/O, reads no clock and never sleeps: `PageRunner`
/// (PageRunner.swift) carries the jobs out against PagerDuty and sleeps.
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
///    is returned as a `Skip` (the runner logs it at error level and counts
///    it in `pager_tester_pages_skipped_total`).
public struct PagerScheduler: Sendable {
    public struct FollowUp: Sendable, Equatable {
        public enum Kind: Sendable, Equatable { case verify(attempt: Int), resolve }
        public var kind: Kind
        public var person: Int
        public var incident: CreatedIncident
        public var due: WallTime
    }

    /// A job for the runner.
    public enum Job: Sendable, Equatable {
        case page(QueuedPage)
        case followUp(FollowUp)
    }

    /// What to do now.
    public enum Action: Sendable, Equatable {
        /// Carry out this job now (it has left the queue).
        case run(Job)
        /// Nothing is due: sleep until then (at most `maxSleep` ahead, so a
        /// wall-clock jump is noticed quickly), then ask again.
        case sleep(until: WallTime)
    }

    /// Fire times of one person that will not be paged, found as they came due.
    public struct Skip: Sendable, Equatable {
        public var person: Int
        /// The first (at most three) fire times noticed too late.
        public var late: [WallTime]
        /// All fire times noticed too late.
        public var lateCount: Int
        /// Fire times folded into a page that is queued or kept.
        public var coalesced: Int
    }

    /// Each person's schedule (same order as the people).
    public let schedules: [CronExpression]
    public let options: SchedulerOptions
    /// How long a job may take before the time it took counts as a
    /// suspension or clock jump rather than work (the runner sets it from its
    /// request timeouts).
    public var jobBound: Duration
    /// Next fire time per person not yet noticed.
    public private(set) var nextFire: [WallTime?]
    /// The last fire time noticed per person.
    private var lastNoticed: [WallTime?]
    /// Due pages, waiting for their turn.
    public private(set) var queue: [QueuedPage] = []
    /// Verify and resolve jobs waiting for their time.
    public private(set) var followUps: [FollowUp] = []
    /// Times of the creations in the last 60 s (the pacing window).
    private var recentCreates: [WallTime] = []
    /// When this scheduler started: earlier fire times are looked up first.
    public let startedAt: WallTime
    /// Fire times this far back are replayed at start-up.
    public let catchUpWindow: Duration
    private var lastCheck: WallTime?
    private var lastStepRanJob = false

    public init(schedules: [CronExpression], options: SchedulerOptions, startedAt: WallTime, jobBound: Duration) {
        self.schedules = schedules
        self.options = options
        self.jobBound = jobBound
        self.startedAt = startedAt
        let perMinute = max(1, options.maxCreatesPerMinute)
        catchUpWindow = options.missedGrace + .seconds(60 * ((schedules.count + perMinute - 1) / perMinute))
        let from = startedAt.adding(.zero - catchUpWindow)
        nextFire = schedules.map { $0.next(after: from) }
        lastNoticed = schedules.map { _ in nil }
    }

    /// At `now`: notices due fire times (returning those it skips), then
    /// hands out the earliest due job, or says when to wake up (never after
    /// `stop`, never less than 1 ms ahead).
    public mutating func next(now: WallTime, stop: WallTime? = nil) -> (skips: [Skip], action: Action) {
        let skips = noticeDueFireTimes(now)
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
            return (skips, .sleep(until: now.adding(max(wait, .milliseconds(1)))))
        }
        lastStepRanJob = true
        if let i = page { return (skips, .run(.page(queue.remove(at: i)))) }
        return (skips, .run(.followUp(followUps.remove(at: followUp!))))
    }

    /// The follow-ups only, earliest first (`notify`): nil when none is left.
    public mutating func nextFollowUp(now: WallTime) -> Action? {
        guard let i = followUps.indices.min(by: { followUps[$0].due < followUps[$1].due }) else { return nil }
        if followUps[i].due > now {
            return .sleep(until: now.adding(min(followUps[i].due.duration(since: now), options.maxSleep)))
        }
        return .run(.followUp(followUps.remove(at: i)))
    }

    // MARK: what the runner reports

    /// A creation goes out at `now`: it counts against `maxCreatesPerMinute`.
    public mutating func creating(at now: WallTime) {
        recentCreates.append(now)
    }

    /// PagerDuty answered 429: the page waits `wait` from `now`.
    public mutating func rateLimited(_ page: QueuedPage, wait: Duration, now: WallTime) {
        var page = page
        page.notBefore = now.adding(wait)
        queue.append(page)
    }

    /// A create failed in a way worth retrying (5xx, network): true when the
    /// page is queued again (`createRetryWait` from `now`, looking its key up
    /// first: PagerDuty may have created it); false after `createAttempts`.
    public mutating func retryCreate(_ page: QueuedPage, now: WallTime) -> Bool {
        guard page.attempt < options.createAttempts else { return false }
        var page = page
        page.attempt += 1
        page.lookUpFirst = true
        page.notBefore = now.adding(options.createRetryWait)
        queue.append(page)
        return true
    }

    /// An incident exists for a page (created, or found already paged) at
    /// `now`: queues its verify and resolve follow-ups.
    public mutating func paged(_ incident: CreatedIncident, person: Int, now: WallTime) {
        if let v = options.verifyAfter {
            followUps.append(FollowUp(kind: .verify(attempt: 1), person: person, incident: incident, due: now.adding(v)))
        }
        if let r = options.resolveAfter {
            followUps.append(FollowUp(kind: .resolve, person: person, incident: incident, due: now.adding(r)))
        }
    }

    /// A verification found no notification yet (or could not ask): true
    /// when it is tried again, the wait doubling each time (notification
    /// rules can delay notifications, and a later rule may still succeed);
    /// false once `verifyAttempts` are used.
    public mutating func verifyAgain(_ job: FollowUp, now: WallTime) -> Bool {
        guard case .verify(let attempt) = job.kind, attempt < options.verifyAttempts, let v = options.verifyAfter else { return false }
        var again = job
        again.kind = .verify(attempt: attempt + 1)
        again.due = now.adding(v * (1 << min(attempt, 10)))
        followUps.append(again)
        return true
    }

    // MARK: inside

    /// Queue order: earliest allowed time, then fire time, then file order.
    private func order(_ p: QueuedPage) -> (Int64, Int32, Int64, Int) {
        (p.notBefore.seconds, p.notBefore.nanoseconds, p.fireTime.seconds, p.person)
    }

    /// The earliest time the next creation keeps within `maxCreatesPerMinute`.
    private mutating func nextCreateSlot(_ now: WallTime) -> WallTime {
        // A wall-clock jump backward leaves "future" entries: drop them
        // rather than wait for them (a 429 would re-queue the page anyway).
        recentCreates.removeAll { $0 <= now.adding(.seconds(-60)) || $0 > now }
        let limit = max(1, options.maxCreatesPerMinute)
        guard recentCreates.count >= limit else { return now }
        return recentCreates[recentCreates.count - limit].adding(.seconds(60))
    }

    /// Whether fire time `t`, noticed at `now`, is too late to page.
    private func isLate(_ t: WallTime, now: WallTime) -> Bool {
        let late = now.duration(since: t)
        if t <= startedAt { return late > catchUpWindow }
        // It came due while we were busy with a (bounded) job: not late.
        if lastStepRanJob, let check = lastCheck, t > check, now.duration(since: check) <= jobBound { return false }
        return late > options.missedGrace
    }

    /// Moves fire times that have come into the queue; returns those skipped.
    private mutating func noticeDueFireTimes(_ now: WallTime) -> [Skip] {
        var skips: [Skip] = []
        for i in schedules.indices {
            guard var t = nextFire[i], t <= now else { continue }
            let cron = schedules[i]
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
                guard let n = cron.next(after: t) else { break }
                t = n
            }
            nextFire[i] = cron.next(after: max(now, lastNoticed[i] ?? now))
            if let keep {
                if queue.contains(where: { $0.person == i }) {
                    coalesced += 1
                } else {
                    queue.append(QueuedPage(person: i, fireTime: keep, notBefore: keep, lookUpFirst: keep <= startedAt))
                }
            }
            if lateCount > 0 || coalesced > 0 {
                skips.append(Skip(person: i, late: late, lateCount: lateCount, coalesced: coalesced))
            }
        }
        return skips
    }
}
