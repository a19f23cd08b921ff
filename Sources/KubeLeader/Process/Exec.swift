import KLSystem
import CShims

/// Replaces this process with the command, with execvp(3) semantics: the
/// PATH of `environment` (ours when nil) is searched, and the new program
/// gets `environment` (ours when nil). Used outside a cluster, where
/// kube-leader simply runs the command.
///
/// The calling thread's signal mask is emptied just before execve (a blocked
/// mask would survive exec; see `SignalInbox`). Dispositions are left as we
/// inherited them, exactly as a shell's `exec` would.
///
/// - Returns: only on failure, the error (127 not found, 126 not executable).
public func execReplacingProcess(_ argv: [String], environment: [String: String]? = nil) -> ProcessError {
    guard let command = argv.first else {
        return ProcessError(.commandNotFound, errno: ENOENT,
                            context: "Cannot run an empty command; give the program to run after --")
    }
    let file: String
    do {
        file = try resolveCommand(command, path: searchPath(in: environment))
    } catch {
        return error
    }
    let arguments = CStringArray(argv)
    defer { arguments.free() }
    if let environment {
        let env = CStringArray(environment: environment)
        defer { env.free() }
        _ = cshims_execve_clean(file, arguments.pointers, env.pointers)
    } else {
        _ = cshims_execve_clean(file, arguments.pointers, cshims_environ())
    }
    let error = errno
    return spawnError(error, command: command, file: file)
}
