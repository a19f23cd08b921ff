#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Where the Kubernetes API server is and how to authenticate to it.
public struct KubeConfig: Sendable {
    /// `https://10.0.0.1:443`, or `http://127.0.0.1:8001` for `kubectl proxy`.
    public var server: String
    /// PEM CA bundle for `https://`. nil: the system CAs.
    public var caFile: String?
    /// Bearer token file, re-read at most every ~10 s and right after a 401,
    /// so rotated projected service-account tokens keep working. Never logged.
    public var tokenFile: String?
    /// An explicit bearer token (tests; used when `tokenFile` is nil).
    public var token: String?
    /// The namespace of this pod (in-cluster), if known.
    public var namespace: String?
    /// `User-Agent` header. Default `kube-leader`.
    public var userAgent: String

    public init(server: String, caFile: String? = nil, tokenFile: String? = nil, token: String? = nil,
                namespace: String? = nil, userAgent: String = "kube-leader") {
        self.server = server
        self.caFile = caFile
        self.tokenFile = tokenFile
        self.token = token
        self.namespace = namespace
        self.userAgent = userAgent
    }

    /// The service-account folder every pod gets.
    public static let serviceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// In-cluster configuration: `KUBERNETES_SERVICE_HOST`/`_PORT` (an IPv6
    /// host is put in brackets), token and CA under `serviceAccountDir`, the
    /// namespace read from its `namespace` file. nil when
    /// `KUBERNETES_SERVICE_HOST` is unset or empty (not in a cluster).
    public static func inCluster(environment: [String: String],
                                 readFile: (String) -> String? = readSmallTextFile) -> KubeConfig? {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else { return nil }
        let port = environment["KUBERNETES_SERVICE_PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "443"
        let hostText = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let namespace = readFile(serviceAccountDir + "/namespace").map { trimOWS(Substring($0.filter { $0 != "\n" && $0 != "\r" })) }
        return KubeConfig(server: "https://\(hostText):\(port)",
                          caFile: serviceAccountDir + "/ca.crt",
                          tokenFile: serviceAccountDir + "/token",
                          namespace: namespace?.isEmpty == false ? namespace : nil)
    }
}

/// Reads a small text file (at most 1 MiB); nil when it cannot be read.
public func readSmallTextFile(_ path: String) -> String? {
    guard case .success(let text) = readFileResult(path) else { return nil }
    return text
}

/// Reads a small text file, or the errno text of why it cannot be read.
func readFileResult(_ path: String) -> Result<String, FileReadError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    if fd < 0 { return .failure(FileReadError(text: errnoText(errno))) }
    defer { close(fd) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 8192)
    while out.count < 1 << 20 {
        let n = read(fd, &buf, buf.count)
        if n < 0 {
            if errno == EINTR { continue }
            return .failure(FileReadError(text: errnoText(errno)))
        }
        if n == 0 { break }
        out.append(contentsOf: buf[0..<n])
    }
    return .success(String(decoding: out, as: UTF8.self))
}

struct FileReadError: Error, Sendable { var text: String }
