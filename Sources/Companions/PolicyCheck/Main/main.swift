import KLSupport

let arguments = ProcessEnvironment.arguments()
if arguments.contains("--version") {
    writeAll(fd: 1, "policy-check \(kubeLeaderVersion)\n")
} else {
    writeAll(fd: 1, "usage: policy-check --help | --version (not built yet)\n")
}
