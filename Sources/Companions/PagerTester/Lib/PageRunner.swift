import KLCore
import KLSystem

/// Runs the pages: asks `PagerScheduler` (the pure machine deciding what is
/// due and when) for the next job at the clock's time, carries it out
/// against PagerDuty (create the test incident or find it already paged,
/// verify who was notified, resolve it) with its logs and metrics, reports
/// the outcome back to the scheduler, and sleeps when nothing is due.
public struct PageRunner: Sendable {
    public var people: [Person]
    /// Changing its timeouts (tests) updates the scheduler's `jobBound`.
    public var client: PagerDutyClient {
        didSet { scheduler.jobBound = Self.jobBound(client) }
    }
    public let metrics: PagerMetrics
    public private(set) var scheduler: PagerScheduler
    public var options: SchedulerOptions { scheduler.options }
    var logger: Logger { client.logger }
    var clock: any BlockingClock<WallTime> { client.clock }
    /// The final verdicts logged so far (person name, verdict).
    public internal(set) var verdicts: [(String, PageVerdict)] = []
    /// Incidents pager-tester resolved itself.
    var resolvedIncidents: [String] = []

    public var pagesSent: Int { metrics.sent }
    public var pagesFailed: Int { metrics.failed }
    public var pagesMissed: Int { metrics.skipped }

    public init(people: [Person], client: PagerDutyClient, options: SchedulerOptions) {
        self.people = people
        let metrics = client.metrics ?? PagerMetrics()
        for p in people { metrics.register(personID: p.id, name: p.name) }
        self.metrics = metrics
        var client = client
        client.metrics = metrics
        self.client = client
        scheduler = PagerScheduler(schedules: people.map(\.cron), options: options,
                                   startedAt: client.clock.now, jobBound: Self.jobBound(client))
    }

    /// How long a job may take before the time it took counts as a
    /// suspension or clock jump rather than work: a verification makes two
    /// requests, each of which may wait out 429s up to `jobTimeout`.
    static func jobBound(_ client: PagerDutyClient) -> Duration {
        client.jobTimeout * 2 + client.requestTimeout * 4
    }

    /// Runs until `stop` (forever when nil).
    public mutating func run(until stop: WallTime? = nil) {
        logger.info("scheduler started", ("people", .number(String(people.count))),
                    ("dry_run", .bool(options.dryRun)), ("max_creates_per_minute", .number(String(options.maxCreatesPerMinute))),
                    ("catch_up_seconds", .number(String(scheduler.catchUpWindow.components.seconds))))
        for (person, fire) in zip(people, scheduler.nextFire) {
            guard let fire else { continue }
            logger.info(fire <= scheduler.startedAt ? "replaying recent fire time" : "next page",
                        ("person.name", .string(person.name)), ("person.id", .string(person.id)),
                        ("fire_time", .string(RFC3339.format(fire))),
                        ("fire_time_local", .string(formatLocal(fire, in: person.cron.zone) + " " + person.cron.zone.name)))
        }
        while stop.map({ clock.now < $0 }) ?? true {
            step(until: stop)
        }
    }

    /// One turn: the scheduler's decision at the clock's time, then the job
    /// it hands out, or a sleep toward the next one (at most `maxSleep`).
    public mutating func step(until stop: WallTime? = nil) {
        let now = clock.now
        let (skips, action) = scheduler.next(now: now, stop: stop)
        for skip in skips { logSkip(skip, now: now) }
        perform(action, now: now)
    }

    /// Runs the follow-ups only, earliest first (`notify`).
    public mutating func stepFollowUps() {
        guard !scheduler.followUps.isEmpty else { return }
        let now = clock.now
        guard let action = scheduler.nextFollowUp(now: now) else { return }
        perform(action, now: now)
    }

    /// While the follow-ups of `notify` are not all done.
    public var hasFollowUps: Bool { !scheduler.followUps.isEmpty }

    mutating func perform(_ action: PagerScheduler.Action, now: WallTime) {
        switch action {
        case .sleep(let until): clock.sleep(for: until.duration(since: now))
        case .run(.page(let page)): runPage(page)
        case .run(.followUp(let job)): runFollowUp(job)
        }
    }

