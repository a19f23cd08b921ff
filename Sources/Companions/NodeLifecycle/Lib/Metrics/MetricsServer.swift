#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CompanionSupport
import KLSupport

/// `--metrics-addr HOST:PORT`: `GET /metrics` (Prometheus text) and
/// `GET /healthz` on KLSupport's `MetricsHTTPServer` (HTTP/1.0, one request
/// per connection, 5 s for the request head, at most 8 KiB read).
public final class MetricsServer: Sendable {
    let server: MetricsHTTPServer
    /// The port bound (useful with port 0).
    public var port: Int { server.port }

    /// Checks `HOST:PORT` without binding (configuration validation):
    /// `:9100` or `0.0.0.0:9100` for every interface, IPv4 literals only.
    public static func parse(address: String) throws(NodeLifecycleError) -> sockaddr_in {
        do {
            return try MetricsHTTPServer.parse(address: address).get()
        } catch {
            throw problem(error, address: address)
        }
    }

    /// Listens on `address`; `start()` begins answering.
    public init(address: String, render: @escaping @Sendable () -> String) throws(NodeLifecycleError) {
        do {
            server = try MetricsHTTPServer(address: address, version: "HTTP/1.0", requestTimeout: .seconds(5),
                                           sendTimeoutSeconds: 5) { method, path in
                if method != "GET" { return .init(status: "405 Method Not Allowed", body: "only GET\n") }
                switch path {
                case "/metrics": return .metrics(render())
                case "/healthz": return .init(status: "200 OK", body: "ok\n")
                default: return .init(status: "404 Not Found", body: "try /metrics\n")
                }
            }
        } catch {
            throw Self.problem(error, address: address)
        }
    }

    /// Serves forever on a thread of its own.
    public func start() { server.start() }

    static func problem(_ error: MetricsHTTPServer.ListenError, address: String) -> NodeLifecycleError {
        switch error {
        case .notHostPort:
            NodeLifecycleError(.usage, "--metrics-addr \"\(address)\" is not HOST:PORT; use e.g. :9100 or 127.0.0.1:9100.")
        case .notIPv4(let host):
            NodeLifecycleError(.usage, "--metrics-addr host \"\(host)\" is not an IPv4 address; use e.g. 0.0.0.0 or 127.0.0.1.")
        case .socket(let code):
            NodeLifecycleError(.file, "Cannot open a socket for --metrics-addr: \(errnoMessage(code)).")
        case .listen(let code):
            NodeLifecycleError(.usage, "Cannot listen on --metrics-addr \(address): \(errnoMessage(code)). Pick a free port.")
        }
    }
}
