/// Refuses a `From` email that belongs to a person being tested: PagerDuty
/// then creates the incident already acknowledged and notifies nobody, so
/// the test would prove nothing.
public enum FromCheck {
    /// Compares `From` with the `email` fields of the configuration.
    public static func local(people: [Person], from: String) throws(PagerError) {
        for p in people where p.email?.lowercased() == from.lowercased() {
            throw refusal(p, from)
        }
    }

    /// Asks PagerDuty for each person's login email (`GET /users/{id}`).
    public static func remote(people: [Person], client: PagerDutyClient) throws(PagerError) {
        var seen: [String] = []
        for p in people where !seen.contains(p.id) {
            seen.append(p.id)
            if let email = try client.userEmail(p.id), email.lowercased() == client.settings.from.lowercased() {
                throw refusal(p, client.settings.from)
            }
        }
    }

    static func refusal(_ p: Person, _ from: String) -> PagerError {
        PagerError(.invalidConfig, "PAGERDUTY_FROM \(from) is the email of \(p.name) (\(p.id)), who is being tested: PagerDuty would create the incident already acknowledged and notify nobody; use the email of another PagerDuty user (e.g. a bot account)")
    }
}