    /// Logs and counts the fire times the scheduler skipped for one person.
    func logSkip(_ skip: PagerScheduler.Skip, now: WallTime) {
        let person = people[skip.person]
        let md: [(String, JSON)] = [("person.name", .string(person.name)), ("person.id", .string(person.id))]
        if skip.lateCount > 0 {
            metrics.recordSkip(personID: person.id, name: person.name, reason: .late, count: skip.lateCount)
            logger.log(.error, "missed page", md + [
                ("fire_times", .array(skip.late.map { .string(RFC3339.format($0)) })), ("missed_count", .number(String(skip.lateCount))),
                ("late_seconds", .number(String(now.duration(since: skip.late[0]).components.seconds))),
                ("reason", "picked up later than --missed-grace while not busy (process down or suspended, wall clock jumped)"),
            ])
        }
        if skip.coalesced > 0 {
            metrics.recordSkip(personID: person.id, name: person.name, reason: .coalesced, count: skip.coalesced)
            logger.log(.error, "missed page", md + [
                ("missed_count", .number(String(skip.coalesced))),
                ("reason", "a page for this person is still queued; fire times are closer together than the queue drains"),
            ])
        }
    }

    /// Queues the verify and resolve follow-ups of an incident.
    mutating func schedule(_ incident: CreatedIncident, person: Int) {
        scheduler.paged(incident, person: person, now: clock.now)
    }

    func pageMetadata(_ person: Person, fireTime: WallTime, key: String) -> [(String, JSON)] {
        [("person.name", .string(person.name)), ("person.id", .string(person.id)),
         ("fire_time", .string(RFC3339.format(fireTime))), ("incident_key", .string(key)),
         ("urgency", .string((person.urgency ?? client.defaultUrgency).rawValue))]
    }

    /// Sends one queued page (or finds it already sent).
    mutating func runPage(_ page: QueuedPage) {
        let person = people[page.person]
        let key = PagerDutyClient.incidentKey(personID: person.id, fireTime: page.fireTime)
        let md = pageMetadata(person, fireTime: page.fireTime, key: key)
        if options.dryRun {
            logger.log(.info, "dry run: would create test incident",
                       md + [("http.method", "POST"), ("http.url", .string(client.settings.apiURL + "/incidents")),
                             ("http.from", .string(client.settings.from)), ("http.body", client.incidentBody(for: person, incidentKey: key))])
            return
        }
        if page.lookUpFirst {
            do throws(PagerError) {
                if let incident = try client.findIncident(incidentKey: key) {
                    alreadyPaged(page.person, incident: incident, md: md, how: "look-up")
                    return
                }
            } catch {
                logger.log(.warning, "could not look up the incident_key, creating the incident (PagerDuty still refuses a duplicate of an open incident)",
                           md + [("error", .string(error.message))])
            }
        }
        scheduler.creating(at: clock.now)
        do throws(PagerError) {
            let incident = try client.createIncident(for: person, incidentKey: key, waitOnRateLimit: false)
            metrics.pageSent()
            logger.log(.info, "created test incident", md + [("incident.id", .string(incident.id)), ("incident.url", .string(incident.url))])
            schedule(incident, person: page.person)
        } catch {
            switch error.code {
            case .duplicate:
                var found: CreatedIncident? = nil
                do throws(PagerError) { found = try client.findIncident(incidentKey: key) } catch {
                    logger.log(.warning, "could not look up the incident_key", md + [("error", .string(error.message))])
                }
                alreadyPaged(page.person, incident: found, md: md, how: "PagerDuty refused the duplicate incident_key")
            case .rateLimited:
                metrics.rateLimitWait()
                let wait = error.retryAfter ?? .seconds(60)
                scheduler.rateLimited(page, wait: wait, now: clock.now)
                logger.log(.warning, "rate limited by PagerDuty, page stays queued",
                           md + [("wait_seconds", .number(String(wait.components.seconds))), ("queued", .number(String(scheduler.queue.count)))])
            case _ where error.code == .transport || (error.code == .httpStatus && (error.status ?? 500) >= 500):
                var emd = md + [("error", .string(error.message)), ("attempt", .number(String(page.attempt)))]
                if let s = error.status { emd.append(("http.status", .number(String(s)))) }
                if let b = error.body { emd.append(("http.body", .string(b))) }
                // Safe to retry: PagerDuty may have created it, so the retry
                // looks the key up first; it refuses a duplicate of an open one.
                if scheduler.retryCreate(page, now: clock.now) {
                    logger.log(.warning, "test page failed, will retry", emd + [("retry_in_seconds", .number(String(options.createRetryWait.components.seconds)))])
                } else {
                    metrics.pageFailed()
                    logger.log(.error, "test page failed", emd)
                }
            default:
                metrics.pageFailed()
                var emd = md + [("error", .string(error.message))]
                if let s = error.status { emd.append(("http.status", .number(String(s)))) }
                if let b = error.body { emd.append(("http.body", .string(b))) }
                logger.log(.error, "test page failed", emd)
            }
        }
    }

