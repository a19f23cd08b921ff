import Foundation
import KLCore
import KLTransport
import KLSystem
import KLTestSupport
import Synchronization
@testable import PagerTesterKit

let testToken = "s3cr3t-token-value"
let testFrom = "pager-bot@example.com"
let testService = "PSERVICE"

/// The Python fake PagerDuty (fake_pagerduty.py) on 127.0.0.1.
final class FakePagerDuty: @unchecked Sendable {
    let process = Process()
    let port: Int
    let client: HTTPClient

    init() throws {
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", BinaryRunner.testsDir + "/fake_pagerduty.py",
                             "--token", testToken, "--from", testFrom, "--service", testService]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        var line = Data()
        while true {
            let byte = out.fileHandleForReading.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line += byte
        }
        guard let p = Int(String(decoding: line, as: UTF8.self)) else {
            process.terminate()
            throw FakeError(message: "fake_pagerduty.py did not print its port")
        }
        port = p
        client = try HTTPClient(baseURL: "http://127.0.0.1:\(p)")
    }

    /// SIGKILL: the test runner may spawn children with SIGTERM blocked.
    deinit {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    struct FakeError: Error { var message: String }

    var url: String { "http://127.0.0.1:\(port)" }

    func control(_ json: JSON) throws {
        let r = try client.send(HTTPRequest(method: "POST", path: "/_control", headers: [("Content-Type", "application/json")],
                                            body: Array(json.serialized().utf8)), timeout: .seconds(5))
        guard r.status == 200 else { throw FakeError(message: "control failed: \(r.bodyText)") }
    }

    /// Recorded requests (method, path, headers, body).
    func requests() throws -> [JSON] {
        let r = try client.send(HTTPRequest(method: "GET", path: "/_requests"), timeout: .seconds(5))
        return try JSON.parse(bytes: r.body).arrayValue ?? []
    }

    func requests(_ method: String, _ prefix: String) throws -> [JSON] {
        try requests().filter { $0["method"]?.stringValue == method && ($0["path"]?.stringValue ?? "").hasPrefix(prefix) }
    }

    var settings: PagerSettings {
        PagerSettings(token: testToken, serviceID: testService, subdomain: "acme", from: testFrom, apiURL: url)
    }


    /// The incidents the fake holds.
    func incidents() throws -> [JSON] {
        let r = try client.send(HTTPRequest(method: "GET", path: "/_incidents"), timeout: .seconds(5))
        return try JSON.parse(bytes: r.body).arrayValue ?? []
    }

    /// A client whose requests carry the test's virtual time, so the fake's
    /// rate limit and timestamps follow the manual clock.
    func pagerClient(clock: VirtualWallClock, sink: MemorySink) throws -> PagerDutyClient {
        PagerDutyClient(settings: settings, transport: VirtualTimeTransport(inner: try HTTPClient(baseURL: url), clock: clock), clock: clock,
                        logger: Logger(level: .debug, sink: sink, clock: { clock.now }))
    }

    var environment: [String: String] {
        ["PAGERDUTY_TOKEN": testToken, "SERVICE_ID": testService, "SUBDOMAIN": "acme",
         "PAGERDUTY_FROM": testFrom, "PAGERDUTY_API_URL": url]
    }
}

func person(_ name: String, _ id: String, _ cron: String) throws -> Person {
    Person(name: name, id: id, cron: try CronExpression.parse(cron, zones: zones), email: nil, entry: 1)
}

func time(_ text: String) -> WallTime { RFC3339.parse(text)! }

/// Adds `X-Fake-Now: SECONDS` (the manual clock) to every request.
struct VirtualTimeTransport: PagerTransport {
    var inner: HTTPClient
    var clock: VirtualWallClock
    func send(_ request: HTTPRequest, timeout: Duration) throws(TransportError) -> HTTPResponse {
        var r = request
        r.headers.append(("X-Fake-Now", String(clock.now.seconds)))
        return try inner.send(r, timeout: timeout)
    }
}
