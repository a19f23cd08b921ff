import CShims
import KLSystem
import KLTestSupport

/// Spawning binaries for black-box tests (kubectl, kube-apiserver-fake).
struct ProcessResult {
    var exitCode: Int32
    var stdout: String
    var stderr: String
}

/// Starts `path args` with stdout/stderr redirected to files.
func spawn(_ path: String, _ args: [String], env: [String: String] = [:], stdoutFile: String, stderrFile: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, stdoutFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_addopen(&actions, 2, stderrFile, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    var environment = ProcessEnvironment.current()
    for (k, v) in env { environment[k] = v }
    let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
    let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { argv.forEach { free($0) }; envp.forEach { free($0) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard rc == 0 else { throw TestFailure("spawning \(path) failed: \(errnoMessage(rc))") }
    return pid
}

/// Waits for a child and returns its exit code (128+N for signal N).
func waitExit(_ pid: pid_t) -> Int32 {
    var status: Int32 = 0
    while waitpid(pid, &status, 0) == -1 && errno == EINTR {}
    if cshims_WIFEXITED(status) != 0 { return cshims_WEXITSTATUS(status) }
    return 128 + cshims_WTERMSIG(status)
}

/// Runs a command to completion and captures its output.
func run(_ path: String, _ args: [String], env: [String: String] = [:]) throws -> ProcessResult {
    let dir = makeTemporaryDirectory(prefix: "fake-apiserver-test")
    let pid = try spawn(path, args, env: env, stdoutFile: "\(dir)/out", stderrFile: "\(dir)/err")
    let code = waitExit(pid)
    return ProcessResult(exitCode: code, stdout: readText("\(dir)/out"), stderr: readText("\(dir)/err"))
}

func readText(_ path: String) -> String {
    guard let f = fopen(path, "r") else { return "" }
    defer { fclose(f) }
    var bytes: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = fread(&buf, 1, buf.count, f)
        if n <= 0 { break }
        bytes += buf[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

func writeText(_ path: String, _ text: String) {
    guard let f = fopen(path, "w") else { return }
    fputs(text, f)
    fclose(f)
}

/// Polls a file until it holds a complete first line (a child's ready line).
/// Bounded: gives up after `seconds`.
func waitForFirstLine(_ path: String, seconds: Double = 20) -> String? {
    let deadline = monotonicNow() + seconds
    while monotonicNow() < deadline {
        let text = readText(path)
        if let nl = text.firstIndex(of: "\n") { return String(text[..<nl]) }
        usleep(20_000)
    }
    return nil
}

/// kubectl from $PATH (scripts/test.d/20-fake.deps installs it when missing).
func kubectlPath() -> String {
    let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/bin"
    for dir in path.split(separator: ":") where access("\(dir)/kubectl", X_OK) == 0 { return "\(dir)/kubectl" }
    return "/usr/bin/kubectl"
}
