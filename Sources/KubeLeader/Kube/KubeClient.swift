import KLCore
import KLTransport
import Synchronization
import KLSystem

/// How a PATCH body is to be read (its Content-Type).
public enum PatchType: Sendable {
    /// `application/merge-patch+json` (RFC 7386).
    case merge
    /// `application/json-patch+json` (RFC 6902).
    case json
    /// `application/strategic-merge-patch+json`.
    case strategicMerge

    var contentType: String {
        switch self {
        case .merge: return "application/merge-patch+json"
        case .json: return "application/json-patch+json"
        case .strategicMerge: return "application/strategic-merge-patch+json"
        }
    }
}

/// A Kubernetes API client. Objects are `JSON` values that keep every field
/// they were read with, so an update never drops fields this code does not
/// know. Thread-safe; calls block, each bounded by its timeout (default
/// `requestTimeout`).
public final class KubeClient: @unchecked Sendable {
    public let config: KubeConfig
    public let requestTimeout: Duration
    private let http: HTTPClient
    private let tokens: TokenSource
    private let requests = Atomic<Int>(0)

    /// - Throws: `KubeError` (`.invalidURL`, `.caUnusable`) when the server URL
    ///   is invalid or the CA file cannot be used; the message names the file.
    public convenience init(config: KubeConfig, requestTimeout: Duration = .seconds(10)) throws(KubeError) {
        try self.init(config: config, requestTimeout: requestTimeout, tokenReloadInterval: .seconds(10))
    }

    /// `tokenReloadInterval`: how long a token read from `tokenFile` is used
    /// before the file is read again.
    init(config: KubeConfig, requestTimeout: Duration, tokenReloadInterval: Duration) throws(KubeError) {
        self.config = config
        self.requestTimeout = requestTimeout
        do {
            http = try HTTPClient(baseURL: config.server, tls: TLSOptions(caFile: config.caFile))
        } catch {
            var call = KubeError(code: KubeError.Code(error.code), message: "", verb: "", resource: "")
            call.server = config.server
            throw error.inCall(call)
        }
        tokens = TokenSource(file: config.tokenFile, fixed: config.token, reloadInterval: tokenReloadInterval)
    }

    /// HTTP requests sent so far (for benchmarks).
    public var requestCount: Int { requests.load(ordering: .relaxed) }

    /// Closes idle kept-alive connections.
    public func closeIdleConnections() { http.closeIdleConnections() }

    // MARK: verbs

    public func get(_ r: KubeResource, namespace: String?, name: String, timeout: Duration? = nil) throws(KubeError) -> JSON {
        try json(call(Call(verb: "get", method: "GET", resource: r, namespace: namespace, name: name), timeout: timeout))
    }

    public func list(_ r: KubeResource, namespace: String?, labelSelector: String? = nil, fieldSelector: String? = nil,
                     timeout: Duration? = nil) throws(KubeError) -> JSON {
        let call = Call(verb: "list", method: "GET", resource: r, namespace: namespace, name: nil)
        if let labelSelector { call.query.append(("labelSelector", labelSelector)) }
        if let fieldSelector { call.query.append(("fieldSelector", fieldSelector)) }
        return try json(self.call(call, timeout: timeout))
    }

    public func create(_ r: KubeResource, namespace: String?, body: JSON, timeout: Duration? = nil) throws(KubeError) -> JSON {
        let call = Call(verb: "create", method: "POST", resource: r, namespace: namespace, name: nil)
        call.objectName = body[path: "metadata", "name"]?.stringValue
        call.body = body
        return try json(self.call(call, timeout: timeout))
    }

    /// PUT: replaces the object; a stale `metadata.resourceVersion` is a `.conflict`.
    public func update(_ r: KubeResource, namespace: String?, name: String, body: JSON, timeout: Duration? = nil) throws(KubeError) -> JSON {
        let call = Call(verb: "update", method: "PUT", resource: r, namespace: namespace, name: name)
        call.body = body
        return try json(self.call(call, timeout: timeout))
    }

    public func patch(_ r: KubeResource, namespace: String?, name: String, patch: JSON, type: PatchType = .merge,
                      subresource: String? = nil, timeout: Duration? = nil) throws(KubeError) -> JSON {
        let call = Call(verb: "patch", method: "PATCH", resource: r, namespace: namespace, name: name)
        call.subresource = subresource
        call.body = patch
        call.contentType = type.contentType
        return try json(self.call(call, timeout: timeout))
    }

    public func delete(_ r: KubeResource, namespace: String?, name: String, timeout: Duration? = nil) throws(KubeError) {
        _ = try call(Call(verb: "delete", method: "DELETE", resource: r, namespace: namespace, name: name), timeout: timeout)
    }

