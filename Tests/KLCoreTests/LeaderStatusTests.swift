import KLCore
import Testing

/// The status behind the child's environment, /leader, /metrics and /healthz.
@Suite struct LeaderStatusTests {
    let t0 = MonotonicClock.Instant(nanoseconds: 1_000_000_000_000)
    func at(_ ms: Int64) -> MonotonicClock.Instant { t0 + .milliseconds(ms) }

    func snapshot(_ holder: String?, rv: String, transitions: Int = 0, uid: String = "uid-1") -> LockSnapshot {
        guard let holder else {
            return LockCodec.decode(.configMap, object: ["metadata": ["name": "l", "resourceVersion": .string(rv)]])
        }
        var object = LockCodec.newObject(.configMap, namespace: "ns", name: "l", record: LeaderElectionRecord(
            holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: WallTime(seconds: 1_800_000_000),
            renewTime: WallTime(seconds: 1_800_000_000), leaderTransitions: transitions))
        object[path: "metadata", "resourceVersion"] = .string(rv)
        object[path: "metadata", "uid"] = .string(uid)
        return LockCodec.decode(.configMap, object: object)
    }

    func fresh() -> LeaderStatus { LeaderStatus(identity: "me", namespace: "ns", lockName: "l", kind: .configMap) }

    @Test func acquire_setsFencingTokenAndChildEnvironment() {
        var s = fresh()
        #expect(s.observed(snapshot("other", rv: "10", transitions: 2)) == nil)
        #expect(s.wrote(snapshot("me", rv: "17", transitions: 3), sentAt: at(0), now: at(5)) == .acquired)
        #expect(s.leading && s.holder == "me" && s.fencingToken == "17" && s.lockUID == "uid-1")
        #expect(s.childEnvironment == [
            "KUBE_LEADER_IDENTITY": "me", "KUBE_LEADER_LOCK": "ns/l", "KUBE_LEADER_LOCK_KIND": "configmap",
            "KUBE_LEADER_TRANSITIONS": "3", "KUBE_LEADER_FENCING_TOKEN": "17",
        ])
        // A renew keeps the token (it names the acquisition, not the last write).
        #expect(s.wrote(snapshot("me", rv: "18", transitions: 3), sentAt: at(2000), now: at(2030)) == nil)
        #expect(s.fencingToken == "17")
        #expect(s.renewDurations.count == 1 && s.renewDurations.counts[3] == 1)  // 30 ms: the le="0.05" bucket
    }

    @Test func recordOfOurIdentityNotWrittenByUs_isNotLeading() {
        var s = fresh()
        #expect(s.observed(snapshot("me", rv: "4")) == nil)
        #expect(!s.leading && s.fencingToken == nil && s.childEnvironment["KUBE_LEADER_FENCING_TOKEN"] == nil)
    }

    @Test func release_andLoss_stopOnceEach() {
        var s = fresh()
        _ = s.wrote(snapshot("me", rv: "5"), sentAt: at(0), now: at(1))
        #expect(s.wrote(snapshot("", rv: "6"), sentAt: at(10), now: at(11)) == .stopped)
        #expect(!s.leading && s.fencingToken == nil)
        #expect(s.lost() == [.lost(reason: nil)])
        _ = s.wrote(snapshot("me", rv: "9"), sentAt: at(20), now: at(21))
        #expect(s.fencingToken == "9")
        #expect(s.lost(reason: "renew deadline passed") == [.stopped, .lost(reason: "renew deadline passed")])
        #expect(s.lost() == [.lost(reason: nil)])
        #expect(s.losses == 3 && s.handOvers == 0)
    }

    /// A hand-over: the release record stops us first (one `.stopped`), the
    /// election's report then counts it; a report before any record also stops.
    @Test func handOver_countsAndStopsOnce() {
        var s = fresh()
        _ = s.wrote(snapshot("me", rv: "5"), sentAt: at(0), now: at(1))
        #expect(s.wrote(snapshot("", rv: "6"), sentAt: at(10), now: at(11)) == .stopped)
        #expect(s.handedOver(to: "b") == [.handedOver(to: "b")])
        #expect(s.handOvers == 1 && s.lastHandOverTo == "b" && s.losses == 0 && !s.leading)
        _ = s.wrote(snapshot("me", rv: "9"), sentAt: at(20), now: at(21))
        #expect(s.handedOver(to: "c") == [.stopped, .handedOver(to: "c")])
        #expect(s.handOvers == 2 && s.lastHandOverTo == "c" && s.fencingToken == nil)
        #expect(s.leaderJSON["hand_overs"] == 2 && s.leaderJSON["last_hand_over_to"] == "c")
        #expect(s.metricsText.contains("kube_leader_hand_overs_total{name=\"l\"} 2\n"))
    }

    @Test func anotherHolderSeenWhileLeading_stops_andCountsSlowPath() {
        var s = fresh()
        _ = s.wrote(snapshot("me", rv: "5"), sentAt: at(0), now: at(1))
        s.writeFailed()
        #expect(s.observed(snapshot("me", rv: "5"), duringLeadership: true) == nil)
        #expect(s.observed(snapshot("b", rv: "8"), duringLeadership: true) == .stopped)
        #expect(s.slowPaths == 2 && s.renewFailures == 1)
        // Not leading: reads are no slow path, failures no renew failures.
        _ = s.observed(snapshot("b", rv: "9"), duringLeadership: true)
        s.writeFailed()
        #expect(s.slowPaths == 2 && s.renewFailures == 1)
        // me → b: one change (the first record seen is no change).
        #expect(s.holderChanges == 1)
    }

    @Test func deletedLock_isNoHolder() {
        var s = fresh()
        _ = s.observed(snapshot("b", rv: "3"))
        _ = s.observed(nil)
        #expect(s.holder == "" && s.holderChanges == 1)
    }

    /// client-go's HealthzAdaptor: only a leader without a timely renew is unhealthy.
    @Test func healthz_failsOnlyForAWedgedLeader() {
        var s = fresh()
        #expect(s.isHealthy(now: at(1_000_000), renewDeadline: .seconds(10)))
        _ = s.wrote(snapshot("me", rv: "5"), sentAt: at(0), now: at(1))
        #expect(s.isHealthy(now: at(10_000), renewDeadline: .seconds(10)))
        #expect(!s.isHealthy(now: at(10_001), renewDeadline: .seconds(10)))
        _ = s.wrote(snapshot("me", rv: "6"), sentAt: at(9_000), now: at(9_100))
        #expect(s.isHealthy(now: at(19_000), renewDeadline: .seconds(10)))
        _ = s.lost()
        #expect(s.isHealthy(now: at(100_000), renewDeadline: .seconds(10)))
    }

    @Test func leaderJSON_hasEveryField() throws {
        var s = fresh()
        _ = s.wrote(snapshot("me", rv: "42", transitions: 1), sentAt: at(0), now: at(1))
        let json = try JSON.parse(s.leaderJSON.serialized())
        #expect(json == [
            "identity": "me", "leading": true, "holder": "me", "lock": "ns/l", "kind": "configmap",
            "since": "2027-01-15T08:00:00Z", "transitions": 1, "fencing_token": "42",
            "losses": 0, "last_loss_reason": nil, "hand_overs": 0, "last_hand_over_to": nil,
        ])
        _ = s.lost(reason: "renew deadline passed")
        #expect(s.leaderJSON["fencing_token"] == .null && s.leaderJSON["leading"] == false)
        #expect(s.leaderJSON["losses"] == 1 && s.leaderJSON["last_loss_reason"] == "renew deadline passed")
        #expect(s.metricsText.contains("kube_leader_leadership_losses_total{name=\"l\"} 1\n"))
    }

    @Test func metrics_clientGoNamesAndCumulativeHistogram() {
        var s = fresh()
        _ = s.wrote(snapshot("me", rv: "5"), sentAt: at(0), now: at(1))
        _ = s.wrote(snapshot("me", rv: "6"), sentAt: at(0), now: at(3))       // 3 ms
        _ = s.wrote(snapshot("me", rv: "7"), sentAt: at(0), now: at(20_000))  // 20 s: +Inf only
        s.childExited(code: 137)
        let text = s.metricsText
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in [
            "# TYPE leader_election_master_status gauge", #"leader_election_master_status{name="l"} 1"#,
            "# TYPE leader_election_slowpath_total counter", #"leader_election_slowpath_total{name="l"} 0"#,
            #"kube_leader_renew_duration_seconds_bucket{name="l",le="0.005"} 1"#,
            #"kube_leader_renew_duration_seconds_bucket{name="l",le="10"} 1"#,
            #"kube_leader_renew_duration_seconds_bucket{name="l",le="+Inf"} 2"#,
            #"kube_leader_renew_duration_seconds_count{name="l"} 2"#,
            #"kube_leader_child_exit_code{name="l"} 137"#, #"kube_leader_standby_watch_restarts_total{name="l"} 0"#,
            #"kube_leader_transitions_total{name="l"} 0"#, #"kube_leader_renew_failures_total{name="l"} 0"#,
            "# TYPE kube_leader_hand_overs_total counter", #"kube_leader_hand_overs_total{name="l"} 0"#,
            "# TYPE kube_leader_leadership_losses_total counter", #"kube_leader_leadership_losses_total{name="l"} 0"#,
        ] {
            #expect(lines.contains(expected), "missing \(expected) in\n\(text)")
        }
        #expect(text.hasSuffix("\n"))
        // Before the child exits there is no sample, only the family.
        #expect(!fresh().metricsText.contains("kube_leader_child_exit_code{"))
    }

    @Test func histogram_ignoresNonsenseDurations() {
        var h = Histogram()
        h.observe(seconds: -1)
        h.observe(seconds: .nan)
        #expect(h.count == 2 && h.sum == 0 && h.counts[0] == 2)
    }

    @Test("leader label: valid and invalid forms", arguments: [
        ("role=leader", true), ("example.com/leader=true", true), ("leader=", true), ("a_b.c-d=E_f", true),
        ("role", false), ("=x", false), ("-role=x", false), ("Example.com/x=y", false), ("role=bad value", false),
        ("role=" + String(repeating: "v", count: 64), false), ("a/b/c=x", false),
    ])
    func leaderLabel(text: String, valid: Bool) {
        switch LeaderLabel.parse(text) {
        case .success(let label): #expect(valid, "accepted \(text)"); #expect(label.selector == text)
        case .failure(let e): #expect(!valid, "rejected \(text): \(e.message)")
        }
    }

    @Test("status address forms", arguments: [
        ("127.0.0.1:9090", "127.0.0.1:9090"), (":9090", "0.0.0.0:9090"), ("[::]:0", "[::]:0"), ("[::1]:80", "[::1]:80"),
        ("localhost:9090", nil), ("1.2.3:80", nil), ("1.2.3.4:65536", nil), ("1.2.3.4", nil), ("[zz]:1", nil), ("1.2.3.400:1", nil),
    ])
    func statusAddress(text: String, expected: String?) {
        #expect(StatusAddress(text)?.description == expected)
    }

    @Test func config_surfacesOffByDefault_flagAndEnv() throws {
        let env = ["KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "pod-a", "POD_NAMESPACE": "ns"]
        func load(_ args: [String], _ extra: [String: String] = [:]) throws(UsageError) -> LeaderConfig {
            let r = try LeaderConfig.load(arguments: args + ["lock", "cmd"], environment: env.merging(extra) { $1 },
                                          readFile: { _ in nil }, hostName: "h")
            guard case .run(let c) = r else { throw UsageError("no run") }
            return c
        }
        let plain = try load([])
        #expect(plain.leaderLabel == nil && plain.statusAddress == nil && !plain.events && plain.podName == "pod-a")
        let flags = try load(["--leader-label", "role=leader", "--status-addr", ":9090", "--events", "--identity", "x"])
        #expect(flags.leaderLabel == LeaderLabel(key: "role", value: "leader") && flags.statusAddress?.port == 9090 && flags.events)
        #expect(flags.podName == "pod-a", "the label goes on POD_NAME's Pod even with another identity")
        let fromEnv = try load([], ["KUBE_LEADER_LEADER_LABEL": "a=b", "KUBE_LEADER_STATUS_ADDR": "127.0.0.1:0", "KUBE_LEADER_EVENTS": "true"])
        #expect(fromEnv.leaderLabel?.key == "a" && fromEnv.statusAddress?.host == "127.0.0.1" && fromEnv.events)
        #expect(try !load([], ["KUBE_LEADER_EVENTS": "false"]).events)
        let bad = #expect(throws: UsageError.self) { try load([], ["KUBE_LEADER_STATUS_ADDR": "localhost:80"]) }
        #expect(bad?.message.hasPrefix("env KUBE_LEADER_STATUS_ADDR: 'localhost:80' is not HOST:PORT") == true)
        let badLabel = #expect(throws: UsageError.self) { try load(["--leader-label", "nolabel"]) }
        #expect(badLabel?.message.hasPrefix("--leader-label: 'nolabel' is not KEY=VALUE") == true)
    }
}
