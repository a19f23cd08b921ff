import KLCore
import Testing

@Suite("in-cluster configuration")
struct InClusterTests {
    @Test(arguments: [
        (["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "6443"], "https://10.0.0.1:6443"),
        (["KUBERNETES_SERVICE_HOST": "10.0.0.1"], "https://10.0.0.1:443"),
        (["KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": ""], "https://10.0.0.1:443"),
        (["KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"], "https://[fd00::1]:443"),
        (["KUBERNETES_SERVICE_HOST": "[fd00::1]", "KUBERNETES_SERVICE_PORT": "443"], "https://[fd00::1]:443"),
        (["KUBERNETES_SERVICE_HOST": "kubernetes.default.svc"], "https://kubernetes.default.svc:443"),
    ] as [([String: String], String)])
    func apiServer_fromTheServiceEnvironment(environment: [String: String], expected: String) {
        #expect(InCluster.apiServer(environment: environment) == expected)
    }

    @Test func apiServer_outsideACluster_isNil() {
        #expect(InCluster.apiServer(environment: [:]) == nil)
        #expect(InCluster.apiServer(environment: ["KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": "443"]) == nil)
    }

    @Test func serviceAccountFiles_areThePodsProjectedVolume() {
        #expect(InCluster.tokenFile == "/var/run/secrets/kubernetes.io/serviceaccount/token")
        #expect(InCluster.caFile == "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt")
        #expect(InCluster.namespaceFile == "/var/run/secrets/kubernetes.io/serviceaccount/namespace")
    }
}

@Suite("log levels and formats")
struct LoggingValueTests {
    @Test func levels_parseAnyCase_inSwiftLogOrder() {
        #expect(LogLevel.names == ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        #expect(LogLevel(name: "Debug") == .debug)
        #expect(LogLevel(name: "verbose") == nil)
        #expect(LogLevel.trace < LogLevel.critical)
    }

    @Test func formats_parseAnyCase() {
        #expect(LogFormat(name: "TEXT") == .text)
        #expect(LogFormat(name: "json") == .json)
        #expect(LogFormat(name: "yaml") == nil)
    }
}
