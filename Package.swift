// swift-tools-version:6.0
// kube-leader: one static binary that elects a leader among replicas and runs
// the real command only there. No package dependencies: toolchain + system C
// libraries only (see docs/kube-leader-design.md).
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

/// kube-leader's own modules keep the static binary small (budget 12 MB):
/// - no implicit `_StringProcessing` (regex engine, Unicode name tables:
///   1.25 MB): regex literals and its string algorithms are unavailable here;
/// - no implicit `_Concurrency` (its runtime and libdispatch: about 0.6 MB):
///   no async/await or Task; use `MonotonicClock`, not `ContinuousClock`.
/// - no reflection metadata (field names and case names for Mirror: 33 KB,
///   issue 24): interpolating a type without `CustomStringConvertible`
///   prints `Kind(rawValue: 1)` or `Kind()` instead of its fields or case
///   name, so every type that reaches a log, help or error text spells
///   itself out (`description`); scripts/test.d/23-reflection-free.sh runs
///   the static binaries (help, errors, logs, the demo) and guards it.
/// scripts/build-static adds the release-only size flags (-Osize, lld with
/// --icf=all) on its command line; see docs/release.md.
let lean: [SwiftSetting] = strict + [
    .unsafeFlags(["-Xfrontend", "-disable-implicit-string-processing-module-import",
                  "-Xfrontend", "-disable-implicit-concurrency-module-import",
                  "-Xfrontend", "-disable-reflection-metadata"]),
]

