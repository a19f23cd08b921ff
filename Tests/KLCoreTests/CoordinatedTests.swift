import KLCore
import Testing

/// `--coordinated` (docs/coordinated.md): configuration, the election's "never
/// acquire, wait to be named" side, and the LeaseCandidate upkeep machine,
/// all on made-up instants.
@Suite struct CoordinatedConfigTests {
    let inCluster = ["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", "POD_NAME": "pod-a", "POD_NAMESPACE": "ns"]

    func load(_ args: [String], env: [String: String] = [:]) throws(UsageError) -> LeaderConfig {
        let request = try LeaderConfig.load(arguments: args, environment: inCluster.merging(env) { $1 }, readFile: { _ in nil }, hostName: "h")
        guard case .run(let config) = request else { throw UsageError("not a run") }
        return config
    }

    func message(_ args: [String], env: [String: String] = [:]) -> String {
        do { _ = try load(args, env: env); return "no error" } catch { return error.message }
    }

    @Test func flags_andEnv_setTheCandidate_withDefaults() throws {
        let c = try load(["--coordinated", "--lock-kind", "lease", "--binary-version", "1.4.2", "lock", "cmd"])
        #expect(c.coordinated == CoordinatedElection(binaryVersion: "1.4.2", emulationVersion: "1.4.2", strategy: "OldestEmulationVersion"))
        let e = try load(["lock", "cmd"], env: ["KUBE_LEADER_COORDINATED": "true", "KUBE_LEADER_LOCK_KIND": "lease",
                                                "KUBE_LEADER_BINARY_VERSION": "2.0.0-rc.1", "KUBE_LEADER_EMULATION_VERSION": "1.9.0",
                                                "KUBE_LEADER_STRATEGY": "example.com/mine"])
        #expect(e.coordinated == CoordinatedElection(binaryVersion: "2.0.0-rc.1", emulationVersion: "1.9.0", strategy: "example.com/mine"))
        #expect(try load(["lock", "cmd"]).coordinated == nil)
    }

