import KLCore
import KLKube
import KLSystem

/// `ClusterAPI` over KLKube's Kubernetes client.
public struct KubeCluster: ClusterAPI {
    public let client: KubeClient
    /// `reportingInstance` of Events (the pod's host name).
    public let instance: String

    public init(client: KubeClient, instance: String = "node-lifecycle") {
        self.client = client
        self.instance = instance
    }

    static func wrap(_ e: KubeError) -> NodeLifecycleError { NodeLifecycleError(.kube, e.description, httpStatus: e.httpStatus) }

    public func listNodes() throws(NodeLifecycleError) -> [JSON] {
        do { return try client.list(.nodes, namespace: nil)["items"]?.arrayValue ?? [] } catch { throw Self.wrap(error) }
    }

    public func getNode(_ name: String) throws(NodeLifecycleError) -> JSON? {
        do {
            return try client.get(.nodes, namespace: nil, name: name)
        } catch {
            if error.code == .notFound { return nil }
            throw Self.wrap(error)
        }
    }

    public func updateNode(_ node: JSON) throws(NodeLifecycleError) -> Bool {
        guard let name = node[path: "metadata", "name"]?.stringValue else {
            throw NodeLifecycleError(.kube, "A node object without metadata.name cannot be updated.")
        }
        do {
            _ = try client.update(.nodes, namespace: nil, name: name, body: node)
            return true
        } catch {
            if error.code == .conflict { return false }
            throw Self.wrap(error)
        }
    }

    public func podsOnNode(_ name: String, labelSelector: String?) throws(NodeLifecycleError) -> [JSON] {
        do {
            return try client.list(.pods, namespace: nil, labelSelector: labelSelector,
                                   fieldSelector: "spec.nodeName=\(name)")["items"]?.arrayValue ?? []
        } catch { throw Self.wrap(error) }
    }

    public func recordEvent(_ event: NodeEvent) throws(NodeLifecycleError) {
        do {
            _ = try client.create(.events, namespace: "default", body: event.object(time: RFC3339.format(wallNow()), instance: instance))
        } catch { throw Self.wrap(error) }
    }

    /// The PodDisruptionBudget named in a refused eviction's `Status`
    /// (`details.causes[].message` "The disruption budget NAME needs …", as
    /// the API server writes it).
    static func budgetName(_ status: JSON?) -> String? {
        for cause in status?[path: "details", "causes"]?.arrayValue ?? [] {
            guard let m = cause["message"]?.stringValue, m.hasPrefix("The disruption budget ") else { continue }
            let rest = m.dropFirst("The disruption budget ".count)
            let name = rest.prefix { $0 != " " }
            if !name.isEmpty { return String(name.prefix(253)) }
        }
        return nil
    }

    public func evict(namespace: String, name: String, gracePeriodSeconds: Int?) -> EvictionResult {
        var body: JSON = ["apiVersion": "policy/v1", "kind": "Eviction",
                          "metadata": ["name": .string(name), "namespace": .string(namespace)]]
        if let gracePeriodSeconds { body["deleteOptions"] = ["gracePeriodSeconds": JSON(gracePeriodSeconds)] }
        do {
            _ = try client.post(.pods, namespace: namespace, name: name, subresource: "eviction", body: body)
            return .accepted
        } catch {
            switch error.code {
            case .notFound: return .notFound
            case .tooManyRequests: return .blocked(retryAfter: error.retryAfter, budget: Self.budgetName(error.status))
            default: return .failed(error.description)
            }
        }
    }
}
