import KLCore
import KLTestSupport
import Testing
@testable import PagerTesterKit

/// `PagerScheduler` alone: a pure machine, scripted on made-up times. No
/// PagerDuty, no sleeping: each test feeds instants and the runner's reports
/// and checks the job handed out or the wake-up time. (The same scheduler
/// with its runner against the fake PagerDuty: SchedulerTests,
/// PagingGuaranteesTests.)
@Suite struct PagerSchedulerMachineTests {
    func machine(_ crons: [String], start: String, jobBound: Duration = .seconds(120),
                 configure: (inout SchedulerOptions) -> Void = { _ in }) throws -> PagerScheduler {
        var options = SchedulerOptions()
        configure(&options)
        return PagerScheduler(schedules: try crons.map { try CronExpression.parse($0, zones: zones) },
                              options: options, startedAt: time(start), jobBound: jobBound)
    }

    func page(_ person: Int, _ fire: String, notBefore: String? = nil, attempt: Int = 1, lookUpFirst: Bool = false) -> PagerScheduler.Action {
        .run(.page(QueuedPage(person: person, fireTime: time(fire), notBefore: time(notBefore ?? fire), attempt: attempt, lookUpFirst: lookUpFirst)))
    }

    /// `m.next(now:stop:)`, checked against the expected skips and action.
    func expectNext(_ m: inout PagerScheduler, _ now: WallTime, stop: WallTime? = nil, _ expected: PagerScheduler.Action,
                    skips: [PagerScheduler.Skip] = [], sourceLocation: SourceLocation = #_sourceLocation) {
        let (s, a) = m.next(now: now, stop: stop)
        #expect(s == skips, sourceLocation: sourceLocation)
        #expect(a == expected, sourceLocation: sourceLocation)
    }

    func expectFollowUp(_ m: inout PagerScheduler, _ now: WallTime, _ expected: PagerScheduler.Action?,
                        sourceLocation: SourceLocation = #_sourceLocation) {
        let a = m.nextFollowUp(now: now)
        #expect(a == expected, sourceLocation: sourceLocation)
    }

    func sleep(_ until: String) -> PagerScheduler.Action { .sleep(until: time(until)) }

    let incident = CreatedIncident(id: "Q1", number: 1, status: "triggered", url: "https://acme.pagerduty.com/incidents/Q1")

    @Test func beforeTheFireTime_sleepsAtMostMaxSleep_thenHandsOutThePageOnce() throws {
        var m = try machine(["0 9 * * *"], start: "2026-01-01T08:59:00Z")
        expectNext(&m, time("2026-01-01T08:59:00Z"), sleep("2026-01-01T08:59:30Z"))
        expectNext(&m, time("2026-01-01T08:59:50Z"), sleep("2026-01-01T09:00:00Z"))
        expectNext(&m, time("2026-01-01T09:00:00Z"), page(0, "2026-01-01T09:00:00Z"))
        expectNext(&m, time("2026-01-01T09:00:01Z"), sleep("2026-01-01T09:00:31Z"))
        #expect(m.nextFire == [time("2026-01-02T09:00:00Z")])
        #expect(m.queue.isEmpty)
    }

    @Test func theStopTime_boundsTheSleep_andASleepIsNeverUnder1ms() throws {
        var m = try machine(["0 9 * * *"], start: "2026-01-01T08:00:00Z")
        expectNext(&m, time("2026-01-01T08:00:00Z"), stop: time("2026-01-01T08:00:10Z"), sleep("2026-01-01T08:00:10Z"))
        let almost = time("2026-01-01T08:59:59Z").adding(.microseconds(999_500))
        expectNext(&m, almost, .sleep(until: almost.adding(.milliseconds(1))))
    }

    /// A fire time before the start is replayed, with a look-up first (a
    /// previous process may have paged it).
    @Test func fireTimeJustBeforeTheStart_isReplayedWithALookUpFirst() throws {
        var m = try machine(["0 9 * * *"], start: "2026-01-01T09:02:00Z")
        expectNext(&m, time("2026-01-01T09:02:00Z"), page(0, "2026-01-01T09:00:00Z", lookUpFirst: true))
    }

