import KLSupport

let arguments = ProcessEnvironment.arguments()
if arguments.contains("--version") {
    writeAll(fd: 1, "node-lifecycle \(kubeLeaderVersion)\n")
} else {
    writeAll(fd: 1, "usage: node-lifecycle --help | --version (not built yet)\n")
}
