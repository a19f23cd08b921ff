import KLSupport

let arguments = ProcessEnvironment.arguments()
if arguments.contains("--version") {
    writeAll(fd: 1, "kube-apiserver-fake \(kubeLeaderVersion)\n")
} else {
    writeAll(fd: 1, "usage: kube-apiserver-fake --help | --version (not built yet)\n")
}
