import KLCore

/// One on-call person from the configuration file.
public struct Person: Sendable, Equatable {
    /// Unique in the file; used in logs and by `notify NAME`.
    public var name: String
    /// PagerDuty user id (e.g. `PABC123`): the incident's assignee.
    public var id: String
    /// When to page, in the person's own zone.
    public var cron: CronExpression
    /// Optional: the person's PagerDuty login email, checked against `From`.
    public var email: String?
    /// 1-based position in the file, for messages.
    public var entry: Int
    /// Optional `high` or `low`; nil: the global `--urgency` (default `high`).
    public var urgency: Urgency?

    public init(name: String, id: String, cron: CronExpression, email: String? = nil, entry: Int = 1, urgency: Urgency? = nil) {
        (self.name, self.id, self.cron, self.email, self.entry, self.urgency) = (name, id, cron, email, entry, urgency)
    }
}

/// The incident's `urgency` in `POST /incidents`. Without it the service's
/// support-hours rules decide, and outside support hours that is often
/// `low`: no phone call, no do-not-disturb break-through. pager-tester
/// therefore sends `high` unless told otherwise.
public enum Urgency: String, Sendable, Equatable {
    case high
    case low
}

/// Reads the people file: the original service's YAML shape or the same as
/// JSON (`[{"name": …, "id": …, "cron": …}]`). Every error names the entry
/// and the field.
public enum PeopleFile {
    static let knownFields = ["name", "id", "cron", "email", "urgency"]

    public static func parse(_ text: String, path: String, zones: TimeZoneDatabase) throws(PagerError) -> [Person] {
        let entries: [YAMLSubset.Entry]
        let trimmed = text.drop(while: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" })
        if path.hasSuffix(".json") || trimmed.hasPrefix("[") || trimmed.hasPrefix("{") {
            entries = try jsonEntries(text, path: path)
        } else {
            do throws(YAMLSubset.SyntaxError) {
                entries = try YAMLSubset.parse(text)
            } catch {
                throw PagerError(.invalidConfig, "\(path) line \(error.line): \(error.reason)")
            }
        }
        guard !entries.isEmpty else {
            throw PagerError(.invalidConfig, "\(path) lists nobody: add entries with name, id and cron")
        }
        var people: [Person] = []
        for (index, entry) in entries.enumerated() {
            people.append(try person(entry, number: index + 1, path: path, zones: zones))
        }
        for (i, p) in people.enumerated() {
            if let j = people[..<i].firstIndex(where: { $0.name == p.name }) {
                throw PagerError(.invalidConfig, "\(path): entry \(i + 1) field 'name': '\(p.name)' is already the name of entry \(j + 1); names must be unique")
            }
        }
        return people
    }

    static func person(_ entry: YAMLSubset.Entry, number: Int, path: String, zones: TimeZoneDatabase) throws(PagerError) -> Person {
        let nameValue = entry.fields.first(where: { $0.key == "name" })?.value
        var details: [String] = []
        if entry.line > 0 { details.append("line \(entry.line)") }
        if let nameValue { details.append("name '\(nameValue)'") }
        let label = "\(path): entry \(number)" + (details.isEmpty ? "" : " (" + details.joined(separator: ", ") + ")")
        for field in entry.fields where !knownFields.contains(field.key) {
            throw PagerError(.invalidConfig, "\(label) field '\(field.key)': unknown field; allowed are name, id, cron, email and urgency")
        }
        func required(_ key: String) throws(PagerError) -> String {
            guard let v = entry.fields.first(where: { $0.key == key })?.value else {
                throw PagerError(.invalidConfig, "\(label) field '\(key)': missing; every entry needs name, id and cron")
            }
            guard !v.allSatisfy({ $0 == " " }) else {
                throw PagerError(.invalidConfig, "\(label) field '\(key)': empty")
            }
            return v
        }
        let name = try required("name")
        let id = try required("id")
        guard id.allSatisfy({ $0.isLetter || $0.isNumber }) else {
            throw PagerError(.invalidConfig, "\(label) field 'id': '\(id)' is not a PagerDuty user id (letters and digits, e.g. PABC123)")
        }
        let cronText = try required("cron")
        let cron: CronExpression
        do throws(PagerError) {
            cron = try CronExpression.parse(cronText, zones: zones)
        } catch {
            throw PagerError(error.code, "\(label) field 'cron': \(error.message)")
        }
        if cron.next(after: WallTime(seconds: 0)) == nil && cron.next(after: WallTime(seconds: 2_000_000_000)) == nil {
            throw PagerError(.invalidConfig, "\(label) field 'cron': '\(cronText)' never fires; check the day and month fields")
        }
        let email = entry.fields.first(where: { $0.key == "email" })?.value
        var urgency: Urgency? = nil
        if let text = entry.fields.first(where: { $0.key == "urgency" })?.value {
            guard let u = Urgency(rawValue: text) else {
                throw PagerError(.invalidConfig, "\(label) field 'urgency': '\(text)' must be high or low")
            }
            urgency = u
        }
        return Person(name: name, id: id, cron: cron, email: email, entry: number, urgency: urgency)
    }

    static func jsonEntries(_ text: String, path: String) throws(PagerError) -> [YAMLSubset.Entry] {
        let json: JSON
        do throws(JSONParseError) {
            json = try JSON.parse(text)
        } catch {
            throw PagerError(.invalidConfig, "\(path): \(error.description)")
        }
        guard let array = json.arrayValue else {
            throw PagerError(.invalidConfig, "\(path): expected a JSON array of people ([{\"name\": …, \"id\": …, \"cron\": …}])")
        }
        var entries: [YAMLSubset.Entry] = []
        for (index, item) in array.enumerated() {
            guard let object = item.objectValue else {
                throw PagerError(.invalidConfig, "\(path): entry \(index + 1) is not an object with name, id and cron")
            }
            var fields: [YAMLSubset.Field] = []
            for (key, value) in object {
                let text: String
                switch value {
                case .string(let s): text = s
                case .number(let n): text = n
                default:
                    throw PagerError(.invalidConfig, "\(path): entry \(index + 1) field '\(key)': must be a string")
                }
                fields.append(YAMLSubset.Field(key: key, value: text, line: 0))
            }
            entries.append(YAMLSubset.Entry(line: 0, fields: fields))
        }
        return entries
    }
}
