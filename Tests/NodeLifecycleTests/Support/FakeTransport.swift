import Synchronization
@testable import NodeLifecycleKit

/// A scripted AWS transport: answers with `handler`, records every request.
final class FakeTransport: AWSTransport {
    struct Sent: Sendable { var baseURL: String; var request: AWSRequest }
    let sent = Mutex<[Sent]>([])
    let handler: @Sendable (String, AWSRequest) -> AWSResponse

    init(_ handler: @escaping @Sendable (String, AWSRequest) -> AWSResponse) {
        self.handler = handler
    }

    func send(baseURL: String, _ request: AWSRequest, timeout: Duration) throws(NodeLifecycleError) -> AWSResponse {
        sent.withLock { $0.append(Sent(baseURL: baseURL, request: request)) }
        return handler(baseURL, request)
    }

    var requests: [Sent] { sent.withLock { $0 } }
}

func textResponse(_ status: Int, _ text: String, headers: [AWSHeader] = []) -> AWSResponse {
    AWSResponse(status: status, headers: headers, body: Array(text.utf8))
}
