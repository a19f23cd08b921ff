/// Where an API path points: `/api/v1/namespaces/NS/configmaps/NAME/status`.
struct Route {
    var resource: ResourceType
    var namespace: String?
    var name: String?
    var subresource: String?

    init?(path: String) {
        let seg = path.split(separator: "/").map(String.init)
        let prefix: String
        var rest: ArraySlice<String>
        if seg.count >= 3, seg[0] == "api" { prefix = "/api/\(seg[1])"; rest = seg[2...] }
        else if seg.count >= 4, seg[0] == "apis" { prefix = "/apis/\(seg[1])/\(seg[2])"; rest = seg[3...] }
        else { return nil }
        var namespace: String?
        if rest.first == "namespaces", rest.count >= 3 {
            namespace = rest[rest.startIndex + 1]
            rest = rest.dropFirst(2)
        }
        guard let plural = rest.first, let resource = ResourceType.find(prefix: prefix, plural: plural) else { return nil }
        rest = rest.dropFirst()
        guard rest.count <= 2 else { return nil }
        if namespace != nil && !resource.namespaced { return nil }
        if namespace == nil && resource.namespaced && !rest.isEmpty { return nil }
        self.resource = resource
        self.namespace = namespace
        self.name = rest.first
        self.subresource = rest.count == 2 ? rest.last : nil
        if let subresource, !resource.subresources.contains(subresource) { return nil }
    }

    /// The RBAC resource name, e.g. "pods/eviction".
    var rbacResource: String { subresource.map { "\(resource.plural)/\($0)" } ?? resource.plural }
}
