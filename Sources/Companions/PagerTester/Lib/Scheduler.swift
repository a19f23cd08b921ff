import KLCore
import KLSupport

/// Options of the scheduler; defaults as `pager-tester run --help` shows.
public struct SchedulerOptions: Sendable {
    /// Check each test incident this long after creating it (nil: never).
    public var verifyAfter: Duration?
    /// Resolve the test incident this long after creating it if nobody did.
    public var resolveAfter: Duration?
    /// Checks before concluding `no-notification`: the wait doubles each
    /// time, since notification rules can delay notifications (default 3).
    public var verifyAttempts = 3
    /// A fire time picked up later than this is skipped as missed (default 5 min).
    public var missedGrace: Duration = .seconds(300)
    /// Longest single sleep, so a wall-clock jump is noticed quickly (default 30 s).
    public var maxSleep: Duration = .seconds(30)
    /// Log what would be sent; send nothing.
    public var dryRun = false

    public init() {}
}

/// Runs the pages one at a time: each person's cron fire times plus the
/// follow-ups (verify, resolve) of the incidents created.
///
/// Missed fire times (no burst of pages):
/// 1. At start-up the first fire time is the next one after now: times
///    missed while the process was down are not replayed (there is no state
///    file to know whether they were sent).
/// 2. A fire time picked up more than `missedGrace` late (the process was
///    suspended, the wall clock jumped forward, earlier jobs took long) is
///    skipped and logged as `missed page`.
/// 3. After a job, the person's next fire time is the first one after both
///    the fire time just handled and the current time: fire times that passed
///    meanwhile are dropped (counted in the log), so a person gets at most one
///    page per wake-up.
/// 4. A wall-clock jump backward never repeats a page: the next fire time is
///    always after the last one handled. Sleeps last at most `maxSleep`, so
///    jumps are noticed within that time.
public struct PagerScheduler: Sendable {
    public var people: [Person]
    public var client: PagerDutyClient
    public var options: SchedulerOptions
    var logger: Logger { client.logger }
    var clock: any PagerClock { client.clock }
    /// Next fire time per person (same order as `people`).
    public private(set) var nextFire: [WallTime?]
    /// Verify and resolve jobs waiting for their time.
    public private(set) var followUps: [FollowUp] = []
    public private(set) var pagesSent = 0
    public private(set) var pagesFailed = 0
    public private(set) var pagesMissed = 0
    /// The final verdicts logged so far (person name, verdict).
    public private(set) var verdicts: [(String, PageVerdict)] = []

    public struct FollowUp: Sendable {
        public enum Kind: Sendable, Equatable { case verify(attempt: Int), resolve }
        public var kind: Kind
        public var person: Int
        public var incident: CreatedIncident
        public var due: WallTime
    }

    public init(people: [Person], client: PagerDutyClient, options: SchedulerOptions) {
        self.people = people
        self.client = client
        self.options = options
        let now = client.clock.now()
        nextFire = people.map { $0.cron.next(after: now) }
    }

    /// Runs until `stop` (forever when nil).
    public mutating func run(until stop: WallTime? = nil) {
        logger.info("scheduler started", ("people", .number(String(people.count))),
                    ("dry_run", .bool(options.dryRun)))
        for (person, fire) in zip(people, nextFire) {
            guard let fire else { continue }
            logger.info("next page", ("person.name", .string(person.name)), ("person.id", .string(person.id)),
                        ("fire_time", .string(RFC3339.format(fire))),
                        ("fire_time_local", .string(formatLocal(fire, in: person.cron.zone) + " " + person.cron.zone.name)))
        }
        while stop.map({ clock.now() < $0 }) ?? true {
            step(until: stop)
        }
    }

    /// Runs the earliest due job, or sleeps toward it (at most `maxSleep`).
    public mutating func step(until stop: WallTime? = nil) {
        let now = clock.now()
        var best: (due: WallTime, page: Int?, followUp: Int?)? = nil
        for (i, t) in nextFire.enumerated() {
            if let t, best == nil || t < best!.due { best = (t, i, nil) }
        }
        for (i, f) in followUps.enumerated() where best == nil || f.due < best!.due {
            best = (f.due, nil, i)
        }
        guard let best else {
            clock.sleep(for: options.maxSleep)
            return
        }
        if best.due > now {
            var wait = min(best.due.duration(since: now), options.maxSleep)
            if let stop, stop > now { wait = min(wait, stop.duration(since: now)) }
            clock.sleep(for: wait)
            return
        }
        if let i = best.page {
            runPage(i, fireTime: best.due, pickedUp: now)
        } else if let i = best.followUp {
            let job = followUps.remove(at: i)
            runFollowUp(job)
        }
    }