    /// The fire time was paged before (by this or another process): verify
    /// that incident instead of paging again.
    mutating func alreadyPaged(_ i: Int, incident: CreatedIncident?, md: [(String, JSON)], how: String) {
        metrics.pageDeduplicated()
        var out = md + [("how", .string(how))]
        if let incident {
            out += [("incident.id", .string(incident.id)), ("incident.url", .string(incident.url)), ("incident.status", .string(incident.status))]
        }
        logger.log(.info, "already paged", out)
        if let incident { schedule(incident, person: i) }
    }

    /// Pages one person now, outside the schedule (`notify`): waits out
    /// 429s in place. Returns false when the page failed.
    public mutating func notifyNow(_ i: Int) -> Bool {
        let person = people[i]
        let now = clock.now
        let minute = WallTime(seconds: now.seconds - ((now.seconds % 60) + 60) % 60)
        let key = PagerDutyClient.incidentKey(personID: person.id, fireTime: minute)
        let md = pageMetadata(person, fireTime: minute, key: key)
        if options.dryRun {
            logger.log(.info, "dry run: would create test incident",
                       md + [("http.method", "POST"), ("http.url", .string(client.settings.apiURL + "/incidents")),
                             ("http.from", .string(client.settings.from)), ("http.body", client.incidentBody(for: person, incidentKey: key))])
            return true
        }
        do throws(PagerError) {
            let incident = try client.createIncident(for: person, incidentKey: key, waitOnRateLimit: true)
            metrics.pageSent()
            logger.log(.info, "created test incident", md + [("incident.id", .string(incident.id)), ("incident.url", .string(incident.url))])
            schedule(incident, person: i)
            return true
        } catch where error.code == .duplicate {
            alreadyPaged(i, incident: try? client.findIncident(incidentKey: key), md: md, how: "PagerDuty refused the duplicate incident_key")
            return true
        } catch {
            metrics.pageFailed()
            var emd = md + [("error", .string(error.message))]
            if let s = error.status { emd.append(("http.status", .number(String(s)))) }
            if let b = error.body { emd.append(("http.body", .string(b))) }
            logger.log(.error, "test page failed", emd)
            return false
        }
    }

    mutating func runFollowUp(_ job: PagerScheduler.FollowUp) {
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
            var outcome: (judgement: Judgement, status: String)? = nil
            do throws(PagerError) {
                let status = try client.incidentStatus(job.incident.id)
                let entries = try client.logEntries(job.incident.id)
                outcome = (PageVerdict.judge(status: status, logEntries: entries, personID: person.id, resolvedByUs: resolvedByUs), status)
            } catch {
                logger.log(.error, "could not verify test incident", md + [("error", .string(error.message)),
                                                                          ("attempt", .number(String(attempt)))])
            }
            // Notification rules can delay notifications, and a later rule
            // (a call after a failed SMS) may still succeed: the scheduler
            // backs off and asks again, up to `verifyAttempts`.
            if outcome.map({ !$0.judgement.verdict.isReachable }) ?? true, scheduler.verifyAgain(job, now: clock.now) {
                return
            }
            guard let outcome else { return }
            let verdict = outcome.judgement.verdict
            verdicts.append((person.name, verdict))
            metrics.recordVerdict(personID: person.id, name: person.name, verdict: verdict, at: clock.now)
            var vmd = md + [("verdict", .string(verdict.rawValue)), ("incident.status", .string(outcome.status)),
                            ("notification.channels", .array(outcome.judgement.channels.map { .string($0) })),
                            ("notifications", .array(outcome.judgement.notifications.map(\.json))),
                            ("attempt", .number(String(attempt)))]
            if verdict == .notificationFailed {
                vmd.append(("notification.failed", .array(outcome.judgement.failed.map(\.json))))
            }
            logger.log(verdict.isReachable ? .info : .error, "page verdict", vmd)
        }
    }
}
