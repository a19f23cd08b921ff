import KLCore

/// What verification concluded about one test page, judged from the
/// notification OUTCOME PagerDuty logged, not from the mere attempt.
public enum PageVerdict: String, Sendable, Equatable, CaseIterable {
    /// The person acknowledged (or resolved) the test incident.
    case acknowledged
    /// At least one notification to the person has a success status
    /// (`channel.notification.status == "success"`).
    case delivered
    /// PagerDuty tried to notify the person, and every notification failed
    /// (any status other than `success`: failed SMS, unanswered call, …).
    case notificationFailed = "notification-failed"
    /// No notification to the person was logged at all.
    case noNotification = "no-notification"

    /// `acknowledged` and `delivered` mean the person is reachable.
    public var isReachable: Bool { self == .acknowledged || self == .delivered }
}

/// One `notify_log_entry` to the person: `channel.notification` of
/// `GET /incidents/{id}/log_entries?include[]=channels`.
public struct NotificationOutcome: Sendable, Equatable {
    /// `sms_notification`, `phone_notification`, `push_notification`,
    /// `email_notification` (older accounts: `sms`, `phone`, `email`).
    public var type: String
    /// `success`, or what went wrong (PagerDuty does not enumerate the values).
    public var status: String
    /// Phone number or email; logged masked to its last four characters.
    public var address: String?

    public init(type: String, status: String, address: String? = nil) {
        (self.type, self.status, self.address) = (type, status, address)
    }

    /// Only `success` counts (case-insensitive): an unknown status is a
    /// failure, so a new failure wording can never pass as delivered.
    public var succeeded: Bool { status.lowercased() == "success" }

    /// `{"type": …, "status": …, "address": "…0100"}` for the log.
    public var json: JSON {
        var fields: [(String, JSON)] = [("type", .string(type)), ("status", .string(status))]
        if let address, !address.isEmpty {
            fields.append(("address", .string("…" + String(address.suffix(4)))))
        }
        return .object(JSONObject(fields))
    }
}

/// The verdict and the notifications it is based on.
public struct Judgement: Sendable, Equatable {
    public var verdict: PageVerdict
    /// Every notification to the person, in log order.
    public var notifications: [NotificationOutcome]

    /// Distinct notification types, in log order.
    public var channels: [String] {
        var out: [String] = []
        for n in notifications where !out.contains(n.type) { out.append(n.type) }
        return out
    }

    /// The notifications that did not succeed.
    public var failed: [NotificationOutcome] { notifications.filter { !$0.succeeded } }
}

extension PageVerdict {
    /// Judges an incident from its status and log entries (pure).
    ///
    /// Field names (PagerDuty REST API v2, `include[]=channels`):
    /// `type == "notify_log_entry"`, `user.id`, `channel.notification.type`,
    /// `channel.notification.status`, `channel.notification.address` (some
    /// older entries carry `notification` beside `channel`); acknowledgements
    /// are `acknowledge_log_entry` with `agent.id`. Entries for other users
    /// (escalation to someone else) are ignored.
    ///
    /// - Parameters:
    ///   - resolvedByUs: pager-tester resolved it itself (`--resolve-after`),
    ///     so `resolved` does not mean the person reacted.
    public static func judge(status: String, logEntries: [JSON], personID: String,
                             resolvedByUs: Bool) -> Judgement {
        var logged: [(at: String, outcome: NotificationOutcome)] = []
        var acknowledgedInLog = false
        for entry in logEntries {
            switch entry["type"]?.stringValue {
            case "notify_log_entry":
                guard entry[path: "user", "id"]?.stringValue == personID else { continue }
                let n = entry[path: "channel", "notification"] ?? entry["notification"]
                let type = n?["type"]?.stringValue ?? entry[path: "channel", "type"]?.stringValue ?? "unknown"
                // No status at all is not evidence of delivery.
                let status = n?["status"]?.stringValue ?? "unknown"
                logged.append((entry["created_at"]?.stringValue ?? "",
                                      NotificationOutcome(type: type, status: status, address: n?["address"]?.stringValue)))
            case "acknowledge_log_entry":
                if entry[path: "agent", "id"]?.stringValue == personID { acknowledgedInLog = true }
            default:
                continue
            }
        }
        // PagerDuty lists newest first: report in time order (RFC 3339 UTC
        // strings sort like times; the sort is stable for equal ones).
        let ordered = logged.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map { $0.element.outcome }
        if status == "acknowledged" || (status == "resolved" && !resolvedByUs) || acknowledgedInLog {
            return Judgement(verdict: .acknowledged, notifications: ordered)
        }
        if ordered.isEmpty { return Judgement(verdict: .noNotification, notifications: []) }
        let notifications = ordered
        let verdict: PageVerdict = notifications.contains(where: \.succeeded) ? .delivered : .notificationFailed
        return Judgement(verdict: verdict, notifications: notifications)
    }
}
