/// Where a pod finds the Kubernetes API and its credentials: the one
/// implementation of "in-cluster configuration" (client-go's
/// `rest.InClusterConfig`) for kube-leader and the companions.
///
/// Pure: the environment is a parameter; reading the files is the caller's.
public enum InCluster {
    /// The service-account folder every pod gets.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"
    /// The projected bearer token (rotated by the kubelet: re-read it).
    public static let tokenFile = serviceAccountDirectory + "/token"
    /// The cluster's CA bundle (PEM).
    public static let caFile = serviceAccountDirectory + "/ca.crt"
    /// The pod's namespace.
    public static let namespaceFile = serviceAccountDirectory + "/namespace"

    /// `https://HOST:PORT` from `KUBERNETES_SERVICE_HOST` and
    /// `KUBERNETES_SERVICE_PORT` (default 443). An IPv6 host is put in
    /// brackets unless it already is. nil when `KUBERNETES_SERVICE_HOST` is
    /// unset or empty: not in a cluster.
    public static func apiServer(environment: [String: String]) -> String? {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else { return nil }
        let port = environment["KUBERNETES_SERVICE_PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "443"
        let hostText = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "https://\(hostText):\(port)"
    }
}
