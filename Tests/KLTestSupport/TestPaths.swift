import KLSystem

/// Where a test finds the package and the built binaries, written once for
/// every test target (black-box tests run `kube-leader`, `pager-tester`,
/// `node-lifecycle`, `kube-apiserver-fake`).
public enum TestPaths {
    /// The package's root folder (this file is Tests/KLTestSupport/TestPaths.swift).
    public static let packageRoot: String = {
        var parts = #filePath.split(separator: "/", omittingEmptySubsequences: false)
        parts.removeLast(3)
        return parts.joined(separator: "/")
    }()

    /// The folder with the built binaries: `KL_BIN_DIR` (scripts/test sets
    /// it to `swift build --show-bin-path`), else `<package>/.build/debug`.
    public static var binDirectory: String {
        if let dir = getenv("KL_BIN_DIR").map({ String(cString: $0) }), !dir.isEmpty { return dir }
        return packageRoot + "/.build/debug"
    }

    /// The path of the built binary `name`, e.g. `binary("pager-tester")`.
    public static func binary(_ name: String) -> String { binDirectory + "/" + name }

    /// A test target's own folder, `Tests/<target>` (for helper scripts and data).
    public static func testsDirectory(_ target: String) -> String { packageRoot + "/Tests/" + target }
}

/// A fresh, empty, private temporary folder `/tmp/<prefix>-XXXXXX`. The test
/// run stops with a message if the system cannot make one (a full or
/// read-only /tmp), since no test could continue.
/// The corresponding C function is `mkdtemp`.
public func makeTemporaryDirectory(prefix: String = "kl-test") -> String {
    var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard let made else {
        let code = errno
        fatalError("mkdtemp /tmp/\(prefix)-XXXXXX failed: \(String(cString: strerror(code)))")
    }
    return String(cString: made)
}