    @Test func configMapLock_badVersions_andStrayOptions_areNamed() {
        #expect(message(["--coordinated", "--binary-version", "1.0.0", "lock", "cmd"]).contains("--coordinated needs --lock-kind lease"))
        #expect(message(["--coordinated", "--lock-kind", "lease", "lock", "cmd"]).contains("--coordinated needs --binary-version"))
        #expect(message(["--coordinated", "--lock-kind", "lease", "--binary-version", "v1.0.0", "lock", "cmd"])
            .contains("--binary-version: 'v1.0.0' is not a semantic version"))
        #expect(message(["--coordinated", "--lock-kind", "lease", "--binary-version", "1.0", "lock", "cmd"]).contains("not a semantic version"))
        #expect(message(["--coordinated", "--lock-kind", "lease", "--binary-version", "1.0.0", "--emulation-version", "1.1.0", "lock", "cmd"])
            .contains("must not be above the binary version"))
        #expect(message(["--coordinated", "--lock-kind", "lease", "--binary-version", "1.0.0", "--strategy", "Newest", "lock", "cmd"])
            .contains("unknown strategy 'Newest'"))
        #expect(message(["--binary-version", "1.0.0", "lock", "cmd"]).contains("--binary-version is only used with --coordinated"))
        #expect(message(["lock", "cmd"], env: ["KUBE_LEADER_COORDINATED": "maybe"]).contains("'maybe' is not true or false"))
    }

    @Test func semanticVersions_orderAsSemver() throws {
        let order = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.2.0", "1.10.0", "2.0.0"]
        let parsed = try order.map { try #require(SemanticVersion($0)) }
        for i in 1..<parsed.count { #expect(parsed[i - 1] < parsed[i], "\(order[i - 1]) < \(order[i])") }
        for bad in ["", "1", "1.2", "01.2.3", "1.2.3-", "1.2.3-01", "1.2.3+", "v1.2.3", "1.2.3.4", "99999999999.0.0", "1.2.-3"] {
            #expect(SemanticVersion(bad) == nil, "\(bad)")
        }
        #expect(SemanticVersion("1.2.3+build.5") == SemanticVersion("1.2.3"))
    }
}

@Suite struct CoordinatedElectionTests: ElectionScript {
    func lease(holder: String, rv: String, seconds: Int = 5, transitions: Int = 0, preferred: String? = nil) -> LockSnapshot {
        var spec: JSON = ["holderIdentity": .string(holder), "leaseDurationSeconds": JSON(seconds), "leaseTransitions": JSON(transitions),
                          "renewTime": .string(RFC3339.formatMicro(wall)), "strategy": "OldestEmulationVersion"]
        if let preferred { spec["preferredHolder"] = .string(preferred) }
        return LockCodec.decode(.lease, object: ["metadata": ["name": "l", "namespace": "ns", "resourceVersion": .string(rv)], "spec": spec])
    }

    func released(rv: String) -> LockSnapshot {
        LockCodec.decode(.lease, object: ["metadata": ["name": "l", "namespace": "ns", "resourceVersion": .string(rv)],
                                          "spec": ["holderIdentity": "", "leaseDurationSeconds": 1, "leaseTransitions": 0,
                                                   "strategy": "OldestEmulationVersion"]])
    }

    func election() -> Election {
        var e = Election(identity: "me", timing: timing)
        e.coordinated = true
        #expect(e.step(.start, now: at(0), wall: wall) == .get)
        return e
    }

    func isWait(_ a: Election.Action) -> Bool { if case .wait = a { return true }; return false }

    @Test func absentFreeOrOthersLock_isNeverCreatedOrTaken() {
        var e = election()
        #expect(e.step(.observed(.absent), now: at(0), wall: wall) == .wait(until: at(15)))
        #expect(e.step(.timer, now: at(15), wall: wall) == .get)   // a read per lease: a watch may have lost the offer
        #expect(isWait(e.step(.observed(.absent), now: at(15.1), wall: wall)))
        #expect(isWait(e.step(.observed(.present(released(rv: "2"))), now: at(101), wall: wall)))
        #expect(e.step(.timer, now: at(300), wall: wall) == .get)
        #expect(isWait(e.step(.observed(.present(lease(holder: "other", rv: "3"))), now: at(301), wall: wall)))
        #expect(e.step(.timer, now: at(1000), wall: wall) == .get)   // expired long ago: still not ours to take
        #expect(isWait(e.step(.observed(.present(lease(holder: "other", rv: "3"))), now: at(1000.1), wall: wall)))
        #expect(e.role == .standby)
    }

    @Test func offerAfterAFreeLock_isTakenAtOnce_keepingStrategy() {
        var e = election()
        #expect(isWait(e.step(.observed(.present(released(rv: "2"))), now: at(0), wall: wall)))
        let action = e.step(.observed(.present(lease(holder: "me", rv: "3", transitions: 4))), now: at(1), wall: wall)
        guard case .update(let record, let base) = action else { Issue.record("got \(action)"); return }
        #expect(record.holderIdentity == "me")
        #expect(record.leaseDurationSeconds == 15)
        #expect(record.leaderTransitions == 5)
        #expect(record.otherFields["strategy"] == "OldestEmulationVersion")
        #expect(base.resourceVersion == "3")
    }

    @Test func offerReplacingAnotherHolder_waitsALease_evenWhenTheControllerRenewsIt() {
        var e = election()
        #expect(isWait(e.step(.observed(.present(lease(holder: "old", rv: "2", seconds: 15))), now: at(0), wall: wall)))
        #expect(e.step(.observed(.present(lease(holder: "me", rv: "3"))), now: at(20), wall: wall) == .wait(until: at(35)))
        #expect(e.offerSafeAt == at(35))
        // The controller rewrites its offer (its own 5 s lease ran out): same wait.
        #expect(e.step(.observed(.present(lease(holder: "me", rv: "4"))), now: at(30), wall: wall) == .wait(until: at(35)))
        guard case .update(let record, let base) = e.step(.timer, now: at(35), wall: wall) else { Issue.record("no take"); return }
        #expect(record.holderIdentity == "me" && base.resourceVersion == "4")
    }

    @Test func firstSightOfAnOffer_waitsOurLease_andAnOfferWithdrawnIsForgotten() {
        var e = election()
        #expect(e.step(.observed(.present(lease(holder: "me", rv: "3"))), now: at(0), wall: wall) == .wait(until: at(15)))
        #expect(isWait(e.step(.observed(.present(lease(holder: "better", rv: "4"))), now: at(5), wall: wall)))
        #expect(e.offerSafeAt == nil)
        #expect(e.step(.timer, now: at(40), wall: wall) == .get)
        #expect(e.role == .standby)
    }

    /// Found by the random simulation (--faults guaranteed,coordinated): the lock is
    /// deleted while held (lease 10 s); the controller recreates it naming
    /// us, then renews its offer. The deletion's wait still holds.
    @Test func offerAfterADeletionWhileHeld_waitsOutTheDeletedHold() {
        var e = election()
        #expect(isWait(e.step(.observed(.present(lease(holder: "old", rv: "2", seconds: 10))), now: at(0), wall: wall)))
        #expect(isWait(e.step(.observed(.absent), now: at(1), wall: wall)))
        #expect(e.heldUntil == at(11))
        #expect(e.step(.observed(.present(lease(holder: "me", rv: "3"))), now: at(2), wall: wall) == .wait(until: at(11)))
        #expect(e.step(.observed(.present(lease(holder: "me", rv: "4"))), now: at(8), wall: wall) == .wait(until: at(11)))
        guard case .update = e.step(.timer, now: at(11), wall: wall) else { Issue.record("no take after the wait"); return }
    }

    @Test func takenOffer_leadsAndRenews_likeAnyLeader() {
        var e = election()
        _ = e.step(.observed(.present(released(rv: "2"))), now: at(0), wall: wall)
        guard case .update(let record, let base) = e.step(.observed(.present(lease(holder: "me", rv: "3"))), now: at(1), wall: wall) else {
            Issue.record("no take"); return
        }
        var object = LockCodec.updatedObject(.lease, base: base, record: record)
        object[path: "metadata", "resourceVersion"] = "4"
        #expect(e.step(.written(LockCodec.decode(.lease, object: object)), now: at(1.1), wall: wall) == .becameLeader(renewAt: at(3)))
        guard case .update(let renew, _) = e.step(.timer, now: at(3), wall: wall) else { Issue.record("no renew"); return }
        #expect(renew.holderIdentity == "me")
        #expect(renew.otherFields["strategy"] == "OldestEmulationVersion")
    }

    @Test func lostRaceOnAnOffer_isPacedByTheRetryPeriod() {
        var e = election()
        _ = e.step(.observed(.present(released(rv: "2"))), now: at(0), wall: wall)
        guard case .update = e.step(.observed(.present(lease(holder: "me", rv: "3"))), now: at(1), wall: wall) else { Issue.record("no take"); return }
        #expect(e.step(.lostRace, now: at(1.2), wall: wall) == .get)
        // Re-read: the controller renewed its offer to us; write no sooner than a retry period on.
        let after = e.step(.observed(.present(lease(holder: "me", rv: "5"))), now: at(1.3), wall: wall)
        guard case .wait(let until) = after else { Issue.record("got \(after)"); return }
        #expect(until >= at(3.2))
    }
}
