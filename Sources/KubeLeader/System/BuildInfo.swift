import CShims

/// The git commit the binary was built from (`git rev-parse HEAD`, with
/// `-dirty` when the tree had uncommitted changes), as `scripts/build-static`
/// embeds it; `unknown` in other builds. `kube-leader --version` prints it.
public var kubeLeaderSourceCommit: String { String(cString: cshims_source_commit()) }

/// What is inside a binary, for `--version` of every binary (and, through
/// it, for the SBOMs `scripts/build-static` writes: see docs/release.md).
public enum BuildInfo {
    /// The Swift compiler that built this binary; its Swift runtime and
    /// standard library come from the same toolchain (linked in with
    /// `--static-swift-stdlib`). Decided at compile time by `#if compiler`,
    /// so it cannot be stale; a toolchain newer than the chain knows prints
    /// the lower bound (">= 6.3.2"), and scripts/test.d/22-sbom.sh, which
    /// compares it with `swift --version`, fails until the chain is extended.
    public static var swiftVersion: String {
        #if compiler(>=6.3.2)
        return ">= 6.3.2"
        #elseif compiler(>=6.3.1)
        return "6.3.1"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return ">= 6.2, < 6.3"
        #else
        return ">= 6.0, < 6.2"
        #endif
    }

    /// The C library, asked at run time: "glibc 2.36" (gnu_get_libc_version:
    /// for a static binary the glibc linked into it), or "musl".
    public static var libc: String {
        let name = String(cString: cshims_libc_name())
        let version = String(cString: cshims_libc_version())
        return version.isEmpty ? name : "\(name) \(version)"
    }

    /// `PROGRAM --version`: the first line as always ("kube-leader 0.3.0
    /// (source commit abc…)"; scripts and the release workflow read it),
    /// then one `component: version` line each for Swift, the C library and,
    /// for binaries that link it, OpenSSL as the library itself reports it
    /// (`openSSL`: `OpenSSLInfo.versionText` from KLTransport; nil when the binary
    /// does not link OpenSSL).
    public static func versionText(program: String, version: String, openSSL: String?) -> String {
        var text = "\(program) \(version) (source commit \(kubeLeaderSourceCommit))\n"
        text += "swift: \(swiftVersion)\n"
        text += "libc: \(libc)\n"
        if let openSSL { text += "openssl: \(openSSL)\n" }
        return text
    }
}
