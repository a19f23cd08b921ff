import KLCore
import KLKube
import KLTransport
import KLProcess
import KLSystem
import KLTestSupport
import Testing

/// Black-box harness: the built binaries (kube-leader, kube-apiserver-fake)
/// as real processes over real TLS, and a worker child that records its life.
enum Paths {
    /// The package root, from this file's place in Tests/EndToEndTests.
    static let root = TestPaths.packageRoot
    static let binDir = TestPaths.binDirectory
    static let kubeLeader = binDir + "/kube-leader"
    static let fakeServer = binDir + "/kube-apiserver-fake"
    static let worker = root + "/scripts/lib/worker.py"
}

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A fresh temporary folder, removed at deinit.
final class TempDir {
    let path: String
    init() {
        path = makeTemporaryDirectory(prefix: "kl-e2e")
    }
    deinit { _ = try? runCapturing(["rm", "-rf", path]) }
    func file(_ name: String) -> String { path + "/" + name }
}

/// The whole file as text; "" when it cannot be read (not written yet).
func readFile(_ path: String) -> String {
    guard case .success(let text) = readWholeTextFile(path, limit: .max) else { return "" }
    return text
}

func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode)
    precondition(fd >= 0, "cannot write \(path)")
    _ = text.utf8CString.withUnsafeBufferPointer { write(fd, $0.baseAddress!, $0.count - 1) }
    close(fd)
}

func fileExists(_ path: String) -> Bool { access(path, F_OK) == 0 }

/// Polls `condition` every 20 ms until it holds or `timeout` passes. End-to-end
/// only: it waits for other processes, whose progress we cannot be told about.
@discardableResult
func eventually(_ timeout: Duration = .seconds(10), _ condition: () -> Bool) -> Bool {
    let deadline = MonotonicClock.now + timeout
    while MonotonicClock.now < deadline {
        if condition() { return true }
        blockingSleep(.milliseconds(20))
    }
    return condition()
}

/// Opens `path` for a child's stdout/stderr.
/// The status endpoint's URL, from the replica's "status endpoint listening" log line.
func statusURL(_ r: Replica) -> String? {
    var url: String?
    _ = eventually {
        for line in r.log.split(separator: "\n") where line.contains("status endpoint listening") {
            url = (try? JSON.parse(String(line)))?["status.address"]?.stringValue.map { "http://\($0)" }
        }
        return url != nil
    }
    return url
}

/// GET `path` from a replica's status endpoint.
func get(_ base: String, _ path: String) throws -> HTTPResponse {
    try HTTPClient(baseURL: base).send(HTTPRequest(method: "GET", path: path), timeout: .seconds(10))
}

func openForOutput(_ path: String) -> Int32 {
    open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
}

/// kube-apiserver-fake as a process.
final class FakeServer {
    let dir: TempDir
    let process: ChildProcess
    let url: String
    let caFile: String
    let tokenFile: String
    let client: HTTPClient
    var token: String { readFile(tokenFile).trimmingWhitespace }

    init(extraArguments: [String] = [], dir: TempDir = TempDir(), port: Int = 0) throws {
        self.dir = dir
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw HarnessError("pipe failed") }
        let errFD = openForOutput(dir.file("fake.log"))
        process = try ChildProcess.spawn([Paths.fakeServer, "--dir", dir.path, "--port", String(port),
                                          "--state-file", dir.file("state.json")] + extraArguments,
                                         standardOutput: fds[1], standardError: errFD)
        close(fds[1])
        close(errFD)
        // The ready line: {"url":…,"ca_file":…,"token_file":…}
        var line: [UInt8] = []
        let deadline = MonotonicClock.now + .seconds(20)
        var byte: UInt8 = 0
        while MonotonicClock.now < deadline {
            var p = [pollfd(fd: fds[0], events: Int16(POLLIN), revents: 0)]
            if poll(&p, 1, 100) <= 0 { continue }
            if read(fds[0], &byte, 1) != 1 { break }
            if byte == UInt8(ascii: "\n") { break }
            line.append(byte)
        }
        close(fds[0])
        let ready = try JSON.parse(bytes: line)
        guard let url = ready["url"]?.stringValue, let ca = ready["ca_file"]?.stringValue, let token = ready["token_file"]?.stringValue else {
            throw HarnessError("kube-apiserver-fake did not print its ready line: \(String(decoding: line, as: UTF8.self)) \(readFile(dir.file("fake.log")))")
        }
        self.url = url
        caFile = ca
        tokenFile = token
        client = try HTTPClient(baseURL: url, tls: TLSOptions(caFile: ca))
    }

    var port: Int { Int(url.split(separator: ":").last!)! }

    func stop() {
        _ = try? process.signalGroup(.terminate)
        _ = try? process.waitForExit(timeout: .seconds(5))
    }

    deinit { stop() }

    /// An API or control request; returns status and parsed body.
    @discardableResult
    func request(_ method: String, _ path: String, body: JSON? = nil, token: String? = nil) throws -> (Int, JSON?) {
        var headers = [("Accept", "application/json")]
        if !path.hasPrefix("/fake/") { headers.append(("Authorization", "Bearer \(token ?? self.token)")) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let response = try client.send(HTTPRequest(method: method, path: path, headers: headers,
                                                   body: Array((body?.serialized() ?? "").utf8)), timeout: .seconds(10))
        return (response.status, try? JSON.parse(bytes: response.body))
    }

    /// The lock record as stored, decoded.
    func lock(_ kind: LockKind, namespace: String = "default", name: String) -> LockSnapshot? {
        let path = kind == .configMap
            ? "/api/v1/namespaces/\(namespace)/configmaps/\(name)"
            : "/apis/coordination.k8s.io/v1/namespaces/\(namespace)/leases/\(name)"
        guard let (status, body) = try? request("GET", path), status == 200, let body else { return nil }
        return LockCodec.decode(kind, object: body)
    }

    func holder(_ kind: LockKind = .configMap, name: String) -> String? { lock(kind, name: name)?.record?.holderIdentity }

    func setFaults(_ faults: JSON) throws { try request("POST", "/fake/faults", body: faults) }
    func registerToken(_ token: String, allow: [String]? = nil) throws {
        var body: JSON = ["token": .string(token), "user": "system:serviceaccount:default:test"]
        if let allow { body["allow"] = .array(allow.map { .string($0) }) }
        try request("POST", "/fake/tokens", body: body)
    }
}

