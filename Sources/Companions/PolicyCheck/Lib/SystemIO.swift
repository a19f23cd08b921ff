import KLCore
import KLProcess
import KLSystem

/// The real `PolicyCheckIO`: files through read(2), directories through
/// opendir(3), `opa` through `KLProcess.runCapturing`.
public struct SystemIO: PolicyCheckIO {
    public init() {}

    public func read(_ path: String) throws(PolicyCheckError) -> [UInt8] {
        // No size limit: a policy or input is as large as its author made it.
        let result = path == "-" ? readToEnd(fd: 0, path: path, limit: .max) : readWholeFile(path, limit: .max)
        switch result {
        case .success(let bytes):
            return bytes
        case .failure(let failure):
            if case .cannotOpen = failure.reason {
                throw PolicyCheckError(.badInput, "cannot open '\(path)' (\(failure)); check the path and permissions.")
            }
            throw PolicyCheckError(.badInput, "cannot read '\(path == "-" ? "standard input" : path)' (\(failure)); check that it is a readable file.")
        }
    }

    public func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    public func regoFiles(under directory: String) throws(PolicyCheckError) -> [String] {
        guard let dir = opendir(directory) else {
            let error = errno
            throw PolicyCheckError(.usage, "cannot list '\(directory)' (\(errnoMessage(error))); give a readable directory of .rego files.")
        }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(dir)
        var files: [String] = []
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        for name in names.sorted() {
            let path = prefix + name
            if isDirectory(path) {
                files += try regoFiles(under: path)
            } else if name.hasSuffix(".rego") {
                files.append(path)
            }
        }
        return files
    }

    public func run(_ argv: [String], timeout: Duration) throws(PolicyCheckError) -> CommandOutput {
        let output: CapturedOutput
        do {
            output = try runCapturing(argv, timeout: timeout)
        } catch {
            switch error.code {
            case .commandNotFound, .notExecutable:
                throw PolicyCheckError(.opaMissing, "cannot run '\(argv.first ?? "")': \(error) Install OPA 1.x (https://www.openpolicyagent.org/docs/#running-opa: download the static binary, `chmod +x`, put it on PATH) or pass its path with --opa.")
            case .timedOut:
                throw PolicyCheckError(.opaFailed, "'\(argv.joined(separator: " "))' ran longer than \(DurationText.format(timeout)) and was stopped; raise --timeout or check the policies for slow tests.")
            default:
                throw PolicyCheckError(.opaFailed, "cannot run '\(argv.joined(separator: " "))': \(error)")
            }
        }
        return CommandOutput(status: output.status.exitCode, stdout: output.stdout, stderr: output.stderrText)
    }

    public func writeOut(_ text: String) { writeAll(fd: 1, text) }
    public func writeErr(_ text: String) { writeAll(fd: 2, text) }
}
