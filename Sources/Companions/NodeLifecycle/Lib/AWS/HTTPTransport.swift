import KLTransport
import Synchronization

/// The real transport: KLTransport's HTTP/1.1 client (TLS via OpenSSL, system CA
/// bundle), one kept-alive client per base URL.
public final class HTTPTransport: AWSTransport {
    private let clients = Mutex<[String: HTTPClient]>([:])
    private let connectTimeout: Duration

    public init(connectTimeout: Duration = .seconds(5)) {
        self.connectTimeout = connectTimeout
    }

    func client(_ baseURL: String) throws(NodeLifecycleError) -> HTTPClient {
        if let c = clients.withLock({ $0[baseURL] }) { return c }
        let c: HTTPClient
        do {
            c = try HTTPClient(baseURL: baseURL, connectTimeout: connectTimeout)
        } catch {
            throw NodeLifecycleError(.usage, error.description)
        }
        clients.withLock { $0[baseURL] = c }
        return c
    }

    public func send(baseURL: String, _ request: AWSRequest, timeout: Duration) throws(NodeLifecycleError) -> AWSResponse {
        let c = try client(baseURL)
        do {
            let r = try c.send(HTTPRequest(method: request.method, path: request.target,
                                           headers: request.headers.map { ($0.name, $0.value) }, body: request.body),
                               timeout: timeout)
            return AWSResponse(status: r.status, headers: r.headers.map { AWSHeader($0.0, $0.1) }, body: r.body)
        } catch {
            throw NodeLifecycleError(.transport, error.description)
        }
    }
}
