import KLCore
import Synchronization

/// The injected faults (`POST /fake/faults`). They apply to API requests only.
struct FaultSet: Sendable {
    enum PartitionMode: String, Sendable { case hang, reset }
    var latencyMs = 0
    var errorRate = 0.0
    var errorStatus = 503
    var dropRate = 0.0
    var partitionedTokens: Set<String> = []
    var partitionMode = PartitionMode.hang
    /// Latency of the requests of one token (instead of `latencyMs`): one
    /// replica's requests reach the server late, so another wins a race.
    var tokenLatencyMs: [String: Int] = [:]
    /// Every watch that gives a resourceVersion is answered with a 410
    /// Expired ERROR event, as a watch cache whose window is always too short.
    var expireWatches = false
    /// Every update (PUT) is answered 200 with the stored object unchanged:
    /// same resourceVersion, no watch event (a no-op update, as the real
    /// server answers one that changes nothing, e.g. whole-second times).
    var noopUpdates = false
    /// Creates in a namespace that does not exist answer 404 `namespaces "x"
    /// not found`, as the real server's NamespaceLifecycle admission does
    /// (off by default: many tests use namespaces they never create).
    var requireNamespaces = false

    init() {}

    /// Reads the control API body; every field is optional.
    init(_ json: JSON) throws(ControlError) {
        guard json.objectValue != nil else { throw ControlError("the faults body must be a JSON object") }
        if let v = json["latencyMs"] { guard let n = v.intValue, n >= 0 else { throw ControlError("latencyMs must be a non-negative integer") }; latencyMs = n }
        if let v = json["errorRate"] { guard let d = v.doubleValue, d >= 0, d <= 1 else { throw ControlError("errorRate must be a number from 0 to 1") }; errorRate = d }
        if let v = json["errorStatus"] { guard let n = v.intValue, n >= 400, n <= 599 else { throw ControlError("errorStatus must be an HTTP error code (400-599)") }; errorStatus = n }
        if let v = json["dropRate"] { guard let d = v.doubleValue, d >= 0, d <= 1 else { throw ControlError("dropRate must be a number from 0 to 1") }; dropRate = d }
        if let v = json["partitionedTokens"] {
            guard let a = v.arrayValue else { throw ControlError("partitionedTokens must be an array of tokens") }
            partitionedTokens = Set(a.compactMap(\.stringValue))
        }
        if let v = json["expireWatches"] {
            guard let b = v.boolValue else { throw ControlError("expireWatches must be true or false") }
            expireWatches = b
        }
        if let v = json["noopUpdates"] {
            guard let b = v.boolValue else { throw ControlError("noopUpdates must be true or false") }
            noopUpdates = b
        }
        if let v = json["requireNamespaces"] {
            guard let b = v.boolValue else { throw ControlError("requireNamespaces must be true or false") }
            requireNamespaces = b
        }
        if let v = json["tokenLatencyMs"] {
            guard let o = v.objectValue else { throw ControlError("tokenLatencyMs must be an object of token: milliseconds") }
            var m: [String: Int] = [:]
            for (token, ms) in o {
                guard let n = ms.intValue, n >= 0, n <= 600_000 else { throw ControlError("tokenLatencyMs values must be integers from 0 to 600000") }
                m[token] = n
            }
            tokenLatencyMs = m
        }
        if let v = json["partitionMode"] {
            guard let m = v.stringValue.flatMap(PartitionMode.init) else { throw ControlError("partitionMode must be \"hang\" or \"reset\"") }
            partitionMode = m
        }
    }

