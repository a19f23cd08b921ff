import KLSupport

let arguments = ProcessEnvironment.arguments()
if arguments.contains("--version") {
    writeAll(fd: 1, "pager-tester \(kubeLeaderVersion)\n")
} else {
    writeAll(fd: 1, "usage: pager-tester --help | --version (not built yet)\n")
}
