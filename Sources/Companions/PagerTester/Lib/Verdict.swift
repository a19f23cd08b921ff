import KLCore

/// What verification concluded about one test page.
public enum PageVerdict: String, Sendable, Equatable {
    /// The person acknowledged (or resolved) the test incident.
    case acknowledged
    /// PagerDuty logged a notification to the person (not proof that the
    /// phone received it).
    case paged
    /// No notification to the person was logged.
    case noNotification = "no-notification"

    /// Judges an incident from its status and log entries (pure).
    ///
    /// - Parameters:
    ///   - resolvedByUs: pager-tester resolved it itself (`--resolve-after`),
    ///     so `resolved` does not mean the person reacted.
    /// - Returns: the verdict and the notification channels seen
    ///   (`sms_notification`, `phone_notification`, …).
    public static func judge(status: String, logEntries: [JSON], personID: String,
                             resolvedByUs: Bool) -> (verdict: PageVerdict, channels: [String]) {
        var channels: [String] = []
        var acknowledgedInLog = false
        for entry in logEntries {
            switch entry["type"]?.stringValue {
            case "notify_log_entry":
                guard entry[path: "user", "id"]?.stringValue == personID else { continue }
                let channel = entry[path: "channel", "notification", "type"]?.stringValue
                    ?? entry[path: "channel", "type"]?.stringValue ?? "unknown"
                if !channels.contains(channel) { channels.append(channel) }
            case "acknowledge_log_entry":
                if entry[path: "agent", "id"]?.stringValue == personID { acknowledgedInLog = true }
            default:
                continue
            }
        }
        if status == "acknowledged" || (status == "resolved" && !resolvedByUs) || acknowledgedInLog {
            return (.acknowledged, channels)
        }
        return (channels.isEmpty ? .noNotification : .paged, channels)
    }
}