    var json: JSON {
        ["latencyMs": JSON(latencyMs), "errorRate": .number(String(errorRate)), "errorStatus": JSON(errorStatus),
         "dropRate": .number(String(dropRate)), "partitionedTokens": .array(partitionedTokens.sorted().map { JSON.string($0) }),
         "partitionMode": .string(partitionMode.rawValue), "expireWatches": .bool(expireWatches),
         "noopUpdates": .bool(noopUpdates), "requireNamespaces": .bool(requireNamespaces),
         "tokenLatencyMs": .object(JSONObject(tokenLatencyMs.sorted { $0.key < $1.key }.map { ($0.key, JSON($0.value)) }))]
    }

    /// The Status body of an injected error.
    static func errorBody(_ code: Int) -> JSON {
        switch code {
        case 429: Status.failure(code: 429, reason: "TooManyRequests", message: "fake: injected fault: too many requests, please try again later",
                                 details: ["retryAfterSeconds": 1])
        case 503: Status.failure(code: 503, reason: "ServiceUnavailable", message: "fake: injected fault: the server is currently unable to handle the request")
        case 504: Status.failure(code: 504, reason: "Timeout", message: "fake: injected fault: the server was unable to return a response in the time allotted")
        default: Status.failure(code: code, reason: "InternalError", message: "Internal error occurred: fake: injected fault",
                                details: ["causes": [["message": "fake: injected fault"]]])
        }
    }
}

struct ControlError: Error { var message: String; init(_ m: String) { message = m } }

/// A token registered through `POST /fake/tokens`.
struct TokenGrant: Sendable {
    var user: String
    /// "verb resource" entries ("update configmaps", "create pods/eviction",
    /// "* leases", "get *"); nil allows everything.
    var allow: [String]?

    func allows(verb: String, resource: String) -> Bool {
        guard let allow else { return true }
        return allow.contains { entry in
            let parts = entry.split(separator: " ").map(String.init)
            guard parts.count == 2 else { return false }
            return (parts[0] == "*" || parts[0] == verb) && (parts[1] == "*" || parts[1] == resource)
        }
    }
}

/// Mutable control-plane state: faults, tokens, per-token request counts.
struct ControlState: Sendable {
    var faults = FaultSet()
    var random = RandomSource(seed: 1)
    var tokens: [String: TokenGrant] = [:]
    var total = 0
    var byToken: [String: [String: Int]] = [:]

    static let verbs = ["get", "list", "watch", "create", "update", "patch", "delete"]

    mutating func count(token: String?, verb: String) {
        total += 1
        let key = token.map { String($0.prefix(8)) } ?? "anonymous"
        var counts = byToken[key] ?? Dictionary(uniqueKeysWithValues: Self.verbs.map { ($0, 0) })
        counts[verb, default: 0] += 1
        byToken[key] = counts
    }

    var statsJSON: JSON {
        var byTokenJSON = JSONObject()
        for (token, counts) in byToken.sorted(by: { $0.key < $1.key }) {
            var c = JSONObject()
            for verb in Self.verbs { c[verb] = JSON(counts[verb] ?? 0) }
            for (verb, n) in counts.sorted(by: { $0.key < $1.key }) where !Self.verbs.contains(verb) { c[verb] = JSON(n) }
            byTokenJSON[token] = .object(c)
        }
        return ["total": JSON(total), "byToken": .object(byTokenJSON)]
    }
}

/// What the connection thread must do with one API request, per the faults.
enum FaultAction {
    case none
    case hang, reset, drop
    case error(Int)
}

extension ControlState {
    /// Rolls the dice for one request. Latency is returned separately.
    mutating func decide(token: String?) -> (FaultAction, latencyMs: Int) {
        var f = faults
        if let token, let ms = f.tokenLatencyMs[token] { f.latencyMs = ms }
        if let token, f.partitionedTokens.contains(token) {
            return (f.partitionMode == .hang ? .hang : .reset, 0)
        }
        if f.dropRate > 0 && random.unit() < f.dropRate { return (.drop, 0) }
        if f.errorRate > 0 && random.unit() < f.errorRate { return (.error(f.errorStatus), f.latencyMs) }
        return (.none, f.latencyMs)
    }
}
