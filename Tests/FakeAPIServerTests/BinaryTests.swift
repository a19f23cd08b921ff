import FakeAPIServerKit
import KLSystem
import KLCore
import KLTestSupport
import Testing

/// kube-apiserver-fake as a process, and the real kubectl against it.
@Suite("kube-apiserver-fake: binary and kubectl", .timeLimit(.minutes(1)))
struct BinaryTests {
    private struct Running {
        var pid: pid_t
        var ready: JSON
        var url: String { ready["url"]?.stringValue ?? "" }
    }

    private func startBinary(dir: String, extra: [String], tag: String) throws -> Running {
        let pid = try spawn("\(TestPaths.binary("kube-apiserver-fake"))", ["--dir", "\(dir)/certs"] + extra,
                            stdoutFile: "\(dir)/\(tag).out", stderrFile: "\(dir)/\(tag).err")
        guard let line = waitForFirstLine("\(dir)/\(tag).out") else {
            kill(pid, SIGKILL); _ = waitExit(pid)
            throw TestFailure("no ready line; stderr: \(readText("\(dir)/\(tag).err"))")
        }
        return Running(pid: pid, ready: try JSON.parse(line))
    }

    @Test func binary_restartWithSameStateFileAndPort_keepsObjectsCAAndCounter() throws {
        let dir = makeTemporaryDirectory(prefix: "fake-apiserver-test")
        let first = try startBinary(dir: dir, extra: ["--state-file", "\(dir)/state.json"], tag: "first")
        #expect(first.ready.objectValue?.keys == ["url", "ca_file", "token_file"])
        #expect(first.ready["ca_file"] == .string("\(dir)/certs/ca.crt"))
        #expect(first.ready["token_file"] == .string("\(dir)/certs/token"))
        let token = readText("\(dir)/certs/token").trimmingWhitespace.split(separator: "\n")[0]
        let ca = readText("\(dir)/certs/ca.crt")
        func call(_ url: String, _ method: String, _ path: String, _ body: JSON? = nil) throws -> TestResponse {
            let c = try TestConnection(url: url, caFile: "\(dir)/certs/ca.crt")
            try c.send(method, path, token: String(token), body: body?.serialized())
            return try c.readResponse()
        }
        let created = try call(first.url, "POST", "/api/v1/namespaces/default/configmaps", ["metadata": ["name": "kept"], "data": ["k": "v"]])
        #expect(created.status == 201)
        let rv = Int(created.json[path: "metadata", "resourceVersion"]?.stringValue ?? "") ?? 0
        kill(first.pid, SIGTERM)
        #expect(waitExit(first.pid) == 0)

        let port = first.url.split(separator: ":").last.map(String.init) ?? "0"
        let second = try startBinary(dir: dir, extra: ["--state-file", "\(dir)/state.json", "--port", port], tag: "second")
        defer { kill(second.pid, SIGTERM); _ = waitExit(second.pid) }
        #expect(second.url == first.url)
        #expect(readText("\(dir)/certs/ca.crt") == ca)
        let kept = try call(second.url, "GET", "/api/v1/namespaces/default/configmaps/kept")
        #expect(kept.status == 200)
        #expect(kept.json[path: "data", "k"] == "v")
        #expect(kept.json[path: "metadata", "uid"] == created.json[path: "metadata", "uid"])
        let next = try call(second.url, "POST", "/api/v1/namespaces/default/configmaps", ["metadata": ["name": "later"]])
        #expect((Int(next.json[path: "metadata", "resourceVersion"]?.stringValue ?? "") ?? 0) > rv)
    }

    @Test func binary_badFlags_exit2WithMessage() throws {
        let r = try run("\(TestPaths.binary("kube-apiserver-fake"))", ["--port", "x", "--dir", "/tmp/x"])
        #expect(r.exitCode == 2)
        #expect(r.stderr.contains("--port"))
        let missing = try run("\(TestPaths.binary("kube-apiserver-fake"))", [])
        #expect(missing.exitCode == 2)
        #expect(missing.stderr.contains("--dir"))
    }

    // MARK: kubectl

    private func kubectl(_ h: Harness, _ args: [String]) throws -> ProcessResult {
        let kubeconfig = "\(h.dir)/kubeconfig"
        writeText(kubeconfig, """
            apiVersion: v1
            kind: Config
            clusters:
            - name: fake
              cluster: {server: "\(h.server.url)", certificate-authority: "\(h.server.caFile)"}
            users:
            - name: fake
              user: {token: "\(h.server.token)"}
            contexts:
            - name: fake
              context: {cluster: fake, user: fake, namespace: default}
            current-context: fake

            """)
        return try run(kubectlPath(), ["--request-timeout=20s"] + args,
                       env: ["KUBECONFIG": kubeconfig, "KUBECACHEDIR": "\(h.dir)/kube-cache", "HOME": h.dir])
    }

