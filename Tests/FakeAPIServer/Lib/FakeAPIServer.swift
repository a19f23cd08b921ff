import CFakeCerts
import KLCore
import KLSystem

/// How to start a fake API server (the `kube-apiserver-fake` flags).
public struct FakeAPIServerOptions: Sendable {
    /// IPv4 address to listen on. Default 127.0.0.1. Any other address is
    /// added to the server certificate's names when the certificates are made
    /// (e.g. an address inside a network namespace of `scripts/chaos --netns`).
    public var host = "127.0.0.1"
    /// 0 picks a free port; a fixed port lets a restarted fake keep its URL.
    public var port = 0
    /// Where ca.crt, ca.key, server.crt, server.key and token live (reused if present).
    public var dir: String
    /// Objects and the resourceVersion counter survive restarts through this file.
    public var stateFile: String? = nil
    /// More bearer tokens with full access, besides the one in DIR/token.
    public var extraTokens: [String] = []
    /// Serve plain HTTP instead of HTTPS.
    public var plainHTTP = false
    /// How many events the watch history keeps; a watch from an older RV gets 410 Expired.
    public var historySize = 1000
    /// Seconds a deleted or evicted pod stays terminating before it goes (0: at once).
    public var podGraceSeconds = 0
    /// Log every API request to stderr.
    public var logRequests = false
    /// Serve coordination.k8s.io/v1beta1 `leasecandidates` (default). False:
    /// 404 as on a cluster without the API (the default before it is enabled).
    public var leaseCandidates = true
    /// Run the coordinated-leader-election controller (nil: off, the default).
    public var electionController: ElectionControllerOptions? = nil
    /// Where logs go (stderr by default).
    public var logger = Logger(level: .info, format: .json, metadata: [("component", "kube-apiserver-fake")])

    public init(dir: String) { self.dir = dir }
}

/// A fake Kubernetes API server: real TLS, real Status bodies, real
/// resourceVersion and watch semantics, plus a control API for faults.
/// Start it in-process with `start(_:)` or run the `kube-apiserver-fake`
/// binary.
public final class FakeAPIServer: @unchecked Sendable {
    private let server: Server
    private var controller: ElectionController?
    public let url: String
    public let caFile: String
    public let tokenFile: String
    /// The admin bearer token (contents of `tokenFile`).
    public let token: String
    public var port: Int { server.port }

    private init(server: Server, url: String, caFile: String, tokenFile: String, token: String) {
        self.server = server; self.url = url; self.caFile = caFile; self.tokenFile = tokenFile; self.token = token
    }

    /// Generates or reuses the certificates and token in `options.dir`,
    /// loads the state file, binds and starts serving.
    public static func start(_ options: FakeAPIServerOptions) throws -> FakeAPIServer {
        try startTyped(options)
    }