/// One kube-leader process.
final class Replica {
    let identity: String
    let process: ChildProcess
    let logPath: String
    var status: TerminationStatus?

    init(identity: String, arguments: [String], environment: [String: String], dir: TempDir) throws {
        self.identity = identity
        logPath = dir.file("\(identity).log")
        let fd = openForOutput(logPath)
        defer { close(fd) }
        process = try ChildProcess.spawn([Paths.kubeLeader] + arguments, environment: environment, standardOutput: fd, standardError: fd)
    }

    /// Waits for exit; nil on timeout.
    @discardableResult
    func wait(_ timeout: Duration = .seconds(20)) -> TerminationStatus? {
        if status == nil { status = try? process.waitForExit(timeout: timeout) }
        return status
    }

    func signal(_ s: Signal) { _ = process.signal(s) }
    var log: String { readFile(logPath) }

    deinit {
        if status == nil {
            _ = process.signal(.kill)
            _ = try? process.waitForExit(timeout: .seconds(5))
        }
    }
}

/// What the workers appended: start/stop/overlap on one monotonic clock.
struct WorkerLog {
    struct Entry { var kind: String; var id: String; var time: Int64 }
    var entries: [Entry]

    init(path: String) {
        entries = readFile(path).split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 3, let t = Int64(f[2]) else { return nil }
            return Entry(kind: String(f[0]), id: String(f[1]), time: t)
        }
    }

    var starts: [Entry] { entries.filter { $0.kind == "start" } }
    var stops: [Entry] { entries.filter { $0.kind == "stop" } }
    var overlaps: [Entry] { entries.filter { $0.kind == "overlap" } }
}

/// A group of replicas on one lock against one fake API server.
final class Cluster {
    let server: FakeServer
    let dir: TempDir
    let kind: LockKind
    let lockName: String
    var timing: [String]
    var replicas: [Replica] = []
    var workerLog: String { dir.file("workers.log") }
    var workerLock: String { dir.file("workers.lock") }

    init(kind: LockKind = .configMap, lockName: String = "e2e-lock",
         timing: [String] = ["--lease-duration", "4s", "--renew-deadline", "2s", "--retry-period", "500ms"],
         serverArguments: [String] = []) throws {
        server = try FakeServer(extraArguments: serverArguments)
        dir = server.dir
        self.kind = kind
        self.lockName = lockName
        self.timing = timing
    }

    func environment(identity: String, token: String? = nil) -> [String: String] {
        var env = [
            "PATH": String(cString: getenv("PATH")), "POD_NAME": identity, "POD_NAMESPACE": "default",
            "KUBE_LEADER_API_SERVER": server.url, "KUBE_LEADER_CA_FILE": server.caFile,
            "KUBE_LEADER_TOKEN_FILE": server.tokenFile, "KUBE_LEADER_LOG_LEVEL": "debug",
        ]
        if let token {
            let path = dir.file("token-\(identity)")
            writeFile(path, token)
            env["KUBE_LEADER_TOKEN_FILE"] = path
        }
        return env
    }

    /// Starts a replica running the worker (extra worker options appended).
    @discardableResult
    func start(_ identity: String, worker: [String] = [], token: String? = nil, extra: [String] = []) throws -> Replica {
        let args = ["--lock-kind", kind.rawValue] + timing + extra + [lockName, "--", "python3", Paths.worker, workerLog, workerLock, identity] + worker
        let r = try Replica(identity: identity, arguments: args, environment: environment(identity: identity, token: token), dir: dir)
        replicas.append(r)
        return r
    }

    func replica(_ identity: String) -> Replica? { replicas.first { $0.identity == identity } }
    var holder: String? { server.holder(kind, name: lockName) }
    var log: WorkerLog { WorkerLog(path: workerLog) }

    /// Mutual exclusion, checked from the workers' own records: no worker
    /// saw another's flock, and no start falls inside another's run.
    func expectNoOverlap(sourceLocation: SourceLocation = #_sourceLocation) {
        let log = self.log
        #expect(log.overlaps.isEmpty, "workers overlapped: \(log.overlaps.map(\.id))", sourceLocation: sourceLocation)
        // A SIGKILLed worker records no stop; its flock (checked by the next
        // worker, see worker.py) is the proof for that hand-over.
        let stopped = Set(log.stops.map(\.id))
        var open: String?
        for e in log.entries.sorted(by: { $0.time < $1.time }) {
            if e.kind == "start" {
                if let o = open, stopped.contains(o) {
                    Issue.record("\(e.id) started while \(o) ran", sourceLocation: sourceLocation)
                }
                open = e.id
            } else if e.kind == "stop", e.id == open {
                open = nil
            }
        }
    }

    var diagnostics: String {
        replicas.map { "--- \($0.identity) ---\n\($0.log)" }.joined(separator: "\n") + "\n--- workers ---\n" + readFile(workerLog)
    }
}
