/// Istio's protocol selection for one Service port, as the Rego policy in
/// `policies/istio-port-names/src.rego` implements it (keep them in step:
/// scripts/test compares both on `policies/testdata/services.json`).
///
/// Istio picks a port's protocol from `appProtocol` when it is set, else from
/// the port name `<protocol>[-<suffix>]`, ignoring case; a Kubernetes
/// `protocol: UDP` port is UDP whatever it is called
/// (https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/).
/// A port whose protocol Istio cannot tell is treated as opaque TCP, which
/// silently loses HTTP routing, retries and metrics: that is the violation.
public struct IstioPortRule: Sendable, Equatable {
    /// Istio's protocols. `mongo`, `mysql` and `redis` are experimental in
    /// Istio (plain TCP unless enabled) but accepted, as Istio accepts the names.
    public static let defaultProtocols = [
        "grpc", "grpc-web", "http", "http2", "http_proxy", "https",
        "mongo", "mysql", "redis", "tcp", "tls", "udp",
    ]

    /// `appProtocol` values Kubernetes defines and Istio understands.
    public static let kubernetesAppProtocols: Set<String> = ["kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss"]

    /// Lowercased, unique, sorted: the order the message's regex shows.
    public let protocols: [String]

    /// - Parameter protocols: replaces the default list when not empty (the
    ///   Constraint's `parameters.protocols`). Each must be letters, digits,
    ///   `_` or `-`, so the regex the Rego builds from them means the same as
    ///   the prefix test here.
    public init(protocols: [String] = []) throws(PolicyCheckError) {
        for p in protocols where p.isEmpty || !p.utf8.allSatisfy(IstioPortRule.isProtocolByte) {
            throw PolicyCheckError(.usage, "protocol '\(p)' is not a protocol name: use letters, digits, '_' and '-' only (e.g. --protocols http,grpc,tcp).")
        }
        let chosen = protocols.isEmpty ? IstioPortRule.defaultProtocols : protocols
        self.protocols = Array(Set(chosen.map { $0.lowercased() })).sorted()
    }

    static func isProtocolByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"): true
        default: false
        }
    }

    /// The regex the messages show, exactly as the Rego policy builds it.
    public var pattern: String { "^(" + protocols.joined(separator: "|") + ")($|-)" }

    /// Which field selected the protocol.
    public enum Field: String, Sendable, Equatable {
        case name
        case appProtocol
    }

    /// Whether Istio recognises `value` read from `field`: `value` is a
    /// protocol or starts with one followed by `-`, ignoring case.
    public func isRoutable(_ value: String, field: Field) -> Bool {
        let lower = value.lowercased()
        if field == .appProtocol, IstioPortRule.kubernetesAppProtocols.contains(lower) { return true }
        return protocols.contains { lower == $0 || lower.hasPrefix($0 + "-") }
    }

    /// The field that is wrong, or nil when Istio can route the port.
    public func offendingField(of port: ServicePort) -> Field? {
        if let p = port.protocolName, p.uppercased() == "UDP" { return nil }
        if let app = port.appProtocol, !app.isEmpty {
            return isRoutable(app, field: .appProtocol) ? nil : .appProtocol
        }
        return isRoutable(port.name ?? "", field: .name) ? nil : .name
    }

    /// The message, word for word what the Rego policy says.
    public func message(kind: String, namespace: String, name: String, portID: String, field: Field) -> String {
        "\(kind) \(namespace) \(name): port \(portID) \(field.rawValue) must match \(pattern) to be routable by Istio"
    }
}

/// The fields of a Service port the rule reads.
public struct ServicePort: Sendable, Equatable {
    public var name: String?
    /// The port number as JSON wrote it (`8080`).
    public var number: String?
    /// Kubernetes `protocol`: `TCP` (default), `UDP` or `SCTP`.
    public var protocolName: String?
    public var appProtocol: String?

    public init(name: String? = nil, number: String? = nil, protocolName: String? = nil, appProtocol: String? = nil) {
        self.name = name
        self.number = number
        self.protocolName = protocolName
        self.appProtocol = appProtocol
    }

    /// How messages name the port: its name, else its number, else its place
    /// in `spec.ports` (`ports[0]`), so every offending port can be found.
    public func id(index: Int) -> String {
        if let name, !name.isEmpty { return name }
        if let number { return number }
        return "ports[\(index)]"
    }
}
