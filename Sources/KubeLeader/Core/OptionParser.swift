/// One option of a binary: a `--flag` with a matching env var and a default
/// that `--help` shows. Precedence: flag, then env, then default.
public struct OptionSpec: Sendable {
    /// Without dashes: `lease-duration` is `--lease-duration`.
    public var name: String
    /// The env var that sets it too, e.g. `KUBE_LEADER_LEASE_DURATION`.
    public var env: String?
    /// Placeholder in help, e.g. `DURATION`; nil for a boolean switch.
    public var valueName: String?
    public var help: String
    /// The default as help shows it (the parser does not apply it).
    public var defaultText: String?

    public init(_ name: String, env: String? = nil, value: String? = "VALUE", default defaultText: String? = nil, help: String) {
        self.name = name
        self.env = env
        self.valueName = value
        self.help = help
        self.defaultText = defaultText
    }

    public var takesValue: Bool { valueName != nil }

    /// Options from a table, two lines each: `name;ENV;VALUE;default`, then
    /// the help. An empty ENV or default is none, an empty VALUE a switch.
    /// Data instead of one call per option: a smaller binary.
    public static func table(_ text: String) -> [OptionSpec] {
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        return stride(from: 0, to: lines.count - 1, by: 2).map { i in
            let f = lines[i].split(separator: ";", omittingEmptySubsequences: false).map { $0.isEmpty ? nil : String($0) }
            let field = { (n: Int) in n < f.count ? f[n] : nil }
            return OptionSpec(field(0) ?? "", env: field(1), value: field(2), default: field(3), help: String(lines[i + 1]))
        }
    }
}

/// A bad command line: the message names the argument and what to do.
public struct UsageError: Error, Sendable, Equatable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Where an option's value came from, so errors can name it.
public enum OptionSource: Sendable, Equatable {
    case flag(String)
    case env(String)

    public var description: String {
        switch self {
        case .flag(let f): "--\(f)"
        case .env(let e): "env \(e)"
        }
    }
}

public struct ParsedOptions: Sendable {
    public var values: [String: String] = [:]
    public var sources: [String: OptionSource] = [:]
    /// Arguments that are not options, in order (everything after the first
    /// positional when the parser stops there).
    public var positionals: [String] = []
    public var help = false
    public var version = false

    public init() {}

    public subscript(name: String) -> String? { values[name] }

    /// A boolean switch: set by the flag, or by its env var as 1/true/yes.
    public func isSet(_ name: String) -> Bool {
        guard let v = values[name] else { return false }
        return ["", "1", "true", "yes", "on"].contains(v.lowercased())
    }

    /// "--lease-duration" or "env KUBE_LEADER_LEASE_DURATION", for messages.
    public func source(of name: String) -> String { sources[name]?.description ?? "--\(name)" }
}

/// Parses `--name value`, `--name=value`, boolean `--switch`, `-h/--help`,
/// `--version` and `--`, then fills unset options from the environment.
public struct OptionParser: Sendable {
    public enum Mode: Sendable {
        /// Options end at the first positional (kube-leader: the rest is the
        /// child's command line, as dumb-init's "+" optstring).
        case stopAtFirstPositional
        /// Options may follow positionals (subcommand tools).
        case interspersed
    }

    public var specs: [OptionSpec]
    public var mode: Mode

    public init(_ specs: [OptionSpec], mode: Mode = .interspersed) {
        self.specs = specs
        self.mode = mode
    }

    public func parse(arguments: [String], environment: [String: String]) throws(UsageError) -> ParsedOptions {
        var result = ParsedOptions()
        var i = 0
        while i < arguments.count {
            let arg = arguments[i]
            i += 1
            if arg == "--" {
                result.positionals += arguments[i...]
                break
            }
            if arg == "-h" || arg == "--help" { result.help = true; continue }
            if arg == "--version" { result.version = true; continue }
            if arg.hasPrefix("--") {
                var name = String(arg.dropFirst(2))
                var inline: String? = nil
                if let eq = name.firstIndex(of: "=") {
                    inline = String(name[name.index(after: eq)...])
                    name = String(name[..<eq])
                }
                guard let spec = specs.first(where: { $0.name == name }) else {
                    throw UsageError("unknown option '--\(name)'; run with --help to see the options")
                }
                if spec.takesValue {
                    if let inline {
                        result.values[name] = inline
                    } else {
                        guard i < arguments.count else {
                            throw UsageError("option '--\(name)' needs a value (\(spec.valueName ?? "VALUE"))")
                        }
                        result.values[name] = arguments[i]
                        i += 1
                    }
                } else {
                    if let inline, !["1", "true", "yes", "on", "0", "false", "no", "off"].contains(inline.lowercased()) {
                        throw UsageError("option '--\(name)' is a switch and takes no value (got '\(inline)')")
                    }
                    result.values[name] = inline ?? "true"
                }
                result.sources[name] = .flag(name)
                continue
            }
            if arg.hasPrefix("-"), arg.count > 1 {
                throw UsageError("unknown option '\(arg)'; run with --help to see the options")
            }
            result.positionals.append(arg)
            if mode == .stopAtFirstPositional {
                result.positionals += arguments[i...]
                break
            }
        }
        for spec in specs where result.values[spec.name] == nil {
            if let env = spec.env, let value = environment[env], !value.isEmpty {
                result.values[spec.name] = value
                result.sources[spec.name] = .env(env)
            }
        }
        return result
    }

    /// The options table for `--help`: flag, env var, default, help.
    public func helpText() -> String {
        var lines: [String] = []
        for spec in specs {
            var head = "  --\(spec.name)"
            if let v = spec.valueName { head += " \(v)" }
            lines.append(head)
            var detail = "      \(spec.help)"
            if let env = spec.env { detail += "\n      env: \(env)" }
            if let d = spec.defaultText { detail += (spec.env == nil ? "\n      " : "; ") + "default: \(d)" }
            lines.append(detail)
        }
        lines.append("  -h, --help\n      Show this help and exit.")
        lines.append("  --version\n      Print the version and exit.")
        return lines.joined(separator: "\n")
    }
}

/// The version every binary prints with `--version`.
public let kubeLeaderVersion = "0.1.0"
