import KLCore
import KLTransport
import KLSystem

/// Sends one HTTP request; `KLTransport.HTTPClient` in production, the same
/// client against a local fake server in tests.
public protocol PagerTransport: Sendable {
    func send(_ request: HTTPRequest, timeout: Duration) throws(TransportError) -> HTTPResponse
}

extension HTTPClient: PagerTransport {}

/// A test incident PagerDuty created.
public struct CreatedIncident: Sendable, Equatable {
    public var id: String
    public var number: Int?
    public var status: String
    /// `https://SUBDOMAIN.pagerduty.com/incidents/ID`
    public var url: String
}

/// The PagerDuty REST API v2 calls pager-tester makes (one at a time).
///
/// - Rate limits: a 429 waits the `ratelimit-reset` header's seconds (60 s
///   when absent; PagerDuty sends no `Retry-After`), then retries, at most
///   `maxRetries` times and never past `jobTimeout`.
/// - Any other status >= 300 is an error carrying status and body; a POST is
///   never retried on 5xx or a transport error (it may have created the
///   incident: retrying could page twice).
/// - The token goes only into the `Authorization` header: never into logs
///   or error messages.
public struct PagerDutyClient: Sendable {
    public var settings: PagerSettings
    public var transport: any PagerTransport
    public var clock: any BlockingClock<WallTime>
    public var logger: Logger
    /// Bound on each HTTP request (default 10 s, as the original service).
    public var requestTimeout: Duration = .seconds(10)
    /// Most retries after a 429 (default 3).
    public var maxRetries = 3
    /// Bound on one job including its 429 waits (default 5 min).
    public var jobTimeout: Duration = .seconds(300)
    /// `urgency` of test incidents for people without their own (default
    /// `high`: the phone path through do-not-disturb is what is tested).
    public var defaultUrgency: Urgency = .high
    /// Counts 429 waits (nil: not counted).
    public var metrics: PagerMetrics?

    public init(settings: PagerSettings, transport: any PagerTransport, clock: any BlockingClock<WallTime>, logger: Logger) {
        self.settings = settings
        self.transport = transport
        self.clock = clock
        self.logger = logger
    }

    /// The `incident_key` of a person's page for a fire time:
    /// `pager-tester/PABC123/2027-01-05T14:55:00Z`. PagerDuty refuses a second
    /// create with the key while the first incident is open, so a restart or
    /// fail-over can never page the same fire time twice.
    public static func incidentKey(personID: String, fireTime: WallTime) -> String {
        "pager-tester/\(personID)/\(RFC3339.format(WallTime(seconds: fireTime.seconds)))"
    }

    /// The JSON body of `POST /incidents` for a person (also logged by `--dry-run`).
    public func incidentBody(for person: Person, incidentKey: String? = nil) -> JSON {
        var incident: [(String, JSON)] = [
            ("type", "incident"),
            ("title", .string("pager-tester: test page for \(person.name), please acknowledge")),
            ("service", ["id": .string(settings.serviceID), "type": "service_reference"]),
            ("urgency", .string((person.urgency ?? defaultUrgency).rawValue)),
            ("assignments", [["assignee": ["id": .string(person.id), "type": "user_reference"]]]),
        ]
        if let incidentKey { incident.append(("incident_key", .string(incidentKey))) }
        return ["incident": .object(JSONObject(incident))]
    }

    /// `POST /incidents` assigned to `person`.
    ///
    /// - Parameter waitOnRateLimit: wait out 429s here (`notify`); the
    ///   scheduler passes false and re-queues the page instead, so other
    ///   jobs go on meanwhile.
    /// - Throws: `.duplicate` when PagerDuty refuses the `incident_key`
    ///   (HTTP 400, error code 2002, "Open incident with matching dedup key
    ///   already exists on this service"); `.rateLimited` with `retryAfter`.
    public func createIncident(for person: Person, incidentKey: String? = nil,
                               waitOnRateLimit: Bool = true) throws(PagerError) -> CreatedIncident {
        let response: HTTPResponse
        do throws(PagerError) {
            response = try request("POST", "/incidents", body: incidentBody(for: person, incidentKey: incidentKey),
                                   what: "create the test incident for \(person.name)", waitOnRateLimit: waitOnRateLimit)
        } catch where error.status == 400 && Self.isDuplicateRefusal(error.body ?? "") {
            throw PagerError(.duplicate, "PagerDuty already has an open incident with incident_key \(incidentKey ?? "?") for \(person.name)",
                             status: error.status, body: error.body)
        }
        guard let json = try? JSON.parse(bytes: response.body), let id = json[path: "incident", "id"]?.stringValue else {
            throw PagerError(.httpStatus, "PagerDuty answered \(response.status) to creating the test incident for \(person.name) without an incident id: \(clip(response.bodyText))",
                             status: response.status, body: response.bodyText)
        }
        return CreatedIncident(id: id, number: json[path: "incident", "incident_number"]?.intValue,
                               status: json[path: "incident", "status"]?.stringValue ?? "triggered",
                               url: settings.incidentURL(id))
    }

    /// PagerDuty's answer to a create whose `incident_key` matches an open
    /// incident: 400 with `{"error":{"message":"Arguments Caused Error",
    /// "code":2002,"errors":["Open incident with matching dedup key already
    /// exists on this service"]}}`.
    static func isDuplicateRefusal(_ body: String) -> Bool {
        guard let error = (try? JSON.parse(body))?["error"] else { return false }
        let texts = (error["errors"]?.arrayValue ?? []).compactMap(\.stringValue) + [error["message"]?.stringValue ?? ""]
        return texts.contains { $0.lowercased().contains("matching dedup key already exists") }
    }

