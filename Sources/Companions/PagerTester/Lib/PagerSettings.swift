/// Settings from the environment (as the original service): the PagerDuty
/// token, service, subdomain, the `From` email and the API URL.
public struct PagerSettings: Sendable {
    /// `PAGERDUTY_TOKEN`: REST API key. Never logged.
    public var token: String
    /// `SERVICE_ID`: the service the test incidents are created on.
    public var serviceID: String
    /// `SUBDOMAIN`: for incident URLs `https://SUBDOMAIN.pagerduty.com/incidents/ID`.
    public var subdomain: String
    /// `PAGERDUTY_FROM`: email of the PagerDuty user creating the incidents;
    /// must not be one of the people being tested.
    public var from: String
    /// `PAGERDUTY_API_URL`, default `https://api.pagerduty.com`.
    public var apiURL: String

    public init(token: String, serviceID: String, subdomain: String, from: String,
                apiURL: String = "https://api.pagerduty.com") {
        (self.token, self.serviceID, self.subdomain, self.from, self.apiURL) = (token, serviceID, subdomain, from, apiURL)
    }

    /// Reads the settings; `needToken` is false for `--dry-run`.
    public static func load(environment: [String: String], needToken: Bool) throws(PagerError) -> PagerSettings {
        var missing: [String] = []
        func get(_ name: String, required: Bool = true) -> String {
            let v = environment[name] ?? ""
            if v.isEmpty && required { missing.append(name) }
            return v
        }
        let s = PagerSettings(token: get("PAGERDUTY_TOKEN", required: needToken), serviceID: get("SERVICE_ID"),
                              subdomain: get("SUBDOMAIN"), from: get("PAGERDUTY_FROM"),
                              apiURL: get("PAGERDUTY_API_URL", required: false))
        guard missing.isEmpty else {
            throw PagerError(.invalidConfig, "missing environment variable\(missing.count > 1 ? "s" : "") \(missing.joined(separator: ", ")): set the PagerDuty token, service id, subdomain and the From email")
        }
        var settings = s
        if settings.apiURL.isEmpty { settings.apiURL = "https://api.pagerduty.com" }
        guard settings.apiURL.hasPrefix("https://") || settings.apiURL.hasPrefix("http://") else {
            throw PagerError(.invalidConfig, "PAGERDUTY_API_URL '\(settings.apiURL)' must start with https:// (or http:// for a local test server)")
        }
        guard settings.from.contains("@") else {
            throw PagerError(.invalidConfig, "PAGERDUTY_FROM '\(settings.from)' is not an email address; use the login email of the PagerDuty user creating the test incidents")
        }
        return settings
    }

    /// The web URL of an incident, as the original service logged it.
    public func incidentURL(_ id: String) -> String { "https://\(subdomain).pagerduty.com/incidents/\(id)" }
}
