import KLCore
import KLSystem
import KLTransport

/// `--metrics-addr HOST:PORT`: `GET /metrics` (Prometheus text) and
/// `GET /healthz` on KLTransport's `HTTPServer` (its own thread, one request
/// per connection, 5 s for the request head, at most 8 KiB read).
public final class NodeLifecycleMetricsServer: Sendable {
    let server: HTTPServer
    /// The port bound (useful with port 0).
    public var port: Int { Int(server.boundAddress.port) }

    /// Checks `HOST:PORT` without binding (configuration validation):
    /// `:9100` or `0.0.0.0:9100` for every interface, numeric IPs only.
    @discardableResult
    public static func parse(address: String) throws(NodeLifecycleError) -> StatusAddress {
        do {
            return try HTTPServer.address(address).get()
        } catch {
            throw problem(error, address: address)
        }
    }

    /// Listens on `address`; `start()` begins answering.
    public init(address: String, render: @escaping @Sendable () -> String) throws(NodeLifecycleError) {
        let parsed = try Self.parse(address: address)
        do {
            server = try HTTPServer(address: parsed, headTimeout: .seconds(5)) { path in
                switch path {
                case "/metrics": .metrics(render())
                case "/healthz": .init(200, "ok\n")
                default: .init(404, "try /metrics\n")
                }
            }
        } catch {
            throw Self.problem(error, address: address)
        }
    }

    /// Serves forever on a thread of its own.
    public func start() { server.start() }

    static func problem(_ error: HTTPServer.ListenError, address: String) -> NodeLifecycleError {
        switch error {
        case .notHostPort:
            NodeLifecycleError(.usage, "--metrics-addr \"\(address)\" is not HOST:PORT; use e.g. :9100 or 127.0.0.1:9100.")
        case .notNumericHost(let host):
            NodeLifecycleError(.usage, "--metrics-addr host \"\(host)\" is not a numeric IP address; use e.g. 0.0.0.0 or 127.0.0.1.")
        case .socket(let code):
            NodeLifecycleError(.file, "Cannot open a socket for --metrics-addr: \(errnoMessage(code)).")
        case .listen(let code):
            NodeLifecycleError(.usage, "Cannot listen on --metrics-addr \(address): \(errnoMessage(code)). Pick a free port.")
        }
    }
}