    /// POST to a subresource, e.g. `pods/eviction` (RBAC verb `create`).
    public func post(_ r: KubeResource, namespace: String?, name: String, subresource: String, body: JSON,
                     timeout: Duration? = nil) throws(KubeError) -> JSON {
        let call = Call(verb: "create", method: "POST", resource: r, namespace: namespace, name: name)
        call.subresource = subresource
        call.body = body
        return try json(self.call(call, timeout: timeout))
    }

    /// Starts a watch. `timeout` bounds getting the response headers;
    /// `timeoutSeconds` asks the server to end the stream (cleanly) after that
    /// long. Events are then read with `KubeWatch.next(deadline:)`.
    public func watch(_ r: KubeResource, namespace: String?, fieldSelector: String? = nil, labelSelector: String? = nil,
                      resourceVersion: String?, timeoutSeconds: Int = 300, timeout: Duration? = nil) throws(KubeError) -> KubeWatch {
        let call = Call(verb: "watch", method: "GET", resource: r, namespace: namespace, name: nil)
        call.query.append(("watch", "1"))
        if let resourceVersion { call.query.append(("resourceVersion", resourceVersion)) }
        if let fieldSelector { call.query.append(("fieldSelector", fieldSelector)) }
        if let labelSelector { call.query.append(("labelSelector", labelSelector)) }
        call.query.append(("timeoutSeconds", String(timeoutSeconds)))
        call.query.append(("allowWatchBookmarks", "true"))
        let limit = timeout ?? requestTimeout
        var retried = false
        while true {
            let token = try currentToken(call)
            let stream: HTTPStream
            do {
                requests.add(1, ordering: .relaxed)
                stream = try http.openStream(request(call, token: token), timeout: limit)
            } catch {
                throw transportError(error, call)
            }
            if stream.status == 200 {
                return KubeWatch(stream: stream, error: baseError(call))
            }
            let body: [UInt8]
            do { body = try stream.readAll(deadline: .now + limit) } catch { body = [] }
            stream.close()
            let response = HTTPResponse(status: stream.status, headers: stream.headers, body: body)
            if response.status == 401 && !retried && tokens.rotated(since: token) {
                retried = true
                continue
            }
            throw statusError(response, call)
        }
    }

    // MARK: internals

    /// A class: passed to several helpers and kept by none, so one reference
    /// instead of ten fields to copy and destroy: a smaller binary.
    final class Call {
        var verb: String
        var method: String
        var resource: KubeResource
        var namespace: String?
        var name: String?
        var objectName: String?
        var subresource: String?
        var query: [(String, String)] = []
        var body: JSON?
        var contentType = "application/json"

        init(verb: String, method: String, resource: KubeResource, namespace: String?, name: String?) {
            self.verb = verb
            self.method = method
            self.resource = resource
            self.namespace = resource.namespaced ? namespace : nil
            self.name = name
        }

        var rbacResource: String { subresource.map { "\(resource.plural)/\($0)" } ?? resource.plural }
        var path: String { resource.path(namespace: namespace, name: name, subresource: subresource) + queryString(query) }
    }

    private func request(_ call: Call, token: String?) -> HTTPRequest {
        var headers: [(String, String)] = [("Accept", "application/json"), ("User-Agent", config.userAgent)]
        if let token, !token.isEmpty { headers.append(("Authorization", "Bearer \(token)")) }
        var body: [UInt8] = []
        if let json = call.body {
            headers.append(("Content-Type", call.contentType))
            body = Array(json.serialized().utf8)
        }
        return HTTPRequest(method: call.method, path: call.path, headers: headers, body: body)
    }

    /// Sends the call; on a 401 with a token file, re-reads the token and,
    /// when it changed (rotated), tries once more.
    private func call(_ call: Call, timeout: Duration?) throws(KubeError) -> HTTPResponse {
        let limit = timeout ?? requestTimeout
        let deadline = MonotonicClock.now + limit
        var retried = false
        while true {
            let token = try currentToken(call)
            let response: HTTPResponse
            do throws(TransportError) {
                requests.add(1, ordering: .relaxed)
                let left = deadline - .now
                guard left > .zero else { throw TransportError(.timedOut, "Timed out after \(DurationText.format(limit)) talking to \(http.serverText).") }
                response = try http.send(request(call, token: token), timeout: left)
            } catch {
                throw transportError(error, call)
            }
            if (200..<300).contains(response.status) { return response }
            if response.status == 401 && !retried && tokens.rotated(since: token) {
                retried = true
                continue
            }
            throw statusError(response, call)
        }
    }

