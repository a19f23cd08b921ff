import KLSystem
import CShims

/// The PATH of an environment, or execvp's default when it has none.
func searchPath(in environment: [String: String]?) -> String {
    if let environment { return environment["PATH"] ?? "/bin:/usr/bin" }
    if let value = getenv("PATH") { return String(cString: value) }
    return "/bin:/usr/bin"
}

/// Finds the file to execute for `name` the way execvp(3) does, but with the
/// PATH of the environment the child will get (posix_spawnp would use ours).
///
/// 1. A name containing "/" is used as is; exec reports what is wrong with it.
/// 2. Otherwise each PATH entry is tried in order ("" means the current
///    directory); the first regular file we may execute wins.
/// 3. A directory or a file without execute permission found on the way is
///    remembered: if nothing better follows, the error is EACCES (126), as
///    execvp reports, not ENOENT (127).
func resolveCommand(_ name: String, path: String) throws(ProcessError) -> String {
    if name.contains("/") { return name }
    if name.isEmpty {
        throw ProcessError(.commandNotFound, errno: ENOENT,
                           context: "Cannot run an empty command name; give the program to run")
    }
    var rejected: String?
    for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
        let candidate = (directory.isEmpty ? "." : String(directory)) + "/" + name
        var info = stat()
        guard stat(candidate, &info) == 0 else { continue }
        if (info.st_mode & S_IFMT) == S_IFREG && access(candidate, X_OK) == 0 {
            return candidate
        }
        if rejected == nil { rejected = candidate }
    }
    if let rejected {
        throw ProcessError(.notExecutable, errno: EACCES,
                           context: "Cannot run \"\(name)\": \(rejected) is not an executable file; "
                               + "make it executable (chmod +x) or fix PATH")
    }
    throw ProcessError(.commandNotFound, errno: ENOENT,
                       context: "Cannot run \"\(name)\": not found in PATH (\(path)); "
                           + "install it or give its full path")
}

/// Maps an exec/posix_spawn errno to our codes, naming the file, the way
/// shells do: ENOENT is 127; permission, format and path-shape problems are 126.
func spawnError(_ error: Int32, command: String, file: String) -> ProcessError {
    switch error {
    case ENOENT:
        return ProcessError(.commandNotFound, errno: error,
                            context: "Cannot run \"\(command)\": \(file) does not exist; check the path")
    case EACCES, ENOEXEC, EPERM, EISDIR, ENOTDIR, ELOOP, ETXTBSY, ENAMETOOLONG:
        return ProcessError(.notExecutable, errno: error,
                            context: "Cannot run \"\(command)\": \(file) is not an executable program; "
                                + "check that it is a binary or a script with a #! line and execute permission")
    default:
        return ProcessError(.spawnFailed, errno: error,
                            context: "Cannot start \"\(command)\" (\(file)); check the system's process and memory limits")
    }
}

/// NULL-terminated arrays of C strings for argv and envp, freed by the caller.
struct CStringArray {
    private(set) var pointers: [UnsafeMutablePointer<CChar>?]

    init(_ strings: [String]) {
        pointers = strings.map { strdup($0) }
        pointers.append(nil)
    }

    init(environment: [String: String]) {
        self.init(environment.map { "\($0.key)=\($0.value)" }.sorted())
    }

    func free() {
        for pointer in pointers { freeCString(pointer) }
    }
}

@inline(__always)
private func freeCString(_ pointer: UnsafeMutablePointer<CChar>?) { free(pointer) }
