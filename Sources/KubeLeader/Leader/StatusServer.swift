import KLCore
import KLSystem
import KLTransport

/// `--status-addr`: `/healthz`, `/leader` and `/metrics` on KLTransport's
/// `HTTPServer` (its own thread; GET and HEAD; a head must come within
/// `headTimeout` and fit in 8 KiB).
///
/// It cannot hold up the election or the supervisor: it shares nothing with
/// them but `SharedLeaderStatus`, whose mutex is held only for a copy.
public final class StatusServer: Sendable {
    let server: HTTPServer
    /// The address actually bound (with the port the kernel chose for port 0).
    public var boundAddress: String { server.boundAddress.description }

    /// Binds and listens; `start()` then serves on a new thread.
    /// - Throws: a message naming the address and the reason (in use, not local).
    public init(address: StatusAddress, sharedStatus: SharedLeaderStatus, renewDeadline: Duration,
                headTimeout: Duration = .seconds(5)) throws(UsageError) {
        do {
            server = try HTTPServer(address: address, headTimeout: headTimeout) { path in
                Self.route(path, status: sharedStatus.snapshot, now: MonotonicClock.now, renewDeadline: renewDeadline)
            }
        } catch {
            switch error {
            case .notNumericHost, .notHostPort:
                throw UsageError("status address \(address) is not a numeric IP address and port")
            case .socket(let e):
                throw UsageError("cannot open a socket for the status address \(address): \(errnoMessage(e))")
            case .listen(let e):
                throw UsageError("cannot listen on the status address \(address): \(errnoMessage(e)); choose another --status-addr")
            }
        }
    }

    /// Serves on a new thread for the rest of the process's life.
    public func start() { server.start() }

    /// The answer for a path. Pure, so it is tested directly.
    static func route(_ path: Substring, status: LeaderStatus, now: MonotonicInstant, renewDeadline: Duration) -> HTTPServer.Response {
        switch path {
        case "/healthz":
            if status.isHealthy(now: now, renewDeadline: renewDeadline) { return .init(200, "ok\n") }
            return .init(500, "leading, but no successful renew of \(status.namespace)/\(status.lockName) within the renew deadline\n")
        case "/leader":
            return .init(200, contentType: "application/json", status.leaderJSON.serialized() + "\n")
        case "/metrics":
            return .metrics(status.metricsText)
        default:
            return .init(404, "not found: use /healthz, /leader or /metrics\n")
        }
    }
}
