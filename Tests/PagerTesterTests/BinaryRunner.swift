import Foundation
import KLTestSupport

/// Runs built binaries and helper scripts for black-box tests.
enum BinaryRunner {
    static var binDir: String { TestPaths.binDirectory }

    static var testsDir: String { TestPaths.testsDirectory("PagerTesterTests") }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    /// Runs `pager-tester ARGS` with `environment` (nothing inherited but PATH)
    /// and waits for it.
    static func pagerTester(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binDir + "/pager-tester")
        p.arguments = arguments
        var env = ["PATH": "/usr/bin:/bin"]
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Result(status: p.terminationStatus, stdout: String(decoding: o, as: UTF8.self),
                      stderr: String(decoding: e, as: UTF8.self))
    }

    /// Writes `text` to a fresh temporary file and returns its path.
    static func tempFile(_ text: String, suffix: String) throws -> String {
        let path = NSTemporaryDirectory() + "pager-tester-\(UUID().uuidString)\(suffix)"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
