import KLCore
import KLSystem
import KLTransport

/// `--metrics-addr HOST:PORT`: `GET /metrics` with
/// `PagerMetrics.exposition()` (404 elsewhere) on KLTransport's `HTTPServer`
/// (its own thread; each connection gets 2 s to send a head of at most
/// 8 KiB and take the answer), so a slow or hostile client can delay a
/// scrape but never grow memory or block the scheduler.
public final class PagerMetricsServer: Sendable {
    let server: HTTPServer
    public var port: Int { Int(server.boundAddress.port) }

    /// Binds and listens; `serve()` starts answering.
    ///
    /// - Parameter address: `:9102`, `0.0.0.0:9102` or `127.0.0.1:0`.
    public init(address: String, metrics: PagerMetrics) throws(PagerError) {
        do {
            server = try HTTPServer(address: HTTPServer.address(address).get(), headTimeout: .seconds(2)) { path in
                guard path == "/metrics" else { return .init(404, "pager-tester serves only GET /metrics\n") }
                return .metrics(metrics.exposition())
            }
        } catch {
            switch error {
            case .notHostPort:
                throw PagerError(.usage, "--metrics-addr '\(address)' must be HOST:PORT or :PORT, e.g. :9102")
            case .notNumericHost(let host):
                throw PagerError(.usage, "--metrics-addr '\(address)': '\(host)' is not a numeric IP address; use e.g. 0.0.0.0:9102")
            case .socket(let code):
                throw PagerError(.usage, "--metrics-addr '\(address)': cannot create a socket (\(errnoMessage(code)))")
            case .listen(let code):
                throw PagerError(.usage, "--metrics-addr '\(address)': cannot listen (\(errnoMessage(code))); choose another port")
            }
        }
    }

    /// Starts the serving thread (runs until the process exits).
    public func serve() { server.start() }
}
