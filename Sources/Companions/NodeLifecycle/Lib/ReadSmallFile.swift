import KLSystem

/// Reads a small text file (a token, a CA) whole, at most 1 MiB. Errors name
/// the file and the reason (errno), e.g. an unreadable projected token.
public func readSmallFile(_ path: String) throws(NodeLifecycleError) -> String {
    switch readWholeTextFile(path, limit: 1 << 20) {
    case .success(let text):
        return text
    case .failure(let error):
        if case .tooLarge = error.reason {
            throw NodeLifecycleError(.file, "\(path) is larger than 1 MiB; it is not a token file.")
        }
        throw NodeLifecycleError(.file, "Cannot read \(path): \(error); check the volume mount and the file's permissions.")
    }
}
