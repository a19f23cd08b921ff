import KLSystem
import KLCore
import KLKube
import KLTransport
import KLProcess
import Testing

/// The optional surfaces of the built binary against kube-apiserver-fake: the
/// leader label, the child's environment with its fencing token, the status
/// endpoint and Events.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct KubeLeaderSurfacesTests {
    func createPods(_ cluster: Cluster, _ names: [String]) throws {
        for name in names {
            let (code, body) = try cluster.server.request("POST", "/api/v1/namespaces/default/pods", body: [
                "metadata": ["name": .string(name), "labels": ["app": "e2e"]],
                "spec": ["containers": [["name": "c", "image": "busybox"]]],
            ])
            #expect(code == 201, "\(String(describing: body))")
        }
    }

    func role(_ cluster: Cluster, _ pod: String) -> String? {
        guard let (code, body) = try? cluster.server.request("GET", "/api/v1/namespaces/default/pods/\(pod)"), code == 200 else { return "?" }
        return body?[path: "metadata", "labels", "role"]?.stringValue
    }

    func eventMessages(_ cluster: Cluster) -> [String] {
        guard let (_, body) = try? cluster.server.request("GET", "/api/v1/namespaces/default/events") else { return [] }
        return (body?["items"]?.arrayValue ?? []).compactMap { $0["message"]?.stringValue }
    }

    /// The label follows the leader: set on acquiring, removed on release,
    /// and removed from a SIGKILLed leader's Pod by the next leader. Events
    /// record each change, and `kubectl get events` lists them.
    @Test(arguments: [LockKind.configMap, .lease])
    func leaderLabel_movesWithLeadership_andEventsRecordIt(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        try createPods(cluster, ["a", "b", "c"])
        let surfaces = ["--leader-label", "role=leader", "--events"]
        let a = try cluster.start("a", extra: surfaces)
        #expect(eventually { role(cluster, "a") == "leader" }, "\(cluster.diagnostics)")
        try cluster.start("b", extra: surfaces)
        #expect(!eventually(.seconds(1)) { role(cluster, "b") != nil })

        // a's child exits (SIGTERM forwarded): a releases, b takes over.
        a.signal(.terminate)
        #expect(a.wait()?.exitCode == 143)
        #expect(role(cluster, "a") == nil, "the label must be gone when kube-leader has exited\n\(a.log)")
        #expect(eventually { role(cluster, "b") == "leader" }, "\(cluster.diagnostics)")

        // (Label first, then the Event, on b's surfaces thread: let it finish.)
        #expect(eventually { eventMessages(cluster).contains("b became leader") })

        // b dies without cleaning up; c takes over after the lease and
        // removes the label from b's Pod.
        _ = cluster.replica("b")!.process.signal(.kill)
        cluster.replica("b")!.wait()
        #expect(role(cluster, "b") == "leader")
        try cluster.start("c", extra: surfaces)
        #expect(eventually(.seconds(20)) { role(cluster, "c") == "leader" && role(cluster, "b") == nil }, "\(cluster.diagnostics)")
        cluster.expectNoOverlap()

        #expect(eventually { eventMessages(cluster).contains("c became leader") })
        // a writes "stopped leading" after its release and b "became leader"
        // after its acquire, two processes at about the same time: their
        // order is not defined (each Event has its own timestamps).
        let first = Array(eventMessages(cluster).prefix(3))
        #expect(first.first == "a became leader" && Set(first) == ["a became leader", "a stopped leading", "b became leader"], "\(first)")
        let kubeconfig = cluster.dir.file("kubeconfig")
        writeFile(kubeconfig, """
            apiVersion: v1
            kind: Config
            clusters: [{name: fake, cluster: {server: "\(cluster.server.url)", certificate-authority: "\(cluster.server.caFile)"}}]
            users: [{name: fake, user: {token: "\(cluster.server.token)"}}]
            contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: default}}]
            current-context: fake

            """)
        let listed = try runCapturing(["kubectl", "--request-timeout=20s", "get", "events"], environment: [
            "KUBECONFIG": kubeconfig, "HOME": cluster.dir.path, "PATH": String(cString: getenv("PATH")),
        ], timeout: .seconds(60))
        #expect(listed.status.exitCode == 0, "\(listed.stderrText)")
        for expected in ["LeaderElection", "a became leader", "b became leader", "\(kind == .lease ? "lease" : "configmap")/\(cluster.lockName)"] {
            #expect(listed.stdoutText.contains(expected), "kubectl get events:\n\(listed.stdoutText)")
        }
    }

    /// The child learns who it is and its fencing token; the token grows with
    /// every acquisition, also when the lock is deleted and created again.
    @Test(arguments: [LockKind.configMap, .lease])
    func child_getsIdentityLockAndIncreasingFencingToken(kind: LockKind) throws {
        let cluster = try Cluster(kind: kind)
        let out = cluster.dir.file("env.txt")
        func run(_ identity: String) throws {
            let script = "echo \"$KUBE_LEADER_IDENTITY $KUBE_LEADER_LOCK $KUBE_LEADER_LOCK_KIND $KUBE_LEADER_TRANSITIONS $KUBE_LEADER_FENCING_TOKEN\" >> \(out)"
            let r = try Replica(identity: identity, arguments: ["--lock-kind", kind.rawValue] + cluster.timing
                                    + [cluster.lockName, "--", "sh", "-c", script],
                                environment: cluster.environment(identity: identity), dir: cluster.dir)
            #expect(r.wait()?.exitCode == 0, "\(r.log)")
        }
        try run("x")
        try run("y")
        let path = kind == .configMap ? "/api/v1/namespaces/default/configmaps/\(cluster.lockName)"
                                      : "/apis/coordination.k8s.io/v1/namespaces/default/leases/\(cluster.lockName)"
        #expect(try cluster.server.request("DELETE", path).0 == 200)
        try run("z")
        let lines = readFile(out).split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        try #require(lines.count == 3, "\(lines)")
        #expect(lines.map { Array($0.prefix(4)) } == [
            ["x", "default/\(cluster.lockName)", kind.rawValue, "0"],
            ["y", "default/\(cluster.lockName)", kind.rawValue, "1"],
            ["z", "default/\(cluster.lockName)", kind.rawValue, "0"],
        ])
        let tokens = lines.compactMap { $0.count == 5 ? Int($0[4]) : nil }
        #expect(tokens.count == 3 && tokens[0] < tokens[1] && tokens[1] < tokens[2], "tokens: \(lines)")
    }

    /// /leader, /healthz and /metrics on a leader and a standby; the metrics
    /// parse with the real Prometheus parser; a silent client stalls nothing.
    @Test func statusEndpoint_leaderAndStandby() throws {
        let cluster = try Cluster(kind: .lease)
        let a = try cluster.start("a", extra: ["--status-addr", "127.0.0.1:0"])
        #expect(eventually { cluster.log.starts.count == 1 })
        let b = try cluster.start("b", extra: ["--status-addr", "127.0.0.1:0"])
        let aURL = try #require(statusURL(a)), bURL = try #require(statusURL(b))
        let silent = try silentConnection(aURL)
        defer { close(silent) }

        let leader = try get(aURL, "/leader")
        #expect(leader.status == 200)
        let l = try JSON.parse(leader.bodyText)
        #expect(l["identity"] == "a" && l["leading"] == true && l["holder"] == "a" && l["kind"] == "lease")
        #expect(l["lock"] == .string("default/\(cluster.lockName)") && l["transitions"] == 0)
        #expect(Int(l["fencing_token"]?.stringValue ?? "") != nil && l["since"]?.stringValue != nil)
        #expect(eventually { (try? JSON.parse(get(bURL, "/leader").bodyText))?["holder"] == "a" })
        let s = try JSON.parse(get(bURL, "/leader").bodyText)
        #expect(s["leading"] == false && s["fencing_token"] == .null)
        #expect(try get(aURL, "/healthz").status == 200 && get(bURL, "/healthz").status == 200)
        #expect(try get(aURL, "/nope").status == 404)

        let parsed = try prometheus(get(aURL, "/metrics").bodyText)
        let master = parsed["leader_election_master_status"]
        #expect(master?["type"] == "gauge" && master?["samples"]?.arrayValue?.count == 1)
        #expect(master?["samples"]?[0]?["labels"] == ["name": .string(cluster.lockName)])
        #expect(master?["samples"]?[0]?["value"]?.doubleValue == 1)
        #expect(parsed["leader_election_slowpath"]?["type"] == "counter")
        #expect(parsed["kube_leader_renew_duration_seconds"]?["type"] == "histogram")
        for name in ["kube_leader_transitions", "kube_leader_renew_failures", "kube_leader_standby_watch_restarts"] {
            #expect(parsed[name]?["type"] == "counter", "\(name) in \(parsed)")
        }
        #expect(parsed["kube_leader_child_exit_code"]?["type"] == "gauge")
        // Renews every 500 ms are observed.
        #expect(eventually { ((try? prometheus(get(aURL, "/metrics").bodyText))?["kube_leader_renew_duration_seconds"]?["samples"]?.arrayValue?
            .first { $0["name"] == "kube_leader_renew_duration_seconds_count" }?["value"]?.doubleValue ?? 0) >= 2 })
        let standby = try prometheus(get(bURL, "/metrics").bodyText)
        #expect(standby["leader_election_master_status"]?["samples"]?[0]?["value"]?.doubleValue == 0)
        _ = b
    }

    /// Exactly the verbs of deploy/rbac-configmap.yaml and
    /// deploy/leader-routing.yaml are enough: label and Event, no warning.
    @Test func deployRBAC_isEnoughForLabelAndEvents() throws {
        let script = """
            import sys, yaml
            for path in sys.argv[1:]:
                for doc in yaml.safe_load_all(open(path)):
                    if doc and doc["kind"] == "Role":
                        for rule in doc["rules"]:
                            for r in rule["resources"]:
                                for v in rule["verbs"]:
                                    print(v, r)
            """
        let r = try runCapturing(["python3", "-c", script, Paths.root + "/deploy/rbac-configmap.yaml",
                                  Paths.root + "/deploy/leader-routing.yaml"], timeout: .seconds(60))
        #expect(r.status.exitCode == 0, "\(r.stderrText)")
        let allow = r.stdoutText.split(separator: "\n").map(String.init)
        #expect(allow.contains("patch pods") && allow.contains("create events"), "\(allow)")

        let cluster = try Cluster(kind: .configMap, lockName: "my-lock")
        try createPods(cluster, ["a"])
        try cluster.server.registerToken("deploy-rbac", allow: allow)
        let a = try cluster.start("a", token: "deploy-rbac", extra: ["--leader-label", "role=leader", "--events"])
        #expect(eventually { role(cluster, "a") == "leader" && eventMessages(cluster) == ["a became leader"] }, "\(a.log)")
        #expect(!a.log.contains("\"warning\""), "\(a.log)")
    }

    /// Budget: with label and Events on, a standby makes no requests while
    /// the leader stays (≤ 2/min allowed), and a steady leader only renews.
    @Test func standby_makesNoExtraRequests_withLabelAndEvents() throws {
        let cluster = try Cluster(kind: .lease)
        try createPods(cluster, ["a", "b"])
        for name in ["leader01", "standby1"] { try cluster.server.registerToken(name) }
        let surfaces = ["--leader-label", "role=leader", "--events", "--status-addr", "127.0.0.1:0"]
        try cluster.start("a", token: "leader01", extra: surfaces)
        #expect(eventually { role(cluster, "a") == "leader" })
        let b = try cluster.start("b", token: "standby1", extra: surfaces)
        #expect(eventually { b.log.contains("lock is held by another replica") }, "\(b.log)")
        func requests(_ token: String) -> Int {
            guard let (_, stats) = try? cluster.server.request("GET", "/fake/stats"),
                  let counts = stats?[path: "byToken", String(token.prefix(8))]?.objectValue else { return -1 }
            return counts.reduce(0) { $0 + ($1.value.intValue ?? 0) }
        }
        let standbyBefore = requests("standby1"), leaderBefore = requests("leader01")
        let started = MonotonicClock.now
        #expect(!eventually(.seconds(6)) { requests("standby1") > standbyBefore + 1 }, "the standby polled")
        let window = (MonotonicClock.now - started).seconds
        let leaderRequests = requests("leader01") - leaderBefore
        // One renew per retry period (500 ms), nothing else.
        #expect(Double(leaderRequests) <= window / 0.5 + 2, "\(leaderRequests) leader requests in \(window) s")
        #expect(standbyBefore >= 1 && leaderBefore >= 1)
    }

    // MARK: helpers

    // statusURL(_:) and get(_:_:) live in Harness.swift.

    /// A connection that sends half a request head and then nothing.
    func silentConnection(_ base: String) throws -> Int32 {
        let port = UInt16(base.split(separator: ":").last!)!
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        _ = "GET /metrics HTTP/1.1\r\n".withCString { send(fd, $0, 23, Int32(MSG_NOSIGNAL)) }
        return fd
    }

    /// Families as the Prometheus client library parses them:
    /// name → {type, samples: [{name, labels, value}]}.
    func prometheus(_ text: String) throws -> JSON {
        let script = """
            import json, sys
            from prometheus_client.parser import text_string_to_metric_families
            out = {}
            for f in text_string_to_metric_families(sys.stdin.read()):
                out[f.name] = {"type": f.type, "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in f.samples]}
            print(json.dumps(out))
            """
        let r = try runCapturing(["python3", "-c", script], stdin: Array(text.utf8), timeout: .seconds(60))
        guard r.status.exitCode == 0 else {
            throw HarnessError("prometheus_client rejected the exposition (install it: scripts/test.d/30-surfaces.deps): \(r.stderrText)\n\(text)")
        }
        return try JSON.parse(r.stdoutText)
    }
}
