import KLSystem
import KLCore

/// The control API under /fake/ (no auth, never faulted).
extension Server {
    func handleControl(_ request: HTTPRequest) -> HTTPResponse {
        let body = request.body.isEmpty ? JSON.object(JSONObject()) : ((try? JSON.parse(bytes: request.body)) ?? .null)
        func bad(_ message: String) -> HTTPResponse { HTTPResponse(status: 400, json: ["error": .string(message)]) }
        switch (request.method, request.path) {
        case ("GET", "/fake/healthz"):
            return HTTPResponse(status: 200, text: "ok")
        case ("GET", "/fake/faults"):
            return HTTPResponse(status: 200, json: control.withLock { $0.faults.json })
        case ("POST", "/fake/faults"), ("PUT", "/fake/faults"):
            do {
                let faults = try FaultSet(body)
                control.withLock { c in
                    c.faults = faults
                    if let seed = body["seed"]?.intValue { c.random = RandomSource(seed: UInt64(bitPattern: Int64(seed))) }
                }
                log.info("faults set", ("faults", faults.json))
                return HTTPResponse(status: 200, json: faults.json)
            } catch { return bad(error.message) }
        case ("DELETE", "/fake/faults"):
            control.withLock { $0.faults = FaultSet() }
            log.info("faults cleared")
            return HTTPResponse(status: 200, json: FaultSet().json)
        case ("POST", "/fake/tokens"):
            guard let token = body["token"]?.stringValue, !token.isEmpty else { return bad("token is required: {\"token\":\"t\",\"user\":\"u\",\"allow\":[\"get configmaps\"]}") }
            var allow: [String]?
            if let a = body["allow"] {
                guard let list = a.arrayValue else { return bad("allow must be an array of \"verb resource\" strings") }
                allow = list.compactMap(\.stringValue)
            }
            let user = body["user"]?.stringValue ?? "system:serviceaccount:default:default"
            control.withLock { $0.tokens[token] = TokenGrant(user: user, allow: allow) }
            return HTTPResponse(status: 201, json: ["token": .string(token), "user": .string(user)])
        case ("GET", "/fake/stats"):
            return HTTPResponse(status: 200, json: control.withLock { $0.statsJSON })
        case ("POST", "/fake/stats/reset"):
            control.withLock { $0.total = 0; $0.byToken = [:] }
            return HTTPResponse(status: 200, json: control.withLock { $0.statsJSON })
        default:
            return HTTPResponse(status: 404, json: ["error": .string("unknown control endpoint \(request.method) \(request.path)")])
        }
    }
}