    @Test func sevenPagesDueTogether_sixGoOut_theSeventhWaitsForTheMinute() throws {
        var m = try machine(Array(repeating: "0 9 * * *", count: 7), start: "2026-01-01T08:59:00Z")
        let nine = time("2026-01-01T09:00:00Z")
        for person in 0..<6 {
            expectNext(&m, nine, page(person, "2026-01-01T09:00:00Z"))
            m.creating(at: nine)
        }
        expectNext(&m, nine, sleep("2026-01-01T09:00:30Z"))
        expectNext(&m, time("2026-01-01T09:00:59Z"), sleep("2026-01-01T09:01:00Z"))
        expectNext(&m, time("2026-01-01T09:01:00Z"), page(6, "2026-01-01T09:00:00Z"))
    }

    @Test func dryRun_isNotPaced() throws {
        var m = try machine(Array(repeating: "0 9 * * *", count: 7), start: "2026-01-01T08:59:00Z") { $0.dryRun = true }
        let nine = time("2026-01-01T09:00:00Z")
        for person in 0..<7 {
            expectNext(&m, nine, page(person, "2026-01-01T09:00:00Z"))
            m.creating(at: nine)
        }
    }

    @Test func fireTimeNoticedHoursLate_isSkipped_notPaged() throws {
        var m = try machine(["0 9 * * *"], start: "2026-01-01T08:59:00Z")
        let (skips, action) = m.next(now: time("2026-01-01T11:00:00Z"))
        #expect(skips == [PagerScheduler.Skip(person: 0, late: [time("2026-01-01T09:00:00Z")], lateCount: 1, coalesced: 0)])
        #expect(action == sleep("2026-01-01T11:00:30Z"))
        #expect(m.queue.isEmpty)
        #expect(m.nextFire == [time("2026-01-02T09:00:00Z")])
    }

