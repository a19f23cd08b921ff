import KLSystem
import KLCore

/// Routing an API request to the store.
extension Server {
    func dispatch(_ request: HTTPRequest, route: Route?, verb: String) -> APIResult {
        guard let route else {
            if request.method == "GET", let doc = Discovery.document(path: request.path, port: port, hidden: hidden) {
                return APIResult(200, doc)
            }
            return .error(Status.pathNotFound())
        }
        let r = route.resource
        let body: () -> JSON? = { try? JSON.parse(bytes: request.body) }
        switch (verb, route.subresource) {
        case ("get", nil), ("get", "status"):
            guard let o = store.get(r, route.namespace, route.name!) else { return .error(Status.notFound(r, route.name!)) }
            return APIResult(200, o)
        case ("list", nil):
            let filter: ObjectFilter
            do { filter = try makeFilter(request, route) } catch { return .error(Status.badRequest(error.message)) }
            let (items, rv) = store.list(r, filter)
            if EventTable.wanted(request, r) { return APIResult(200, EventTable.table(items, rv: rv)) }
            let stripped = items.map { item -> JSON in var i = item; i["kind"] = nil; i["apiVersion"] = nil; return i }
            return APIResult(200, ["kind": .string(r.kind + "List"), "apiVersion": .string(r.apiVersion),
                                   "metadata": ["resourceVersion": .string(String(rv))], "items": .array(stripped)])
        case ("create", nil):
            guard let o = body() else { return .error(decodeError(r)) }
            if route.resource.namespaced && route.namespace == nil { return .error(Status.methodNotAllowed()) }
            if let ns = route.namespace, route.resource.namespaced, control.withLock({ $0.faults.requireNamespaces }),
               store.get(.namespaces, nil, ns) == nil {
                return .error(Status.notFound(.namespaces, ns))
            }
            return store.create(r, namespace: route.namespace, o)
        case ("create", "eviction"):
            if let o = body(), let n = o[path: "metadata", "name"]?.stringValue, n != route.name! {
                return .error(Status.badRequest("name in URL does not match name in Eviction object"))
            }
            return store.evict(namespace: route.namespace ?? "", name: route.name!)
        case ("update", nil), ("update", "status"):
            guard let o = body() else { return .error(decodeError(r)) }
            if control.withLock({ $0.faults.noopUpdates }) {
                guard let current = store.get(r, route.namespace, route.name!) else { return .error(Status.notFound(r, route.name!)) }
                return APIResult(200, current)
            }
            return store.update(r, namespace: route.namespace, name: route.name!, subresource: route.subresource, o)
        case ("patch", nil), ("patch", "status"):
            return store.patch(r, namespace: route.namespace, name: route.name!, subresource: route.subresource,
                               contentType: request.headers["content-type"] ?? "", request.body)
        case ("delete", nil):
            return store.delete(r, namespace: route.namespace, name: route.name!, options: request.body.isEmpty ? nil : body())
        case ("deletecollection", nil):
            let filter: ObjectFilter
            do { filter = try makeFilter(request, route) } catch { return .error(Status.badRequest(error.message)) }
            for item in store.list(r, filter).items {
                _ = store.delete(r, namespace: item[path: "metadata", "namespace"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 },
                                 name: item[path: "metadata", "name"]?.stringValue ?? "", options: nil)
            }
            return APIResult(200, Status.success())
        default:
            return .error(Status.methodNotAllowed())
        }
    }

    func decodeError(_ r: ResourceType) -> JSON {
        Status.badRequest("\(r.kind) in version \"\(r.version)\" cannot be handled as a \(r.kind): the body is not a JSON object")
    }

    func makeFilter(_ request: HTTPRequest, _ route: Route) throws(SelectorError) -> ObjectFilter {
        var filter = ObjectFilter(namespace: route.namespace)
        if let text = request.query["labelSelector"], !text.isEmpty { filter.labels = try LabelSelector(text) }
        if let text = request.query["fieldSelector"], !text.isEmpty { filter.fields = try FieldSelector(text) }
        return filter
    }
}