    static func startTyped(_ options: FakeAPIServerOptions) throws(FakeServerError) -> FakeAPIServer {
        let dir = options.dir.hasSuffix("/") && options.dir.count > 1 ? String(options.dir.dropLast()) : options.dir
        try makeDirectories(dir)
        var err = [CChar](repeating: 0, count: 512)
        if cfakecerts_ensure(dir, options.host, &err, err.count) != 0 {
            throw FakeServerError(.certificates, "creating certificates in \(dir) failed: \(String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        let tokenFile = "\(dir)/token"
        var token = readFile(tokenFile)?.trimmingWhitespace.split(separator: "\n").first.map(String.init) ?? ""
        if token.isEmpty {
            var random = RandomSource()
            token = random.token()
            guard writeFileAtomically(tokenFile, token + "\n", mode: 0o600) else {
                throw FakeServerError(.io, "writing the token file \(tokenFile) failed (errno \(errno)); check that \(dir) is writable")
            }
        }
        let store = try Store(historySize: options.historySize, stateFile: options.stateFile,
                              podGraceSeconds: options.podGraceSeconds, log: options.logger)
        let server = try Server(host: options.host, port: options.port,
                                tls: options.plainHTTP ? nil : ("\(dir)/server.crt", "\(dir)/server.key"),
                                store: store, adminTokens: Set([token] + options.extraTokens),
                                log: options.logger, logRequests: options.logRequests,
                                hidden: options.leaseCandidates ? [] : [.leaseCandidates])
        server.start()
        let scheme = options.plainHTTP ? "http" : "https"
        let fake = FakeAPIServer(server: server, url: "\(scheme)://\(options.host):\(server.port)", caFile: "\(dir)/ca.crt",
                                 tokenFile: tokenFile, token: token)
        if let c = options.electionController, options.leaseCandidates {
            let controller = ElectionController(store: store, options: c, log: options.logger)
            controller.start()
            fake.controller = controller
        }
        return fake
    }

    /// The JSON line printed when ready: `{"url":…,"ca_file":…,"token_file":…}`.
    public var readyLine: String {
        JSON.object(JSONObject([("url", .string(url)), ("ca_file", .string(caFile)), ("token_file", .string(tokenFile))])).serialized()
    }

    /// Stops serving and closes every connection; the port is free afterwards.
    public func stop() { controller?.stop(); server.stop() }

    deinit { controller?.stop(); server.stop() }

    // MARK: Direct state access for tests (no HTTP, no auth, no faults)

    /// The object at an API path, e.g. `/api/v1/namespaces/default/configmaps/x`.
    public func object(_ apiPath: String) -> JSON? {
        guard let route = Route(path: apiPath), let name = route.name else { return nil }
        return server.store.get(route.resource, route.namespace, name)
    }

    /// Creates or replaces the object at an API path (bumps the RV, emits a watch event).
    public func put(_ apiPath: String, _ object: JSON) {
        guard let route = Route(path: apiPath), let name = route.name else {
            preconditionFailure("FakeAPIServer.put: \(apiPath) is not an object path like /api/v1/namespaces/NS/configmaps/NAME")
        }
        _ = server.store.put(route.resource, namespace: route.namespace, name: name, object)
    }

    /// Deletes the object at an API path; false when it did not exist.
    @discardableResult
    public func delete(_ apiPath: String) -> Bool {
        guard let route = Route(path: apiPath), let name = route.name else { return false }
        return server.store.delete(route.resource, namespace: route.namespace, name: name, options: nil).status == 200
    }

    /// Replaces the fault set (same body as `POST /fake/faults`); `[:]` clears it.
    public func setFaults(_ faults: JSON) {
        let parsed = (try? FaultSet(faults)) ?? FaultSet()
        server.control.withLock { c in
            c.faults = parsed
            if let seed = faults["seed"]?.intValue { c.random = RandomSource(seed: UInt64(bitPattern: Int64(seed))) }
        }
    }

    /// Registers a bearer token (same as `POST /fake/tokens`); nil `allow` allows everything.
    public func registerToken(_ token: String, user: String, allow: [String]? = nil) {
        server.control.withLock { $0.tokens[token] = TokenGrant(user: user, allow: allow) }
    }

    /// `GET /fake/stats`: `{"total":N,"byToken":{"<8 chars>":{"get":N,…}}}`.
    public func requestStats() -> JSON { server.control.withLock { $0.statsJSON } }

    public func resetStats() { server.control.withLock { $0.total = 0; $0.byToken = [:] } }

    /// One pass of the coordinated-election controller at the wall time
    /// `now` (tests drive it on a virtual clock; the server's own controller
    /// thread, if any, runs on the real one). Uses `options` when given.
    public func reconcileElections(now: WallTime, options: ElectionControllerOptions = ElectionControllerOptions()) {
        ElectionController(store: server.store, options: options, log: Logger(level: .critical, sink: NullLogSink()))
            .reconcileAll(now: now)
    }

    /// The current global resourceVersion.
    public var resourceVersion: Int { server.store.currentRV }

    /// Open watch streams (for tests that wait for a client to start watching).
    public var activeWatches: Int { server.store.watcherCount }
}

private func makeDirectories(_ path: String) throws(FakeServerError) {
    var current = path.hasPrefix("/") ? "" : "."
    for part in path.split(separator: "/") {
        current += "/" + part
        if mkdir(current, 0o755) != 0 && errno != EEXIST {
            throw FakeServerError(.io, "creating the directory \(current) failed (\(errnoMessage(errno)))")
        }
    }
}

private struct NullLogSink: LogSink { func write(line: String) {} }