    private func currentToken(_ call: Call) throws(KubeError) -> String? {
        do {
            return try tokens.current()
        } catch {
            var e = baseError(call)
            e.code = .unauthorized
            e.message = "cannot use the token file \(config.tokenFile ?? ""): \(error.message)"
            throw e
        }
    }

    private func json(_ response: HTTPResponse) throws(KubeError) -> JSON {
        if response.body.isEmpty { return .null }
        do {
            return try JSON.parse(bytes: response.body)
        } catch {
            var e = KubeError(code: .badResponse, httpStatus: response.status, message: "the body is not valid JSON (\(error))", verb: "", resource: "")
            e.server = config.server
            throw e
        }
    }

    /// The call's context for its errors (the code is set by each failure).
    func baseError(_ call: Call) -> KubeError {
        var e = KubeError(code: .connectFailed, message: "", verb: call.verb, resource: call.rbacResource,
                          name: call.name ?? call.objectName, namespace: call.namespace)
        e.group = call.resource.group
        e.server = config.server
        e.tokenFile = config.tokenFile
        return e
    }

    private func transportError(_ error: TransportError, _ call: Call) -> KubeError {
        error.inCall(baseError(call))
    }

    private func statusError(_ response: HTTPResponse, _ call: Call) -> KubeError {
        var e = KubeError.from(response: response, verb: call.verb, resource: call.rbacResource,
                               name: call.name ?? call.objectName, namespace: call.namespace)
        e.group = call.resource.group
        e.server = config.server
        e.tokenFile = config.tokenFile
        return e
    }
}

/// Why the token in `path` cannot be sent (a control character inside it),
/// or nil when it is usable or cannot be read (reported elsewhere).
func tokenFileProblem(_ path: String) -> String? {
    guard case .success(let text) = readWholeTextFile(path) else { return nil }
    do {
        _ = try TokenSource.token(fromFileText: text)
        return nil
    } catch {
        return error.message
    }
}

/// The bearer token: fixed, or read from a file and re-read every
/// `reloadInterval` and after a 401 (projected tokens rotate about hourly).
final class TokenSource: @unchecked Sendable {
    private struct State {
        var token: String?
        var readAt: MonotonicClock.Instant?
    }
    let file: String?
    let fixed: String?
    let reloadInterval: Duration
    private let state = Mutex(State())

    init(file: String?, fixed: String?, reloadInterval: Duration) {
        self.file = file
        self.fixed = fixed
        self.reloadInterval = reloadInterval
    }

    /// - Throws: `KubeError` (`.unauthorized`) whose message is a fragment for
    ///   a sentence: the errno text of a failed read, or what is wrong with
    ///   the token in the file.
    func current() throws(KubeError) -> String? {
        guard let file else { return fixed }
        let now = MonotonicClock.now
        if let cached = state.withLock({ s -> String? in
            guard let at = s.readAt, now - at < reloadInterval else { return nil }
            return s.token
        }) { return cached }
        switch readWholeTextFile(file) {
        case .success(let text):
            let token = try Self.token(fromFileText: text)
            state.withLock { $0 = State(token: token, readAt: now) }
            return token
        case .failure(let error):
            // Keep using the last good token while the file is being replaced.
            if let last = state.withLock({ $0.token }) { return last }
            throw KubeError(.unauthorized, error.description)
        }
    }

    /// The token in a token file's text: surrounding whitespace (a trailing
    /// LF or Windows CRLF, spaces, tabs) trimmed. A control character left
    /// inside would end the request's headers early (header injection) and
    /// is refused.
    static func token(fromFileText text: String) throws(KubeError) -> String {
        var bytes = Substring(text).utf8[...]
        func isSpace(_ b: UInt8) -> Bool { b == 32 || b == 9 || b == 10 || b == 13 || b == 11 || b == 12 }
        while let f = bytes.first, isSpace(f) { bytes = bytes.dropFirst() }
        while let l = bytes.last, isSpace(l) { bytes = bytes.dropLast() }
        if let bad = bytes.first(where: { $0 < 32 || $0 == 127 }) {
            throw KubeError(.unauthorized, "the token in it contains \(controlText(bad)); the file must hold the token alone on one line (a trailing line break is fine)")
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// After a 401: reads the file again; true when the token differs from
    /// the one that was rejected (worth one more try).
    func rotated(since rejected: String?) -> Bool {
        guard file != nil else { return false }
        state.withLock { $0.readAt = nil }
        guard let fresh = try? current() else { return false }
        return fresh != rejected
    }
}