    @Test func kubectl_getRaw_returnsTheList() throws {
        let h = try Harness()
        h.server.put("/api/v1/namespaces/default/configmaps/raw", ["data": ["k": "v"]])
        let r = try kubectl(h, ["get", "--raw", "/api/v1/namespaces/default/configmaps"])
        #expect(r.exitCode == 0, "\(r.stderr)")
        let list = try JSON.parse(r.stdout)
        #expect(list["kind"] == "ConfigMapList")
        #expect(list["items"]?[0]?[path: "metadata", "name"] == "raw")
    }

    @Test func kubectl_getConfigMapJSON_printsTheObject() throws {
        let h = try Harness()
        h.server.put("/api/v1/namespaces/default/configmaps/shown", ["data": ["k": "v"]])
        let r = try kubectl(h, ["get", "configmap", "shown", "-o", "json"])
        #expect(r.exitCode == 0, "\(r.stderr)")
        let o = try JSON.parse(r.stdout)
        #expect(o["kind"] == "ConfigMap")
        #expect(o[path: "data", "k"] == "v")
        #expect(o[path: "metadata", "resourceVersion"] == .string(String(h.server.resourceVersion)))
        h.server.put("/api/v1/namespaces/default/pods/p1", ["spec": ["nodeName": "n"], "status": ["phase": "Running"]])
        let all = try kubectl(h, ["get", "all"])
        #expect(all.exitCode == 0, "\(all.stderr)")
        #expect(all.stdout.contains("p1"))
        let table = try kubectl(h, ["get", "cm"])
        #expect(table.exitCode == 0, "\(table.stderr)")
        #expect(table.stdout.contains("shown"))
    }

    @Test func kubectl_createsAndListsLeaseCandidates_andKeepsLeasesOnV1() throws {
        let h = try Harness()
        /// `kubectl create -f` of a LeaseCandidate for my-lock at binary version 1.2.3.
        func createCandidate(_ name: String, emulationVersion: String) throws -> ProcessResult {
            writeText("\(h.dir)/\(name).yaml", """
                apiVersion: coordination.k8s.io/v1beta1
                kind: LeaseCandidate
                metadata: {name: \(name)}
                spec: {leaseName: my-lock, binaryVersion: "1.2.3", emulationVersion: "\(emulationVersion)", strategy: OldestEmulationVersion}

                """)
            return try kubectl(h, ["create", "-f", "\(h.dir)/\(name).yaml"])
        }
        let created = try createCandidate("replica-a", emulationVersion: "1.2.0")
        #expect(created.exitCode == 0, "\(created.stderr)")
        #expect(created.stdout.contains("leasecandidate.coordination.k8s.io/replica-a created"))
        let got = try kubectl(h, ["get", "leasecandidates", "-o", "json"])
        #expect(got.exitCode == 0, "\(got.stderr)")
        let list = try JSON.parse(got.stdout)
        #expect(list["items"]?[0]?[path: "spec", "leaseName"] == "my-lock")
        // An emulation version above the binary version is refused.
        let bad = try createCandidate("replica-b", emulationVersion: "1.3.0")
        #expect(bad.exitCode == 1)
        #expect(bad.stderr.contains("must be less than or equal to binaryVersion"), "\(bad.stderr)")
        let lease = try kubectl(h, ["get", "lease", "nope"])
        #expect(lease.stderr.contains("leases.coordination.k8s.io \"nope\" not found"))
    }

    @Test func kubectl_getMissing_showsNotFound() throws {
        let h = try Harness()
        let r = try kubectl(h, ["get", "configmap", "nope"])
        #expect(r.exitCode == 1)
        #expect(r.stderr.contains("Error from server (NotFound): configmaps \"nope\" not found"))
        let lease = try kubectl(h, ["get", "lease", "nope"])
        #expect(lease.stderr.contains("Error from server (NotFound): leases.coordination.k8s.io \"nope\" not found"))
    }

