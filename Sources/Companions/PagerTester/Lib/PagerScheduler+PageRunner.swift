import KLCore
import KLSystem

/// The page runner: the jobs `PagerScheduler` hands out, carried out against
/// PagerDuty (create the test incident or find it already paged, verify who
/// was notified, resolve it), with their logs and metrics. When to run them
/// is decided in PagerScheduler.swift.
extension PagerScheduler {
    func pageMetadata(_ person: Person, fireTime: WallTime, key: String) -> [(String, JSON)] {
        [("person.name", .string(person.name)), ("person.id", .string(person.id)),
         ("fire_time", .string(RFC3339.format(fireTime))), ("incident_key", .string(key)),
         ("urgency", .string((person.urgency ?? client.defaultUrgency).rawValue))]
    }

    /// Sends one queued page (or finds it already sent).
    mutating func runPage(_ queued: QueuedPage) {
        var page = queued
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
        recentCreates.append(clock.now)
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
                page.notBefore = clock.now.adding(wait)
                queue.append(page)
                logger.log(.warning, "rate limited by PagerDuty, page stays queued",
                           md + [("wait_seconds", .number(String(wait.components.seconds))), ("queued", .number(String(queue.count)))])
            case _ where error.code == .transport || (error.code == .httpStatus && (error.status ?? 500) >= 500):
                var emd = md + [("error", .string(error.message)), ("attempt", .number(String(page.attempt)))]
                if let s = error.status { emd.append(("http.status", .number(String(s)))) }
                if let b = error.body { emd.append(("http.body", .string(b))) }
                if page.attempt < options.createAttempts {
                    // Safe to retry: PagerDuty may have created it, so look
                    // the key up first; it refuses a duplicate of an open one.
                    page.attempt += 1
                    page.lookUpFirst = true
                    page.notBefore = clock.now.adding(options.createRetryWait)
                    queue.append(page)
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
            var outcome: (judgement: Judgement, status: String)? = nil
            do throws(PagerError) {
                let status = try client.incidentStatus(job.incident.id)
                let entries = try client.logEntries(job.incident.id)
                outcome = (PageVerdict.judge(status: status, logEntries: entries, personID: person.id, resolvedByUs: resolvedByUs), status)
            } catch {
                logger.log(.error, "could not verify test incident", md + [("error", .string(error.message)),
                                                                          ("attempt", .number(String(attempt)))])
            }
            let final = attempt >= options.verifyAttempts
            if !final, outcome.map({ !$0.judgement.verdict.isReachable }) ?? true, let v = options.verifyAfter {
                // Notification rules can delay notifications, and a later
                // rule (a call after a failed SMS) may still succeed: back off.
                var again = job
                again.kind = .verify(attempt: attempt + 1)
                again.due = clock.now.adding(v * (1 << min(attempt, 10)))
                followUps.append(again)
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