    /// Ten minutes suspended with an every-minute schedule: the latest fire
    /// time within --missed-grace is paged, the older ones are skipped.
    @Test func suspendedTenMinutes_onlyTheLatestInGraceIsPaged() throws {
        var m = try machine(["* * * * *"], start: "2026-01-01T09:00:30Z")
        let (skips, action) = m.next(now: time("2026-01-01T09:10:30Z"))
        // Replayed 08:55-09:00 and 09:01-09:05 are too late (11), 09:06-09:09 coalesced (4).
        #expect(skips == [PagerScheduler.Skip(person: 0, late: ["2026-01-01T08:55:00Z", "2026-01-01T08:56:00Z", "2026-01-01T08:57:00Z"].map(time),
                                              lateCount: 11, coalesced: 4)])
        #expect(action == page(0, "2026-01-01T09:10:00Z"))
    }

    /// A fire time that came due while a job ran (bounded by `jobBound`) is
    /// not late, however long the job took within that bound; the same delay
    /// without a job is a suspension and skips it.
    @Test func fireTimeDueDuringAJob_isNotLate_butTheSameDelayWhileIdleIs() throws {
        let crons = ["0 9 * * *", "1 9 * * *"]
        var busy = try machine(crons, start: "2026-01-01T08:59:00Z", jobBound: .seconds(200)) { $0.missedGrace = .seconds(60) }
        expectNext(&busy, time("2026-01-01T09:00:00Z"), page(0, "2026-01-01T09:00:00Z"))
        busy.creating(at: time("2026-01-01T09:00:00Z"))
        // The job ends 150 s later: 09:01 is 90 s old, more than the grace.
        expectNext(&busy, time("2026-01-01T09:02:30Z"), page(1, "2026-01-01T09:01:00Z"))

        var idle = try machine(crons, start: "2026-01-01T08:59:00Z", jobBound: .seconds(200)) { $0.missedGrace = .seconds(60) }
        expectNext(&idle, time("2026-01-01T09:00:00Z"), page(0, "2026-01-01T09:00:00Z"))
        idle.creating(at: time("2026-01-01T09:00:00Z"))
        // The job ended at once; then nothing ran until 150 s later.
        expectNext(&idle, time("2026-01-01T09:00:05Z"), sleep("2026-01-01T09:00:35Z"))
        let (skips, action) = idle.next(now: time("2026-01-01T09:02:30Z"))
        #expect(skips == [PagerScheduler.Skip(person: 1, late: [time("2026-01-01T09:01:00Z")], lateCount: 1, coalesced: 0)])
        #expect(action == sleep("2026-01-01T09:03:00Z"))
    }

    @Test func wallClockJumpBackward_neverHandsOutAFireTimeAgain() throws {
        var m = try machine(["0 9 * * *"], start: "2026-01-01T08:59:00Z")
        expectNext(&m, time("2026-01-01T09:00:00Z"), page(0, "2026-01-01T09:00:00Z"))
        m.creating(at: time("2026-01-01T09:00:00Z"))
        expectNext(&m, time("2026-01-01T08:00:00Z"), sleep("2026-01-01T08:00:30Z"))
        expectNext(&m, time("2026-01-01T09:00:00Z"), sleep("2026-01-01T09:00:30Z"))
        #expect(m.nextFire == [time("2026-01-02T09:00:00Z")])
    }

    @Test func rateLimitedPage_waitsItsTime_thenComesBack() throws {
        var m = try machine(["0 9 * * *"], start: "2026-01-01T08:59:00Z")
        guard case .run(.page(let p)) = m.next(now: time("2026-01-01T09:00:00Z")).action else { Issue.record("no page"); return }
        m.creating(at: time("2026-01-01T09:00:00Z"))
        m.rateLimited(p, wait: .seconds(60), now: time("2026-01-01T09:00:00Z"))
        expectNext(&m, time("2026-01-01T09:00:10Z"), sleep("2026-01-01T09:00:40Z"))
        expectNext(&m, time("2026-01-01T09:01:00Z"), page(0, "2026-01-01T09:00:00Z", notBefore: "2026-01-01T09:01:00Z"))
    }

    @Test func failedCreate_isRetriedWithALookUp_untilCreateAttempts() throws {
        var m = try machine(["0 9 * * *"], start: "2026-01-01T08:59:00Z")
        var now = time("2026-01-01T09:00:00Z")
        guard case .run(.page(var p)) = m.next(now: now).action else { Issue.record("no page"); return }
        for attempt in 2...3 {
            do { let queued = m.retryCreate(p, now: now); #expect(queued) }
            let retryAt = now.adding(.seconds(30))
            expectNext(&m, now.adding(.seconds(29)), .sleep(until: retryAt))
            now = retryAt
            let action = m.next(now: now).action
            #expect(action == .run(.page(QueuedPage(person: 0, fireTime: time("2026-01-01T09:00:00Z"), notBefore: retryAt,
                                                     attempt: attempt, lookUpFirst: true))))
            guard case .run(.page(let again)) = action else { return }
            p = again
        }
        do { let queued = m.retryCreate(p, now: now); #expect(!queued) }
        #expect(m.queue.isEmpty)
    }

    /// Verify after 2 min, then after 4 and 8 more (the wait doubles), at
    /// most three times; the resolve at its own time in between.
    @Test func followUps_verifyBacksOffDoubling_andTheResolveRunsAtItsTime() throws {
        var m = try machine(["0 0 1 1 *"], start: "2026-06-01T09:00:00Z") {
            $0.verifyAfter = .seconds(120)
            $0.resolveAfter = .seconds(600)
        }
        m.paged(incident, person: 0, now: time("2026-06-01T09:00:00Z"))
        func verify(_ attempt: Int, _ due: String) -> PagerScheduler.Action {
            .run(.followUp(.init(kind: .verify(attempt: attempt), person: 0, incident: incident, due: time(due))))
        }
        expectNext(&m, time("2026-06-01T09:01:50Z"), sleep("2026-06-01T09:02:00Z"))
        expectNext(&m, time("2026-06-01T09:02:00Z"), verify(1, "2026-06-01T09:02:00Z"))
        guard case .run(.followUp(let first)) = verify(1, "2026-06-01T09:02:00Z") else { return }
        do { let queued = m.verifyAgain(first, now: time("2026-06-01T09:02:05Z")); #expect(queued) }
        expectNext(&m, time("2026-06-01T09:06:05Z"), verify(2, "2026-06-01T09:06:05Z"))
        guard case .run(.followUp(let second)) = verify(2, "2026-06-01T09:06:05Z") else { return }
        do { let queued = m.verifyAgain(second, now: time("2026-06-01T09:06:05Z")); #expect(queued) }
        expectNext(&m, time("2026-06-01T09:10:00Z"), .run(.followUp(.init(kind: .resolve, person: 0, incident: incident, due: time("2026-06-01T09:10:00Z")))))
        expectNext(&m, time("2026-06-01T09:14:05Z"), verify(3, "2026-06-01T09:14:05Z"))
        guard case .run(.followUp(let third)) = verify(3, "2026-06-01T09:14:05Z") else { return }
        do { let queued = m.verifyAgain(third, now: time("2026-06-01T09:14:05Z")); #expect(!queued) }
        #expect(m.followUps.isEmpty)
    }

    @Test func nextFollowUp_sleepsTowardTheEarliest_runsIt_thenIsNil() throws {
        var m = try machine(["@daily"], start: "2026-06-01T09:00:00Z") { $0.verifyAfter = .seconds(45) }
        expectFollowUp(&m, time("2026-06-01T09:00:00Z"), nil)
        m.paged(incident, person: 0, now: time("2026-06-01T09:00:00Z"))
        expectFollowUp(&m, time("2026-06-01T09:00:00Z"), sleep("2026-06-01T09:00:30Z"))
        expectFollowUp(&m, time("2026-06-01T09:00:40Z"), sleep("2026-06-01T09:00:45Z"))
        expectFollowUp(&m, time("2026-06-01T09:00:45Z"), .run(.followUp(.init(kind: .verify(attempt: 1), person: 0, incident: incident, due: time("2026-06-01T09:00:45Z")))))
        expectFollowUp(&m, time("2026-06-01T09:00:46Z"), nil)
    }

    /// The machine on a virtual clock, as the runner drives it but with
    /// every create succeeding at once: forty people on one minute are all
    /// paged, at most six per 60 s, within seven minutes, nobody skipped,
    /// and no sleep is longer than --max-sleep.
    @Test func fortyPeopleOnAVirtualClock_allPagedPacedAndOnTime() throws {
        var m = try machine(Array(repeating: "0 9 * * *", count: 40), start: "2026-01-05T08:59:00Z")
        let clock = VirtualWallClock(start: time("2026-01-05T08:59:00Z"))
        let stop = time("2026-01-05T09:15:00Z")
        var created: [(person: Int, at: WallTime)] = []
        while clock.now < stop {
            let now = clock.now
            let (skips, action) = m.next(now: now, stop: stop)
            #expect(skips.isEmpty)
            switch action {
            case .sleep(let until): clock.sleep(for: until.duration(since: now))
            case .run(.page(let p)):
                m.creating(at: now)
                created.append((p.person, now))
            case .run(.followUp): Issue.record("no follow-ups were asked for")
            }
        }
        #expect(created.map(\.person).sorted() == Array(0..<40))
        for (i, c) in created.enumerated() {
            #expect(created[i...].prefix { $0.at < c.at.adding(.seconds(60)) }.count <= 6)
        }
        #expect(created.last!.at <= time("2026-01-05T09:06:00Z"))
        #expect(clock.sleeps.allSatisfy { $0 <= .seconds(30) && $0 > .zero })
    }
}
