// kube-apiserver-fake: parse flags, start the server, print the ready line,
// wait for SIGTERM/SIGINT, exit 0.
import FakeAPIServerKit
import KLCore
import KLSystem

@main
enum KubeAPIServerFakeEntry {
    static func usage(_ message: String) -> Never {
        writeAll(fd: 2, "kube-apiserver-fake: \(message)\n")
        exit(2)
    }

    static func main() {
        let parser = OptionParser([
            OptionSpec("host", value: "IP", default: "127.0.0.1", help: "IPv4 address to listen on (also a name of the server certificate when DIR has none yet)."),
            OptionSpec("port", value: "PORT", default: "0", help: "TCP port; 0 picks a free one. Reuse a port to restart in place."),
            OptionSpec("dir", value: "DIR", help: "Directory for ca.crt, ca.key, server.crt, server.key and token (created or reused). Required."),
            OptionSpec("state-file", value: "PATH", help: "Load objects from and save them to this file after every change."),
            OptionSpec("tokens", value: "A,B", help: "More bearer tokens with full access, comma-separated."),
            OptionSpec("history", value: "N", default: "1000", help: "Watch events kept for resuming; older resourceVersions get 410 Expired."),
            OptionSpec("pod-grace", value: "SECONDS", default: "0", help: "Deleted or evicted pods stay terminating this long before they go."),
            OptionSpec("plain-http", value: nil, help: "Serve plain HTTP instead of HTTPS."),
            OptionSpec("log-requests", value: nil, help: "Log every API request to stderr."),
            OptionSpec("no-lease-candidates", value: nil, help: "Do not serve coordination.k8s.io/v1beta1 leasecandidates (404, as a cluster without the API)."),
            OptionSpec("election-controller", env: "FAKE_ELECTION_CONTROLLER", value: nil,
                       help: "Run the coordinated leader election controller (ping LeaseCandidates, elect OldestEmulationVersion, write holderIdentity or preferredHolder)."),
            OptionSpec("election-duration", value: "DURATION", default: "5s", help: "How long the election controller waits for pinged candidates."),
            OptionSpec("election-lease", value: "SECONDS", default: "5", help: "leaseDurationSeconds the election controller writes with a holder."),
        ])

        let parsed: ParsedOptions
        do { parsed = try parser.parse(arguments: ProcessEnvironment.arguments(),
                                          environment: ProcessEnvironment.current().filter { $0.key == "FAKE_ELECTION_CONTROLLER" }) } catch { usage(error.message) }
        if parsed.help {
            writeAll(fd: 1, """
                usage: kube-apiserver-fake [--host 127.0.0.1] [--port 0] --dir DIR [--state-file PATH] [--tokens a,b] [--plain-http] [--log-requests] [--election-controller]

                A fake Kubernetes API server for tests and demos. Prints one JSON line when ready:
                  {"url":"https://127.0.0.1:PORT","ca_file":"DIR/ca.crt","token_file":"DIR/token"}
                Control API (no auth): /fake/faults, /fake/tokens, /fake/stats, /fake/healthz.

                \(parser.helpText())

                """)
            exit(0)
        }
        if parsed.version { writeAll(fd: 1, "kube-apiserver-fake \(kubeLeaderVersion)\n"); exit(0) }
        if !parsed.positionals.isEmpty { usage("unexpected argument '\(parsed.positionals[0])'; run with --help") }
        guard let dir = parsed["dir"], !dir.isEmpty else { usage("--dir DIR is required (where the CA, certificates and token go)") }

        var options = FakeAPIServerOptions(dir: dir)
        options.host = parsed["host"] ?? "127.0.0.1"
        if let p = parsed["port"] {
            guard let port = Int(p), (0...65535).contains(port) else { usage("--port must be a number from 0 to 65535, got '\(p)'") }
            options.port = port
        }
        if let h = parsed["history"] {
            guard let n = Int(h), n > 0 else { usage("--history must be a positive number, got '\(h)'") }
            options.historySize = n
        }
        if let g = parsed["pod-grace"] {
            guard let n = Int(g), n >= 0 else { usage("--pod-grace must be a number of seconds (0 or more), got '\(g)'") }
            options.podGraceSeconds = n
        }
        options.stateFile = parsed["state-file"]
        options.extraTokens = (parsed["tokens"] ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
        options.plainHTTP = parsed.isSet("plain-http")
        options.logRequests = parsed.isSet("log-requests")
        options.leaseCandidates = !parsed.isSet("no-lease-candidates")
        if parsed.isSet("election-controller") {
            var controller = ElectionControllerOptions()
            if let text = parsed["election-duration"] {
                do { controller.electionDuration = try DurationText.parse(text) } catch { usage("--election-duration: \(error.description)") }
                if controller.electionDuration <= .zero { usage("--election-duration must be positive, got '\(text)'") }
            }
            if let text = parsed["election-lease"] {
                guard let n = Int(text), n >= 1, n <= 86_400 else { usage("--election-lease must be a number of seconds from 1 to 86400, got '\(text)'") }
                controller.leaseDurationSeconds = n
            }
            options.electionController = controller
        }

        // Block the stop signals before any thread starts, so only sigwait sees them.
        var stopSignals = sigset_t()
        sigemptyset(&stopSignals)
        sigaddset(&stopSignals, SIGTERM)
        sigaddset(&stopSignals, SIGINT)
        pthread_sigmask(SIG_BLOCK, &stopSignals, nil)

        let server: FakeAPIServer
        do { server = try FakeAPIServer.start(options) } catch {
            writeAll(fd: 2, "\(error)\n")
            exit(1)
        }
        writeAll(fd: 1, server.readyLine + "\n")
        options.logger.info("ready", ("url", .string(server.url)), ("state_file", options.stateFile.map { .string($0) } ?? .null))

        var received: Int32 = 0
        sigwait(&stopSignals, &received)
        options.logger.info("stopping", ("signal", JSON(Int(received))))
        server.stop()
        exit(0)
    }
}
