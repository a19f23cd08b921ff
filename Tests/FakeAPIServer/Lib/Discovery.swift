import KLCore

/// The discovery documents kubectl reads before it touches a resource
/// (legacy, non-aggregated form: kubectl falls back to it when the answer's
/// Content-Type is plain `application/json`), `/version`, and just enough
/// OpenAPI v3 for kubectl's `--validate=strict` to choose server-side
/// field validation.
enum Discovery {
    static let verbs: JSON = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]

    static func document(path: String, port: Int, hidden: Set<ResourceType> = []) -> JSON? {
        let served = ResourceType.all.filter { !hidden.contains($0) }
        var groups: [(group: String, version: String)] = []
        for r in served where !r.group.isEmpty && !groups.contains(where: { $0.group == r.group && $0.version == r.version }) {
            groups.append((r.group, r.version))
        }
        var groupNames: [String] = []
        for (g, _) in groups where !groupNames.contains(g) { groupNames.append(g) }
        func group(_ name: String) -> JSON {
            let gvs: [JSON] = groups.filter { $0.group == name }.map { ["groupVersion": .string("\(name)/\($0.version)"), "version": .string($0.version)] }
            return ["name": .string(name), "versions": .array(gvs), "preferredVersion": gvs.first ?? .null]
        }
        switch path {
        case "/api", "/api/":
            return ["kind": "APIVersions", "versions": ["v1"],
                    "serverAddressByClientCIDRs": [["clientCIDR": "0.0.0.0/0", "serverAddress": .string("127.0.0.1:\(port)")]]]
        case "/apis", "/apis/":
            return ["kind": "APIGroupList", "apiVersion": "v1", "groups": .array(groupNames.map { group($0) })]
        case "/version", "/version/":
            return ["major": "1", "minor": "32", "gitVersion": "v1.32.0-fake", "gitCommit": "0000000000000000000000000000000000000000",
                    "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
                    "platform": "linux/amd64"]
        case "/openapi/v3", "/openapi/v3/":
            var paths = JSONObject()
            paths["api/v1"] = ["serverRelativeURL": "/openapi/v3/api/v1?hash=FAKE1"]
            for (g, v) in groups { paths["apis/\(g)/\(v)"] = ["serverRelativeURL": .string("/openapi/v3/apis/\(g)/\(v)?hash=FAKE1")] }
            return ["paths": .object(paths)]
        default:
            break
        }
        if path.hasPrefix("/openapi/v3/") {
            let gv = String(path.dropFirst("/openapi/v3/".count))
            let prefix = "/" + gv
            guard prefix == "/api/v1" || groups.contains(where: { "/apis/\($0.group)/\($0.version)" == prefix }) else { return nil }
            return openAPI(prefix: prefix, served)
        }
        if path == "/api/v1" { return resourceList(prefix: "/api/v1", groupVersion: "v1", served) }
        for (g, v) in groups {
            if path == "/apis/\(g)/\(v)" { return resourceList(prefix: path, groupVersion: "\(g)/\(v)", served) }
            if path == "/apis/\(g)" { var doc = group(g); doc["apiVersion"] = "v1"; doc["kind"] = "APIGroup"; return doc }
        }
        return nil
    }

    private static func resourceList(prefix: String, groupVersion: String, _ served: [ResourceType]) -> JSON {
        var resources: [JSON] = []
        for r in served where r.prefix == prefix {
            var entry: JSON = ["name": .string(r.plural), "singularName": .string(r.singular), "namespaced": .bool(r.namespaced),
                               "kind": .string(r.kind), "verbs": verbs]
            if !r.shortNames.isEmpty { entry["shortNames"] = .array(r.shortNames.map { JSON.string($0) }) }
            if !r.categories.isEmpty { entry["categories"] = .array(r.categories.map { JSON.string($0) }) }
            resources.append(entry)
            for sub in r.subresources {
                if sub == "eviction" {
                    resources.append(["name": .string("\(r.plural)/eviction"), "singularName": .string(r.singular), "namespaced": true,
                                      "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"]])
                } else {
                    resources.append(["name": .string("\(r.plural)/\(sub)"), "singularName": .string(r.singular),
                                      "namespaced": .bool(r.namespaced), "kind": .string(r.kind), "verbs": ["get", "patch", "update"]])
                }
            }
        }
        return ["kind": "APIResourceList", "apiVersion": "v1", "groupVersion": .string(groupVersion), "resources": .array(resources)]
    }

    /// Paths with a PATCH operation tagged with the GVK and a
    /// `fieldValidation` query parameter: what kubectl's query-param
    /// verifier looks for.
    private static func openAPI(prefix: String, _ served: [ResourceType]) -> JSON {
        var paths = JSONObject()
        for r in served where r.prefix == prefix {
            let path = r.namespaced ? "\(prefix)/namespaces/{namespace}/\(r.plural)/{name}" : "\(prefix)/\(r.plural)/{name}"
            let op: JSON = [
                "x-kubernetes-group-version-kind": ["group": .string(r.group), "version": .string(r.version), "kind": .string(r.kind)],
                "parameters": [["name": "fieldValidation", "in": "query", "schema": ["type": "string"]],
                               ["name": "fieldManager", "in": "query", "schema": ["type": "string"]]],
                "responses": ["200": ["description": "OK"]],
            ]
            paths[path] = ["patch": op, "put": op, "get": op]
        }
        return ["openapi": "3.0.0", "info": ["title": "Kubernetes", "version": "v1.32.0-fake"], "paths": .object(paths),
                "components": ["schemas": .object(JSONObject())]]
    }
}
