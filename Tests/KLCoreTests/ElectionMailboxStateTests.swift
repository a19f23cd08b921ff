import KLCore
import Testing

/// The mailbox between the election thread and the main thread, scripted:
/// each test is a sequence of the calls the two threads make, in one order,
/// with what each call answers and what the supervisor then reads. The same
/// value is what production (`ElectionMailbox`) and the simulation hold.
@Suite struct ElectionMailboxStateTests {
    /// One call of either thread, and for the calls that answer, the answer.
    enum Call: Sendable, CustomStringConvertible {
        case beginAcquire(allowed: Bool)
        case endAcquire(won: Bool)
        case becameLeader
        case lost
        case finished
        case requestRelease(busy: Bool)

        var description: String {
            switch self {
            case .beginAcquire(let a): "beginAcquire -> \(a)"
            case .endAcquire(let w): "endAcquire(won: \(w))"
            case .becameLeader: "becameLeader"
            case .lost: "lostLeadership"
            case .finished: "finished"
            case .requestRelease(let b): "requestRelease -> busy \(b)"
            }
        }
    }

    func play(_ calls: [Call], on state: inout ElectionMailboxState) {
        for call in calls {
            switch call {
            case .beginAcquire(let allowed): #expect(state.beginAcquire() == allowed, "\(call)")
            case .endAcquire(let won): state.endAcquire(won: won)
            case .becameLeader: state.becameLeader()
            case .lost: state.lostLeadership(reason: "renew deadline")
            case .finished: state.finished(.released)
            case .requestRelease(let busy): #expect(state.requestRelease() == busy, "\(call)")
            }
        }
    }

    /// A release request is "busy" exactly while the election may still
    /// write or holds the lock: an acquire in flight, the lock won, leading;
    /// never once the election is over. After it, no acquire is sent.
    @Test(arguments: [
        [Call.requestRelease(busy: false), .beginAcquire(allowed: false)],
        [.beginAcquire(allowed: true), .requestRelease(busy: true), .beginAcquire(allowed: false)],
        [.beginAcquire(allowed: true), .endAcquire(won: false), .requestRelease(busy: false)],
        [.beginAcquire(allowed: true), .endAcquire(won: true), .requestRelease(busy: true)],
        [.beginAcquire(allowed: true), .endAcquire(won: true), .becameLeader, .requestRelease(busy: true)],
        [.beginAcquire(allowed: true), .endAcquire(won: true), .becameLeader, .finished, .requestRelease(busy: false)],
        [.beginAcquire(allowed: true), .requestRelease(busy: true), .endAcquire(won: false), .requestRelease(busy: false)],
    ])
    func releaseRequest_isBusyWhileTheElectionMayWriteOrHolds(_ calls: [Call]) {
        var state = ElectionMailboxState()
        play(calls, on: &state)
        #expect(state.releaseRequested)
    }

    /// What the supervisor reads: the flags of the term, the renew's send
    /// time as given, the outcome as the election's end.
    @Test func report_carriesTheTermAndTheEnd() {
        var state = ElectionMailboxState()
        #expect(state.report == ElectionReport())
        state.becameLeader()
        state.renewed(sentAt: MonotonicInstant(nanoseconds: 7))
        state.handOver(to: "b")
        var expected = ElectionReport(leading: true, lastRenewSentAt: MonotonicInstant(nanoseconds: 7))
        expected.handOverTo = "b"
        #expect(state.report == expected)
        state.lostLeadership(reason: "gone")
        state.finished(.lost(reason: "gone"))
        expected.lostReason = "gone"
        expected.ended = .lost(reason: "gone")
        #expect(state.report == expected)
    }

    /// `--on-loss standby`: the election lost and waits; nothing lets it go
    /// on until the supervisor rejoins, which forgets the whole old term;
    /// the grant is taken once.
    @Test func rejoinAfterALoss_forgetsTheTerm_andIsTakenOnce() {
        var state = ElectionMailboxState()
        play([.beginAcquire(allowed: true), .endAcquire(won: true), .becameLeader], on: &state)
        state.renewed(sentAt: MonotonicInstant(nanoseconds: 1))
        state.lostLeadership(reason: "renew deadline")
        #expect(state.takeRejoin() == nil)
        #expect(state.takeRejoin() == nil)
        state.rejoin()
        #expect(state.report == ElectionReport())
        #expect(!state.holding && !state.acquiring && !state.releaseRequested)
        #expect(state.takeRejoin() == true)
        #expect(state.takeRejoin() == nil)
        // The new term: a release is again busy only once it acquires.
        var again = state
        #expect(again.requestRelease() == false)
        play([.beginAcquire(allowed: true), .requestRelease(busy: true)], on: &state)
    }

    /// kube-leader stops while the election waits to stand by again: it
    /// stops waiting at once, and a grant that comes with the stop is a stop.
    @Test func stopWhileWaitingToRejoin_endsTheWait_andARejoinKeepsTheStop() {
        var state = ElectionMailboxState()
        play([.beginAcquire(allowed: true), .endAcquire(won: true), .becameLeader, .lost,
              .requestRelease(busy: true)], on: &state)
        #expect(state.takeRejoin() == false)
        state.rejoin()
        #expect(state.releaseRequested, "a stop's release request survives the rejoin")
        #expect(state.takeRejoin() == false)
        #expect(state.beginAcquire() == false)
    }

    /// A hand-over: the lock asks, the supervisor stops the child and asks
    /// for the release, the election releases and waits. Its own release
    /// request does not end the wait; the rejoin forgets it with the rest of
    /// the hand-over, and the election stands by and may acquire again.
    @Test func handOver_ownReleaseRequest_isForgottenByTheRejoin() {
        var state = ElectionMailboxState()
        play([.beginAcquire(allowed: true), .endAcquire(won: true), .becameLeader], on: &state)
        state.handOver(to: "b")
        #expect(state.report.handOverTo == "b")
        #expect(state.requestRelease() == true)
        state.releasedForHandOver()
        #expect(state.report.handedOver)
        #expect(state.takeRejoin() == nil, "the hand-over's own request does not stop the election")
        state.rejoin()
        #expect(!state.releaseRequested && state.handOverTo == nil && !state.handedOver)
        #expect(state.takeRejoin() == true)
        #expect(state.beginAcquire() == true)
    }

    /// A release request after the hand-over's release is done (a stop while
    /// the old child is being stopped): the election keeps waiting for the
    /// supervisor, which decides; once the election is over, not busy.
    @Test func handOverDone_releaseRequestedAgain_stillWaitsForTheSupervisor() {
        var state = ElectionMailboxState()
        play([.becameLeader], on: &state)
        state.handOver(to: "b")
        state.releasedForHandOver()
        #expect(state.requestRelease() == true)
        #expect(state.takeRejoin() == nil)
        state.finished(.released)
        #expect(state.requestRelease() == false, "over: nothing to wait for")
    }
}
