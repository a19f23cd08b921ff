import KLCore
import KLNetworkTestSupport
import Testing
@testable import KLKube
@testable import KLTransport

/// A renew through the Kubernetes client while its kept-alive connection
/// goes silent (the transport's side: KLTransportTests' SilentConnectionTests).
@Suite("Silent kept-alive connections: a renew through KubeClient")
struct SilentConnectionRenewTests {
    @Test(.timeLimit(.minutes(1)))
    func renewOnASilentConnection_secondAttemptWithinTheBudgetSucceeds() throws {
        // A renew on a silent connection at the API-client level: a budget of
        // 2 s (time left to the renew deadline), attempts of at most half of
        // what is left; the second goes out on a fresh connection and the
        // renew lands well before the budget ends.
        let body = #"{"kind":"ConfigMap","metadata":{"name":"lock","resourceVersion":"7"}}"#
        let s = SilentAfterServer(silent: [0], response: "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
        defer { s.stop() }
        let kube = try KubeClient(config: KubeConfig(server: s.url, caFile: nil, tokenFile: nil, token: "t", userAgent: "test"))
        _ = try kube.get(.configMaps, namespace: "ns", name: "lock", timeout: .seconds(5))
        let budgetEnd = MonotonicClock.now + .seconds(2)
        var attempts = 0
        var result: JSON?
        while result == nil, MonotonicClock.now < budgetEnd {
            attempts += 1
            let left = MonotonicClock.now.duration(to: budgetEnd)
            do {
                result = try kube.update(.configMaps, namespace: "ns", name: "lock", body: ["metadata": ["name": "lock"]], timeout: left / 2)
            } catch {
                #expect(error.code == .timedOut, "\(error)")
            }
        }
        #expect(result?[path: "metadata", "resourceVersion"]?.stringValue == "7")
        #expect(attempts == 2)
        #expect(s.requests(on: 0) == 2)
    }
}