let package = Package(
    name: "kube-leader",
    products: [
        .executable(name: "kube-leader", targets: ["KubeLeaderMain"]),
        .executable(name: "policy-check", targets: ["PolicyCheckMain"]),
        .executable(name: "pager-tester", targets: ["PagerTesterMain"]),
        .executable(name: "node-lifecycle", targets: ["NodeLifecycleMain"]),
        .executable(name: "kube-apiserver-fake", targets: ["FakeAPIServerMain"]),
        .executable(name: "kube-leader-sim", targets: ["SimulationMain"]),
    ],
    targets: [
        // MARK: C shims (the only C in the project)
        .target(name: "COpenSSL", path: "Sources/KubeLeader/COpenSSL",
                linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .target(name: "CShims", path: "Sources/KubeLeader/CShims"),

        // MARK: kube-leader and the shared core
        .target(name: "KLCore", path: "Sources/KubeLeader/Core", swiftSettings: lean),
        .target(name: "KLSystem", dependencies: ["KLCore", "CShims"],
                path: "Sources/KubeLeader/System", swiftSettings: lean),
        .target(name: "KLProcess", dependencies: ["KLCore", "KLSystem", "CShims"],
                path: "Sources/KubeLeader/Process", swiftSettings: lean),
        // The network, in layers: transport (sockets, TLS, the HTTP/1.1
        // client, the one small HTTP server), the Kubernetes API client on
        // it, and kube-leader's election driver and status surfaces on that.
        .target(name: "KLTransport", dependencies: ["KLCore", "KLSystem", "COpenSSL", "CShims"],
                path: "Sources/KubeLeader/Transport", swiftSettings: lean),
        .target(name: "KLKube", dependencies: ["KLCore", "KLSystem", "KLTransport"],
                path: "Sources/KubeLeader/Kube", swiftSettings: lean),
        .target(name: "KLLeader", dependencies: ["KLCore", "KLSystem", "KLTransport", "KLKube"],
                path: "Sources/KubeLeader/Leader", swiftSettings: lean),
        .executableTarget(name: "KubeLeaderMain",
                          dependencies: ["KLCore", "KLSystem", "KLProcess", "KLTransport", "KLKube", "KLLeader", "CShims"],
                          path: "Sources/KubeLeader/Main", swiftSettings: lean),

        // MARK: companions (nothing depends on them)
        .target(name: "PolicyCheckKit", dependencies: ["KLCore", "KLSystem", "KLProcess"],
                path: "Sources/Companions/PolicyCheck/Lib", swiftSettings: strict),
        .executableTarget(name: "PolicyCheckMain", dependencies: ["PolicyCheckKit", "KLSystem"],
                          path: "Sources/Companions/PolicyCheck/Main", swiftSettings: strict),
        .target(name: "PagerTesterKit", dependencies: ["KLCore", "KLSystem", "KLTransport"],
                path: "Sources/Companions/PagerTester/Lib", swiftSettings: strict),
        .executableTarget(name: "PagerTesterMain", dependencies: ["PagerTesterKit", "KLCore", "KLSystem"],
                          path: "Sources/Companions/PagerTester/Main", swiftSettings: strict),
        .target(name: "NodeLifecycleKit", dependencies: ["KLCore", "KLSystem", "KLTransport", "KLKube", "COpenSSL"],
                path: "Sources/Companions/NodeLifecycle/Lib", swiftSettings: strict),
        .executableTarget(name: "NodeLifecycleMain", dependencies: ["NodeLifecycleKit", "KLSystem"],
                          path: "Sources/Companions/NodeLifecycle/Main", swiftSettings: strict),

        // MARK: test support: kube-apiserver-fake
        .target(name: "CFakeCerts", path: "Tests/FakeAPIServer/CFakeCerts",
                linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        .target(name: "FakeAPIServerKit",
                dependencies: ["KLCore", "KLSystem", "KLTransport", "KLKube", "COpenSSL", "CShims", "CFakeCerts"],
                path: "Tests/FakeAPIServer/Lib", swiftSettings: strict),
        .executableTarget(name: "FakeAPIServerMain", dependencies: ["FakeAPIServerKit", "KLCore", "KLSystem"],
                          path: "Tests/FakeAPIServer/Main", swiftSettings: strict),

        // MARK: test support: deterministic simulation (pure: KLCore only)
        .target(name: "KLSimulation", dependencies: ["KLCore"],
                path: "Tests/Simulation/Lib", swiftSettings: strict),
        .executableTarget(name: "SimulationMain", dependencies: ["KLSimulation", "KLCore"],
                          path: "Tests/Simulation/Main", swiftSettings: strict),

        // MARK: tests
        .target(name: "KLTestSupport", dependencies: ["KLCore", "KLSystem"], path: "Tests/KLTestSupport", swiftSettings: strict),
        .testTarget(name: "KLCoreTests", dependencies: ["KLCore"]),
        .testTarget(name: "KLSystemTests", dependencies: ["KLCore", "KLSystem", "KLTestSupport"]),
        .testTarget(name: "KLProcessTests", dependencies: ["KLCore", "KLProcess", "KLSystem", "CShims", "KLTestSupport"]),
        // Loopback test servers (plain and TLS) shared by the transport and
        // the Kubernetes client tests.
        .target(name: "KLNetworkTestSupport", dependencies: ["KLCore", "KLSystem", "COpenSSL", "KLTestSupport"],
                path: "Tests/KLNetworkTestSupport", swiftSettings: strict),
        .testTarget(name: "KLTransportTests",
                    dependencies: ["KLTransport", "KLCore", "KLSystem", "KLNetworkTestSupport", "KLTestSupport"]),
        .testTarget(name: "KLKubeTests",
                    dependencies: ["KLKube", "KLTransport", "KLCore", "KLSystem", "FakeAPIServerKit", "KLNetworkTestSupport", "KLTestSupport"]),
        .testTarget(name: "KLLeaderTests",
                    dependencies: ["KLLeader", "KLKube", "KLTransport", "KLCore", "KLSystem", "FakeAPIServerKit", "KLTestSupport"]),
        .testTarget(name: "FakeAPIServerTests",
                    dependencies: ["FakeAPIServerKit", "KLCore", "KLSystem", "KLTransport", "KLKube", "COpenSSL", "CShims", "KLTestSupport"]),
        .testTarget(name: "PolicyCheckTests", dependencies: ["PolicyCheckKit", "KLCore", "KLProcess", "KLSystem", "KLTestSupport"]),
        .testTarget(name: "PagerTesterTests", dependencies: ["PagerTesterKit", "KLCore", "KLSystem", "KLTransport", "KLTestSupport"],
                    exclude: ["fake_pagerduty.py"]),
        .testTarget(name: "NodeLifecycleTests",
                    dependencies: ["NodeLifecycleKit", "KLCore", "KLSystem", "KLTransport", "KLKube", "FakeAPIServerKit", "KLTestSupport"],
                    exclude: ["Data", "Support/botocore_sign.py", "Support/moto_harness.py", "Support/query_double.py",
                              "Support/binary_e2e.py"]),
        .testTarget(name: "SimulationTests", dependencies: ["KLSimulation", "KLCore"]),
        .testTarget(name: "EndToEndTests",
                    dependencies: ["KLCore", "KLSystem", "KLProcess", "KLTransport", "KLKube", "FakeAPIServerKit", "KLTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
