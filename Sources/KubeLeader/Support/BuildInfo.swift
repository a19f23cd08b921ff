import CShims

/// The git commit the binary was built from (`git rev-parse HEAD`, with
/// `-dirty` when the tree had uncommitted changes), as `scripts/build-static`
/// embeds it; `unknown` in other builds. `kube-leader --version` prints it.
public var kubeLeaderSourceCommit: String { String(cString: cshims_source_commit()) }
