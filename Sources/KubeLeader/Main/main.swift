// kube-leader: parse the configuration, wire the parts, exit.
//
//   main ─► LeaderConfig.load ─┬─ outside a cluster ─► exec the command
//                              └─ in a cluster ─► SignalInbox (block signals)
//                                                 KubeClient + KubeLockStore
//                                                 MainThreadSupervisor.run ─► exit code
import KLCore
import KLKube
import KLLeader
import KLProcess
import KLSystem

/// Ends kube-leader with `code` at once: `_exit`, never
/// `exit`. exit() runs the atexit handlers, among them OpenSSL's
/// `OPENSSL_cleanup` (registered by OPENSSL_init_crypto), which frees the
/// library's global state (default library context, providers, thread-local
/// keys, error tables) while the election thread or a surfaces thread may be
/// inside a handshake or SSL_read: a use after free there crashes the process
/// during its exit, and the container reports a signal instead of our code.
/// Nothing is lost: every log line is written with write(2) (no stdio buffer),
/// and the child is gone or was never started.
func exitNow(_ code: Int32) -> Never { _exit(code) }

/// Exits with a usage/configuration error (code 2), the message on stderr.
func usageExit(_ message: String) -> Never {
    writeAll(fd: 2, "kube-leader: \(message)\n")
    exitNow(ExitCode.usage)
}

/// The whole program, as one function so every value is a local (top-level
/// globals would need an actor, and kube-leader links no concurrency runtime).
func runKubeLeader() -> Never {
    let environment = ProcessEnvironment.current()
    let request: LeaderConfig.Request
    do {
        request = try LeaderConfig.load(arguments: ProcessEnvironment.arguments(), environment: environment,
                                        readFile: { try? readWholeTextFile($0).get() },
                                        hostName: ProcessEnvironment.hostName())
    } catch {
        usageExit("\(error.message)\nRun 'kube-leader --help' for the options.")
    }

    let config: LeaderConfig
    switch request {
    case .help:
        writeAll(fd: 1, HelpText.text)
        exit(0)
    case .version:
        writeAll(fd: 1, HelpText.versionLine)
        exit(0)
    case .run(let c):
        config = c
    }

    var logger = Logger(level: config.logLevel, format: config.logFormat)

    // Outside a cluster: no election, just become the command.
    guard let apiServer = config.apiServer else {
        logger.info("no Kubernetes API configured (KUBERNETES_SERVICE_HOST and --api-server unset): running the command without leader election",
                    ("child.command", .string(config.command[0])))
        let error = execReplacingProcess(config.command)
        logger.error("cannot run the command", ("child.command", .string(config.command[0])), ("error", .string(error.description)))
        exitNow(error.exitCode)
    }

    // Credentials must be readable before anything starts.
    let kubeConfig = KubeConfig(server: apiServer, caFile: config.caFile, tokenFile: config.tokenFile,
                                namespace: config.namespace, userAgent: "kube-leader/\(kubeLeaderVersion)")
    if let problem = kubeConfig.credentialProblem() { usageExit(problem) }

    logger = logger.with(("lock.name", .string(config.lockName)), ("lock.namespace", .string(config.namespace)),
                         ("lock.kind", .string(config.lockKind.rawValue)), ("lock.identity", .string(config.identity)))

    // Block the signals we handle before any thread starts, so every thread
    // inherits the mask and they arrive only through the signalfd.
    let inbox: SignalInbox
    do {
        inbox = try SignalInbox(signals: Signal.forwardedHere + [.child])
    } catch {
        logger.critical("cannot set up signal handling", ("error", .string(error.description)))
        exitNow(ExitCode.failure)
    }
    // Writes to a closed API connection must fail with EPIPE, not kill us.
    signal(SIGPIPE, SIG_IGN)
    // A background kube-leader must not stop on a terminal access (as tini).
    signal(SIGTTIN, SIG_IGN)
    signal(SIGTTOU, SIG_IGN)
    // Orphans of the child become ours to reap and to kill (docs/supervision.md).
    if getpid() != 1, !Reaper.becomeSubreaper() {
        logger.warning("cannot become a child subreaper: processes the child orphans are neither reaped nor killed by kube-leader")
    }

    let client: KubeClient
    do {
        client = try KubeClient(config: kubeConfig, requestTimeout: config.renewDeadline)
    } catch {
        usageExit(error.description)
    }

    logger.info("waiting for the lock", ("api_server", .string(apiServer)), ("lease_duration", .string(DurationText.format(config.leaseDuration))))

    // --coordinated: our LeaseCandidate exists before we wait for the lock;
    // a cluster without the API is one clear error (exit 2), not a loop.
    var candidate: CandidateRunner?
    if let coordinated = config.coordinated {
        let runner = CandidateRunner(
            config: CandidateSession.Config(namespace: config.namespace, name: config.identity, leaseName: config.lockName,
                                            election: coordinated, retryPeriod: config.retryPeriod,
                                            requestTimeout: min(config.renewDeadline, .seconds(5))),
            client: client, logger: logger)
        if case .configurationError(let message) = runner.startUp() {
            logger.error("giving up: coordinated leader election is not possible", ("error", .string(message)),
                         ("exit_code", JSON(Int(ExitCode.usage))))
            usageExit(message)
        }
        runner.startInBackground()
        candidate = runner
    }

    let statusPublisher = StatusPublisher.start(config: config, client: client, logger: logger)
    let store = StatusReportingLockStore(KubeLockStore(client: client, kind: config.lockKind, namespace: config.namespace,
                                                       name: config.lockName, logger: logger, retryPeriod: config.retryPeriod),
                                         sharedStatus: statusPublisher.sharedStatus)
    let supervisor: MainThreadSupervisor
    do {
        supervisor = try MainThreadSupervisor(config: config, logger: logger, inbox: inbox)
        supervisor.statusPublisher = statusPublisher
    } catch {
        logger.critical("cannot start", ("error", .string(error.description)))
        exitNow(ExitCode.failure)
    }
    let outcome = supervisor.run(store: store, requestTimeout: config.renewDeadline)
    candidate?.stop(within: .seconds(11))   // delete our LeaseCandidate (the lock is released by now)
    // The last lines must not keep a stopped kube-leader from exiting either.
    logger = supervisor.logger
    switch outcome {
    case .configuration(let message):
        writeAll(fd: 2, "kube-leader: \(message)\n")
        logger.error("giving up: the API refused us", ("error", .string(message)), ("exit_code", JSON(Int(outcome.code))))
    case .leadershipLost:
        logger.error("exiting: leadership lost", ("exit_code", JSON(Int(outcome.code))))
    case .internalError(let message):
        logger.critical("exiting: internal error", ("error", .string(message)), ("exit_code", JSON(Int(outcome.code))))
    case .childExited, .spawnFailed, .signalWhileWaiting:
        logger.info("exiting", ("exit_code", JSON(Int(outcome.code))))
    }
    statusPublisher.finish()
    exitNow(outcome.code)
}

runKubeLeader()
