import KLCore

/// The one error type of pager-tester: a code, the object it concerns and a
/// full-sentence description (what failed, on which object, what to do).
public struct PagerError: CodedError, Equatable {
    public enum Code: Sendable, Equatable {
        /// A cron expression is malformed (exit 2).
        case invalidCron
        /// A time zone is unknown or its TZif file is unreadable (exit 2).
        case unknownZone
        /// The configuration file or environment is wrong (exit 2).
        case invalidConfig
        /// Bad command line (exit 2).
        case usage
        /// PagerDuty answered with a status >= 300 (after retries).
        case httpStatus
        /// The request could not be sent or timed out.
        case transport
        /// PagerDuty kept answering 429 after every retry (`retryAfter`
        /// says how long PagerDuty asked to wait).
        case rateLimited
        /// PagerDuty refused `POST /incidents` because an open incident with
        /// the same `incident_key` exists on the service: already paged.
        case duplicate
    }

    public var code: Code
    public var message: String
    /// HTTP status for `.httpStatus` / `.rateLimited`.
    public var status: Int?
    /// Response body (PagerDuty's error JSON) for `.httpStatus`.
    public var body: String?
    /// For `.rateLimited`: the wait PagerDuty asked for (`ratelimit-reset`,
    /// 60 s without the header).
    public var retryAfter: Duration?

    public init(_ code: Code, _ message: String, status: Int? = nil, body: String? = nil, retryAfter: Duration? = nil) {
        (self.code, self.message, self.status, self.body, self.retryAfter) = (code, message, status, body, retryAfter)
    }

    /// Configuration and usage problems exit 2; everything else 1.
    public var isUsage: Bool {
        switch code {
        case .invalidCron, .unknownZone, .invalidConfig, .usage: true
        default: false
        }
    }
}
