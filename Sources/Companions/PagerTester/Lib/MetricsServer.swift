import CompanionSupport
import KLSupport

/// `--metrics-addr HOST:PORT`: a tiny HTTP/1.1 server answering
/// `GET /metrics` with `PagerMetrics.exposition()` (404 elsewhere), on
/// KLSupport's `MetricsHTTPServer`.
///
/// One thread serves one connection at a time; each connection gets 2 s to
/// send its request head (at most 8 KiB) and is closed after the answer, so
/// a slow or hostile client can delay a scrape but never grow memory or
/// block the scheduler.
public final class MetricsServer: Sendable {
    let server: MetricsHTTPServer
    public var port: Int { server.port }

    /// Binds and listens; `serve()` starts answering.
    ///
    /// - Parameter address: `:9102`, `0.0.0.0:9102` or `127.0.0.1:0` (IPv4).
    public init(address: String, metrics: PagerMetrics) throws(PagerError) {
        do {
            server = try MetricsHTTPServer(address: address, version: "HTTP/1.1", requestTimeout: .seconds(2),
                                           sendTimeoutSeconds: 2) { method, path in
                guard method == "GET", path == "/metrics" else {
                    return .init(status: "404 Not Found", body: "pager-tester serves only GET /metrics\n")
                }
                return .metrics(metrics.exposition())
            }
        } catch {
            switch error {
            case .notHostPort:
                throw PagerError(.usage, "--metrics-addr '\(address)' must be HOST:PORT or :PORT, e.g. :9102")
            case .notIPv4(let host):
                throw PagerError(.usage, "--metrics-addr '\(address)': '\(host)' is not an IPv4 address; use e.g. 0.0.0.0:9102")
            case .socket(let code):
                throw PagerError(.usage, "--metrics-addr '\(address)': cannot create a socket (errno \(code))")
            case .listen(let code):
                throw PagerError(.usage, "--metrics-addr '\(address)': cannot listen (\(errnoMessage(code))); choose another port")
            }
        }
    }

    /// Starts the serving thread (runs until the process exits).
    public func serve() { server.start() }
}