    mutating func runPage(_ i: Int, fireTime: WallTime, pickedUp: WallTime) {
        let person = people[i]
        let late = pickedUp.duration(since: fireTime)
        if late > options.missedGrace {
            pagesMissed += 1
            logger.warning("missed page", ("person.name", .string(person.name)), ("person.id", .string(person.id)),
                           ("fire_time", .string(RFC3339.format(fireTime))), ("late_seconds", .number(String(Int(late.seconds)))))
        } else if let incident = page(person, fireTime: fireTime) {
            schedule(incident, person: i)
        }
        // Next fire time after both the one handled and now (rule 3).
        let after = max(fireTime, clock.now())
        var dropped = 0
        var t = fireTime
        while dropped < 1000, let n = person.cron.next(after: t), n <= after {
            dropped += 1
            t = n
        }
        if dropped > 0 {
            pagesMissed += dropped
            logger.warning("missed page", ("person.name", .string(person.name)), ("person.id", .string(person.id)),
                           ("missed_count", .number(String(dropped))), ("reason", "busy or clock jump"))
        }
        nextFire[i] = person.cron.next(after: after)
    }

    /// Creates one test incident for `person` now (also `notify`). Logs the
    /// outcome; returns nil on failure or dry run.
    public mutating func page(_ person: Person, fireTime: WallTime? = nil) -> CreatedIncident? {
        var md: [(String, JSON)] = [("person.name", .string(person.name)), ("person.id", .string(person.id))]
        if let fireTime { md.append(("fire_time", .string(RFC3339.format(fireTime)))) }
        if options.dryRun {
            logger.log(.info, "dry run: would create test incident",
                       md + [("http.method", "POST"), ("http.url", .string(client.settings.apiURL + "/incidents")),
                             ("http.from", .string(client.settings.from)), ("http.body", client.incidentBody(for: person))])
            return nil
        }
        do throws(PagerError) {
            let incident = try client.createIncident(for: person)
            pagesSent += 1
            logger.log(.info, "created test incident",
                       md + [("incident.id", .string(incident.id)), ("incident.url", .string(incident.url))])
            return incident
        } catch {
            pagesFailed += 1
            var emd = md + [("error", .string(error.message))]
            if let s = error.status { emd.append(("http.status", .number(String(s)))) }
            if let b = error.body { emd.append(("http.body", .string(b))) }
            logger.log(.error, "test page failed", emd)
            return nil
        }
    }

    /// Queues the verify and resolve follow-ups of a new incident.
    public mutating func schedule(_ incident: CreatedIncident, person: Int) {
        let now = clock.now()
        if let v = options.verifyAfter {
            followUps.append(FollowUp(kind: .verify(attempt: 1), person: person, incident: incident, due: now.adding(v)))
        }
        if let r = options.resolveAfter {
            followUps.append(FollowUp(kind: .resolve, person: person, incident: incident, due: now.adding(r)))
        }
    }

    mutating func runFollowUp(_ job: FollowUp) {
        let person = people[job.person]
        let md: [(String, JSON)] = [("person.name", .string(person.name)), ("person.id", .string(person.id)),
                                     ("incident.id", .string(job.incident.id)), ("incident.url", .string(job.incident.url))]
        let resolvedByUs = resolvedIncidents.contains(job.incident.id)
        switch job.kind {
        case .resolve:
            do throws(PagerError) {
                let status = try client.incidentStatus(job.incident.id)
                if status == "resolved" {
                    logger.log(.info, "test incident already resolved", md)
                } else {
                    try client.resolve(job.incident.id)
                    resolvedIncidents.append(job.incident.id)
                    logger.log(.info, "resolved test incident", md + [("incident.previous_status", .string(status))])
                }
            } catch {
                logger.log(.error, "could not resolve test incident", md + [("error", .string(error.message))])
            }
        case .verify(let attempt):
            var outcome: (verdict: PageVerdict, channels: [String], status: String)? = nil
            do throws(PagerError) {
                let status = try client.incidentStatus(job.incident.id)
                let entries = try client.logEntries(job.incident.id)
                let j = PageVerdict.judge(status: status, logEntries: entries, personID: person.id, resolvedByUs: resolvedByUs)
                outcome = (j.verdict, j.channels, status)
            } catch {
                logger.log(.error, "could not verify test incident", md + [("error", .string(error.message)),
                                                                          ("attempt", .number(String(attempt)))])
            }
            let final = attempt >= options.verifyAttempts
            if outcome == nil || outcome?.verdict == .noNotification, !final, let v = options.verifyAfter {
                // Notification rules can delay notifications: back off.
                var again = job
                again.kind = .verify(attempt: attempt + 1)
                again.due = clock.now().adding(v * (1 << min(attempt, 10)))
                followUps.append(again)
                return
            }
            guard let outcome else { return }
            verdicts.append((person.name, outcome.verdict))
            logger.log(outcome.verdict == .noNotification ? .warning : .info, "page verdict",
                       md + [("verdict", .string(outcome.verdict.rawValue)), ("incident.status", .string(outcome.status)),
                             ("notification.channels", .array(outcome.channels.map { .string($0) })),
                             ("attempt", .number(String(attempt)))])
        }
    }

    /// Incidents pager-tester resolved itself.
    var resolvedIncidents: [String] = []
}

extension PagerScheduler {
    /// Runs or waits for the earliest follow-up only (`notify`).
    public mutating func stepFollowUps() {
        guard let i = followUps.indices.min(by: { followUps[$0].due < followUps[$1].due }) else { return }
        let now = clock.now()
        if followUps[i].due > now {
            clock.sleep(for: min(followUps[i].due.duration(since: now), options.maxSleep))
            return
        }
        runFollowUp(followUps.remove(at: i))
    }
}
