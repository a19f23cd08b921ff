/// `--coordinated`: Kubernetes' coordinated leader election (KEP-4355,
/// `coordination.k8s.io/v1beta1` LeaseCandidate, beta since 1.33 behind the
/// `CoordinatedLeaderElection` gate). Each replica keeps a LeaseCandidate
/// named after its identity; the cluster's election controller names the
/// holder of the Lease. See docs/coordinated.md.
public struct CoordinatedElection: Sendable, Equatable {
    /// `spec.binaryVersion`: the version of the program the replica runs.
    public var binaryVersion: String
    /// `spec.emulationVersion` (default: the binary version); never above it.
    public var emulationVersion: String
    /// `spec.strategy`: `OldestEmulationVersion` or a third party's `PREFIX/NAME`.
    public var strategy: String

    public static let defaultStrategy = "OldestEmulationVersion"
    /// client-go renews a LeaseCandidate this often even when nobody pings it.
    public static let renewInterval = Duration.seconds(300)

    public init(binaryVersion: String, emulationVersion: String, strategy: String = defaultStrategy) {
        self.binaryVersion = binaryVersion
        self.emulationVersion = emulationVersion
        self.strategy = strategy
    }

    /// Checks the values as the API server would (a bad one would be
    /// refused there with 422 on every start: say it once, up front).
    /// `source` names where each value came from, for the message.
    public static func validate(binary: String, emulation: String, strategy: String,
                                source: (String) -> String) throws(UsageError) -> CoordinatedElection {
        guard let b = SemanticVersion(binary) else {
            throw UsageError("\(source("binary-version")): '\(binary)' is not a semantic version MAJOR.MINOR.PATCH without a leading 'v' (for example 1.4.2): the LeaseCandidate API refuses anything else")
        }
        guard let e = SemanticVersion(emulation) else {
            throw UsageError("\(source("emulation-version")): '\(emulation)' is not a semantic version MAJOR.MINOR.PATCH without a leading 'v' (for example 1.4.0)")
        }
        if b < e {
            throw UsageError("\(source("emulation-version")) (\(emulation)) must not be above the binary version (\(binary))")
        }
        if strategy != defaultStrategy {
            let parts = strategy.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[1].isEmpty, LeaderConfig.isDNSSubdomain(String(parts[0])) else {
                throw UsageError("\(source("strategy")): unknown strategy '\(strategy)': use \(defaultStrategy) (the only built-in one) or a third-party strategy PREFIX/NAME such as example.com/my-strategy")
            }
        }
        return CoordinatedElection(binaryVersion: binary, emulationVersion: emulation, strategy: strategy)
    }
}

/// A semantic version (semver.org 2.0: MAJOR.MINOR.PATCH, optional
/// -PRERELEASE and +BUILD), as the LeaseCandidate API accepts them.
public struct SemanticVersion: Sendable, Comparable {
    public var major: Int, minor: Int, patch: Int
    public var prerelease: [String]

    public init?(_ text: String) {
        guard !text.isEmpty, text.utf8.count <= 256 else { return nil }
        var rest = Substring(text)
        if let plus = rest.firstIndex(of: "+") {
            let build = rest[rest.index(after: plus)...]
            guard Self.identifiers(build) != nil else { return nil }
            rest = rest[..<plus]
        }
        var pre: [String] = []
        if let dash = rest.firstIndex(of: "-") {
            guard let ids = Self.identifiers(rest[rest.index(after: dash)...]) else { return nil }
            for id in ids where id.allSatisfy(\.isASCIIDigit) && id.count > 1 && id.first == "0" { return nil }
            pre = ids
            rest = rest[..<dash]
        }
        let parts = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return nil }
        var numbers: [Int] = []
        for p in parts {
            // No leading zeros, and small enough that nothing can overflow.
            guard !p.isEmpty, p.count <= 9, p.allSatisfy(\.isASCIIDigit), p == "0" || p.first != "0", let n = Int(p) else { return nil }
            numbers.append(n)
        }
        major = numbers[0]; minor = numbers[1]; patch = numbers[2]
        prerelease = pre
    }

    private static func identifiers(_ s: Substring) -> [String]? {
        let ids = s.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard !ids.isEmpty else { return nil }
        for id in ids {
            guard !id.isEmpty, id.allSatisfy({ $0.isASCIIDigit || $0.isASCIILetter || $0 == "-" }) else { return nil }
        }
        return ids
    }

    public static func < (a: SemanticVersion, b: SemanticVersion) -> Bool {
        if (a.major, a.minor, a.patch) != (b.major, b.minor, b.patch) {
            return (a.major, a.minor, a.patch) < (b.major, b.minor, b.patch)
        }
        // A pre-release sorts before its release.
        if a.prerelease.isEmpty != b.prerelease.isEmpty { return !a.prerelease.isEmpty }
        for (x, y) in zip(a.prerelease, b.prerelease) where x != y {
            let xn = x.allSatisfy(\.isASCIIDigit), yn = y.allSatisfy(\.isASCIIDigit)
            if xn && yn { return x.count != y.count ? x.count < y.count : x < y }
            if xn != yn { return xn }
            return x < y
        }
        return a.prerelease.count < b.prerelease.count
    }

    public static func == (a: SemanticVersion, b: SemanticVersion) -> Bool { !(a < b) && !(b < a) }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
    var isASCIILetter: Bool { isASCII && isLetter }
}
