import KLSupport

let arguments = ProcessEnvironment.arguments()
if arguments.contains("--version") {
    writeAll(fd: 1, "kube-leader \(kubeLeaderVersion)\n")
} else {
    writeAll(fd: 1, "usage: kube-leader --help | --version (not built yet)\n")
}