    /// `GET /incidents?incident_key=KEY&date_range=all`: the incident a
    /// previous run (or replica) created for this key, open or resolved.
    public func findIncident(incidentKey: String) throws(PagerError) -> CreatedIncident? {
        let response = try request("GET", "/incidents?incident_key=\(percentEncode(incidentKey))&date_range=all", body: nil,
                                   what: "look up the incident with incident_key \(incidentKey)")
        guard let list = (try? JSON.parse(bytes: response.body))?["incidents"]?.arrayValue else {
            throw PagerError(.httpStatus, "PagerDuty's answer to the incident look-up has no incidents list: \(clip(response.bodyText))",
                             status: response.status, body: response.bodyText)
        }
        guard let first = list.first, let id = first["id"]?.stringValue else { return nil }
        return CreatedIncident(id: id, number: first["incident_number"]?.intValue,
                               status: first["status"]?.stringValue ?? "triggered", url: settings.incidentURL(id))
    }

    /// Query-string encoding (RFC 3986 unreserved characters stay).
    func percentEncode(_ text: String) -> String {
        var out = ""
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.append(Character(Unicode.Scalar(b)))
            default:
                let hex = Array("0123456789ABCDEF")
                out += "%" + String(hex[Int(b >> 4)]) + String(hex[Int(b & 15)])
            }
        }
        return out
    }

    /// `GET /incidents/{id}`: `triggered`, `acknowledged` or `resolved`.
    public func incidentStatus(_ id: String) throws(PagerError) -> String {
        let response = try request("GET", "/incidents/\(id)", body: nil, what: "read incident \(id)")
        guard let status = (try? JSON.parse(bytes: response.body))?[path: "incident", "status"]?.stringValue else {
            throw PagerError(.httpStatus, "PagerDuty's answer for incident \(id) has no incident.status: \(clip(response.bodyText))",
                             status: response.status, body: response.bodyText)
        }
        return status
    }

    /// `GET /incidents/{id}/log_entries?include[]=channels`.
    public func logEntries(_ id: String) throws(PagerError) -> [JSON] {
        let response = try request("GET", "/incidents/\(id)/log_entries?include%5B%5D=channels&limit=100", body: nil,
                                   what: "read the log entries of incident \(id)")
        guard let entries = (try? JSON.parse(bytes: response.body))?["log_entries"]?.arrayValue else {
            throw PagerError(.httpStatus, "PagerDuty's answer for the log entries of incident \(id) has no log_entries: \(clip(response.bodyText))",
                             status: response.status, body: response.bodyText)
        }
        return entries
    }

    /// `PUT /incidents/{id}` with status `resolved`.
    public func resolve(_ id: String) throws(PagerError) {
        let body: JSON = ["incident": ["type": "incident_reference", "status": "resolved"]]
        _ = try request("PUT", "/incidents/\(id)", body: body, what: "resolve incident \(id)")
    }

    /// `GET /users/{id}`: the user's login email (to refuse a `From` that is
    /// one of the people being tested).
    public func userEmail(_ id: String) throws(PagerError) -> String? {
        let response = try request("GET", "/users/\(id)", body: nil, what: "read user \(id)")
        return (try? JSON.parse(bytes: response.body))?[path: "user", "email"]?.stringValue
    }

    func headers(withBody: Bool) -> [(String, String)] {
        var h: [(String, String)] = [
            ("Accept", "application/vnd.pagerduty+json;version=2"),
            ("Authorization", "Token token=\(settings.token)"),
            ("From", settings.from),
        ]
        if withBody { h.append(("Content-Type", "application/json")) }
        return h
    }

    /// One API call with the 429 policy; status >= 300 throws with status and body.
    func request(_ method: String, _ path: String, body: JSON?, what: String, waitOnRateLimit: Bool = true) throws(PagerError) -> HTTPResponse {
        let started = clock.now
        let bytes = body.map { Array($0.serialized().utf8) } ?? []
        var retries = 0
        while true {
            let response: HTTPResponse
            do throws(TransportError) {
                response = try transport.send(HTTPRequest(method: method, path: path, headers: headers(withBody: body != nil), body: bytes),
                                              timeout: requestTimeout)
            } catch {
                let timedOut = error.code == .timedOut
                throw PagerError(.transport, "could not \(what): \(timedOut ? "PagerDuty did not answer within \(DurationText.format(requestTimeout)) (\(error.message))" : error.message); the next scheduled page is tried as usual")
            }
            if response.status == 429 {
                let reset = response.header("ratelimit-reset").flatMap { Double($0.trimmingWhitespace) }
                let wait: Duration = reset.map { .milliseconds(Int64(max(0, min($0, 3600)) * 1000)) } ?? .seconds(60)
                let spent = clock.now.duration(since: started)
                guard waitOnRateLimit, retries < maxRetries, spent + wait <= jobTimeout else {
                    throw PagerError(.rateLimited, "could not \(what): PagerDuty answered 429 (rate limited) \(retries + 1) times; body: \(clip(response.bodyText))",
                                     status: 429, body: response.bodyText, retryAfter: wait)
                }
                retries += 1
                metrics?.rateLimitWait()
                logger.warning("rate limited by PagerDuty, waiting", ("http.method", .string(method)), ("http.path", .string(path)),
                               ("wait_seconds", .number(String(wait.seconds))), ("ratelimit.reset_header", .bool(reset != nil)),
                               ("retry", .number(String(retries))))
                clock.sleep(for: wait)
                continue
            }
            guard response.status < 300 else {
                throw PagerError(.httpStatus, "could not \(what): PagerDuty answered \(response.status): \(clip(response.bodyText))",
                                 status: response.status, body: response.bodyText)
            }
            return response
        }
    }

    func clip(_ text: String) -> String { text.count > 2000 ? String(text.prefix(2000)) + "…" : text }
}
