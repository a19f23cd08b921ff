import KLCore
import Synchronization

/// Where SigV4 credentials come from. `credentials(now:)` may do I/O (STS,
/// IMDS) and caches; it refreshes temporary credentials before they expire.
public protocol CredentialsProvider: Sendable {
    func credentials(now: WallTime) throws(NodeLifecycleError) -> AWSCredentials
}

/// Fixed credentials (env vars, tests).
public struct StaticCredentials: CredentialsProvider {
    public var value: AWSCredentials
    public init(_ value: AWSCredentials) { self.value = value }
    public func credentials(now: WallTime) throws(NodeLifecycleError) -> AWSCredentials { value }
}

/// When to fetch temporary credentials again: the SDKs refresh some minutes
/// before `Expiration`, so a request never goes out with a key that dies
/// in flight.
public enum CredentialRefresh {
    /// Refresh this long before expiry (default 5 minutes, as botocore's
    /// mandatory refresh; the advisory window is 15).
    public static let window: Duration = .seconds(300)

    /// True when `current` is missing or expires within `window` of `now`.
    public static func isDue(_ current: AWSCredentials?, now: WallTime, window: Duration = CredentialRefresh.window) -> Bool {
        guard let current else { return true }
        guard let expiration = current.expiration else { return false }
        return now.adding(window) >= expiration
    }
}

/// Caches what `fetch` returns and calls it again when `CredentialRefresh`
/// says so. If a refresh fails while the cached credentials are still valid,
/// the cached ones are used (and the next call tries again).
public final class RefreshingCredentials: CredentialsProvider {
    public let source: String
    private let fetch: @Sendable (WallTime) throws(NodeLifecycleError) -> AWSCredentials
    private let cache = Mutex<AWSCredentials?>(nil)
    private let fetches = Atomic<Int>(0)

    public init(source: String, fetch: @escaping @Sendable (WallTime) throws(NodeLifecycleError) -> AWSCredentials) {
        self.source = source
        self.fetch = fetch
    }

    /// How many times the source was asked (for tests and logs).
    public var fetchCount: Int { fetches.load(ordering: .relaxed) }

    public func credentials(now: WallTime) throws(NodeLifecycleError) -> AWSCredentials {
        let current = cache.withLock { $0 }
        if !CredentialRefresh.isDue(current, now: now) { return current! }
        fetches.add(1, ordering: .relaxed)
        do {
            let fresh = try fetch(now)
            cache.withLock { $0 = fresh }
            return fresh
        } catch {
            if let current, let exp = current.expiration, now < exp { return current }
            throw error
        }
    }
}
