/// A Kubernetes resource type: API group, version, plural name, scope.
public struct KubeResource: Sendable, Hashable {
    /// "" for the core group (`/api/v1`).
    public var group: String
    public var version: String
    public var plural: String
    public var namespaced: Bool

    public init(group: String, version: String, plural: String, namespaced: Bool) {
        self.group = group
        self.version = version
        self.plural = plural
        self.namespaced = namespaced
    }

    public static let configMaps = KubeResource(group: "", version: "v1", plural: "configmaps", namespaced: true)
    public static let leases = KubeResource(group: "coordination.k8s.io", version: "v1", plural: "leases", namespaced: true)
    public static let pods = KubeResource(group: "", version: "v1", plural: "pods", namespaced: true)
    public static let nodes = KubeResource(group: "", version: "v1", plural: "nodes", namespaced: false)
    public static let podDisruptionBudgets = KubeResource(group: "policy", version: "v1", plural: "poddisruptionbudgets", namespaced: true)
    public static let namespaces = KubeResource(group: "", version: "v1", plural: "namespaces", namespaced: false)
    public static let events = KubeResource(group: "", version: "v1", plural: "events", namespaced: true)

    /// `/api/v1` or `/apis/GROUP/VERSION`.
    public var apiPrefix: String { group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)" }

    /// The URL path of a collection (`name` nil) or an object, e.g.
    /// `/api/v1/namespaces/x/configmaps/y`,
    /// `/apis/coordination.k8s.io/v1/namespaces/x/leases/y`,
    /// `/api/v1/namespaces/x/pods/y/eviction`. `namespace` is ignored for
    /// cluster-scoped resources; nil for a namespaced one means all namespaces.
    public func path(namespace: String?, name: String?, subresource: String? = nil) -> String {
        var p = apiPrefix
        if namespaced, let namespace { p += "/namespaces/" + pathSegment(namespace) }
        p += "/" + plural
        if let name {
            p += "/" + pathSegment(name)
            if let subresource { p += "/" + subresource }
        }
        return p
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
func percentEncode(_ s: String, keep: Set<UInt8> = []) -> String {
    let hex = Array("0123456789ABCDEF".utf8)
    var out: [UInt8] = []
    for b in s.utf8 {
        switch b {
        case 65...90, 97...122, 48...57, 45, 46, 95, 126: out.append(b)
        default:
            if keep.contains(b) { out.append(b) } else { out += [37, hex[Int(b >> 4)], hex[Int(b & 15)]] }
        }
    }
    return String(decoding: out, as: UTF8.self)
}

/// A path segment: object names are DNS-like, but never let one add a `/`.
func pathSegment(_ s: String) -> String { percentEncode(s, keep: [58, 64]) }  // ':' '@' are allowed in segments

/// `?a=1&b=2` from pairs (values percent-encoded), "" when empty.
func queryString(_ pairs: [(String, String)]) -> String {
    if pairs.isEmpty { return "" }
    return "?" + pairs.map { "\($0.0)=\(percentEncode($0.1))" }.joined(separator: "&")
}
