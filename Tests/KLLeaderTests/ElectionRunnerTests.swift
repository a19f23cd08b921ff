import FakeAPIServerKit
import KLCore
import KLSystem
import KLTestSupport
import Synchronization
import Testing
@testable import KLLeader
import KLKube
import KLTransport

/// The thin driver over real sockets: `ElectionRunner` performs the
/// session's commands against kube-apiserver-fake (TLS, tokens, watch).
/// The decisions themselves are tested on the session (KLCoreTests).
@Suite("ElectionRunner against kube-apiserver-fake", .timeLimit(.minutes(1)))
struct ElectionRunnerTests {
    /// Asks for the release as soon as it leads (no real waiting).
    final class ReleasingHost: ElectionHost {
        var releaseRequested = false
        var events: [String] = []
        func pause(until: MonotonicClock.Instant) -> Bool {
            if releaseRequested { return true }
            while MonotonicClock.now < until { if releaseRequested { return true }; MonotonicClock().sleep(until: min(until, .now + .milliseconds(5))) }
            return releaseRequested
        }
        func becameLeader() { events.append("leader"); releaseRequested = true }
        func lostLeadership(reason: String) { events.append("lost: \(reason)") }
        func renewed(sentAt: MonotonicClock.Instant) { events.append("renewed") }
    }

    func start() throws -> (FakeAPIServer, KubeClient) {
        var options = FakeAPIServerOptions(dir: makeTemporaryDirectory(prefix: "kl-runner"))
        options.logger.level = .error
        let fake = try FakeAPIServer.start(options)
        let kube = try KubeClient(config: KubeConfig(server: fake.url, caFile: fake.caFile, tokenFile: fake.tokenFile), requestTimeout: .seconds(5))
        return (fake, kube)
    }

    @Test(arguments: [LockKind.configMap, .lease])
    func acquiresAFreeLock_thenReleasesIt(kind: LockKind) throws {
        let (fake, kube) = try start()
        defer { fake.stop() }
        let host = ReleasingHost()
        let store = KubeLockStore(client: kube, kind: kind, namespace: "default", name: "lock", logger: Logger(level: .critical))
        let runner = ElectionRunner(election: Election(identity: "me", timing: Election.Timing(
            leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))), store: store, host: host,
            logger: Logger(level: .critical), requestTimeout: .seconds(5))
        #expect(runner.run() == .released)
        #expect(host.events == ["renewed", "leader"])
        let resource: KubeResource = kind == .configMap ? .configMaps : .leases
        let object = try kube.get(resource, namespace: "default", name: "lock")
        #expect(LockCodec.decode(kind, object: object).record?.holderIdentity == "", "released: \(object)")
    }

    /// A token without RBAC at start-up: exit 2 (configuration error).
    @Test func forbiddenFromTheStart_isAConfigurationError() throws {
        let (fake, _) = try start()
        defer { fake.stop() }
        fake.registerToken("nobody", user: "system:serviceaccount:default:nobody", allow: [])
        let kube = try KubeClient(config: KubeConfig(server: fake.url, caFile: fake.caFile, token: "nobody"), requestTimeout: .seconds(5))
        let store = KubeLockStore(client: kube, kind: .lease, namespace: "default", name: "lock", logger: Logger(level: .critical))
        let runner = ElectionRunner(election: Election(identity: "me", timing: Election.Timing(
            leaseDuration: .seconds(15), renewDeadline: .seconds(10), retryPeriod: .seconds(2))), store: store, host: ReleasingHost(),
            logger: Logger(level: .critical))
        guard case .configurationError(let message) = runner.run() else { Issue.record("expected a configuration error"); return }
        #expect(message.contains("forbidden") || message.contains("Forbidden") || message.contains("may not"), "\(message)")
    }
}