    @Test func kubectl_createThenReplaceWithStaleResourceVersion_showsConflict() throws {
        let h = try Harness()
        writeText("\(h.dir)/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-file\ndata:\n  k: v1\n")
        let created = try kubectl(h, ["create", "-f", "\(h.dir)/cm.yaml"])
        #expect(created.exitCode == 0, "\(created.stderr)")
        #expect(created.stdout.contains("configmap/from-file created"))
        #expect(h.server.object("/api/v1/namespaces/default/configmaps/from-file")?[path: "data", "k"] == "v1")

        let current = h.server.object("/api/v1/namespaces/default/configmaps/from-file")?[path: "metadata", "resourceVersion"]?.stringValue ?? ""
        writeText("\(h.dir)/ok.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-file\n  resourceVersion: \"\(current)\"\ndata:\n  k: v2\n")
        let replaced = try kubectl(h, ["replace", "-f", "\(h.dir)/ok.yaml"])
        #expect(replaced.exitCode == 0, "\(replaced.stderr)")
        #expect(h.server.object("/api/v1/namespaces/default/configmaps/from-file")?[path: "data", "k"] == "v2")

        writeText("\(h.dir)/stale.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-file\n  resourceVersion: \"\(current)\"\ndata:\n  k: v3\n")
        let stale = try kubectl(h, ["replace", "-f", "\(h.dir)/stale.yaml"])
        #expect(stale.exitCode == 1)
        #expect(stale.stderr.contains("Error from server (Conflict): error when replacing \"\(h.dir)/stale.yaml\": Operation cannot be fulfilled on configmaps \"from-file\": the object has been modified; please apply your changes to the latest version and try again"))
        #expect(h.server.object("/api/v1/namespaces/default/configmaps/from-file")?[path: "data", "k"] == "v2")
    }

    @Test func kubectl_createExisting_showsAlreadyExists_andDeleteWorks() throws {
        let h = try Harness()
        h.server.put("/api/v1/namespaces/default/configmaps/dup", ["data": [:]])
        writeText("\(h.dir)/dup.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup\n")
        let r = try kubectl(h, ["create", "-f", "\(h.dir)/dup.yaml"])
        #expect(r.stderr.contains("Error from server (AlreadyExists): error when creating \"\(h.dir)/dup.yaml\": configmaps \"dup\" already exists"))
        let d = try kubectl(h, ["delete", "configmap", "dup"])
        #expect(d.exitCode == 0, "\(d.stderr)")
        #expect(h.server.object("/api/v1/namespaces/default/configmaps/dup") == nil)
    }

    @Test func kubectl_drain_cordonsAndEvictsThroughTheEvictionAPI() throws {
        let h = try Harness()
        h.server.put("/api/v1/nodes/node-1", ["metadata": ["labels": ["kubernetes.io/hostname": "node-1"]], "spec": [:],
                                              "status": ["conditions": [["type": "Ready", "status": "True"]]]])
        for name in ["a", "b"] {
            h.server.put("/api/v1/namespaces/default/pods/\(name)",
                         ["metadata": ["labels": ["app": "web"]],
                          "spec": ["nodeName": "node-1", "containers": [["name": "c", "image": "busybox"]]],
                          "status": ["phase": "Running", "conditions": [["type": "Ready", "status": "True"]]]])
        }
        h.server.put("/api/v1/namespaces/default/pods/elsewhere", ["spec": ["nodeName": "node-2"], "status": ["phase": "Running"]])
        let r = try kubectl(h, ["drain", "node-1", "--force", "--ignore-daemonsets", "--timeout=30s"])
        #expect(r.exitCode == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.contains("node/node-1 cordoned"))
        #expect(r.stdout.contains("pod/a evicted"))
        #expect(r.stdout.contains("node/node-1 drained"))
        #expect(h.server.object("/api/v1/nodes/node-1")?[path: "spec", "unschedulable"] == true)
        #expect(h.server.object("/api/v1/namespaces/default/pods/a") == nil)
        #expect(h.server.object("/api/v1/namespaces/default/pods/b") == nil)
        #expect(h.server.object("/api/v1/namespaces/default/pods/elsewhere") != nil)
        #expect(h.server.requestStats()[path: "byToken", String(h.server.token.prefix(8)), "create"] == 2)   // two evictions
    }

    @Test func kubectl_drain_blockedByBudget_reportsTheRealEvictionError() throws {
        let h = try Harness()
        h.server.put("/api/v1/nodes/node-1", ["spec": [:]])
        h.server.put("/api/v1/namespaces/default/pods/only",
                     ["metadata": ["labels": ["app": "db"]], "spec": ["nodeName": "node-1"],
                      "status": ["phase": "Running", "conditions": [["type": "Ready", "status": "True"]]]])
        h.server.put("/apis/policy/v1/namespaces/default/poddisruptionbudgets/db",
                     ["spec": ["minAvailable": 1, "selector": ["matchLabels": ["app": "db"]]]])
        let r = try kubectl(h, ["drain", "node-1", "--force", "--timeout=2s"])
        #expect(r.exitCode != 0)
        #expect(r.stderr.contains("error when evicting pods/\"only\" -n \"default\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget."))
        #expect(h.server.object("/api/v1/namespaces/default/pods/only") != nil)
    }
}
