import KLCore
import KLKube
import KLLeader
import KLSystem

/// What kube-leader publishes about the election (docs/surfaces.md; all off
/// by default except the child's environment): the shared status every one
/// of them reads, the status server (/healthz, /leader, /metrics) and the
/// leader label and Events writer. Wired here so the election and the
/// supervisor stay as they are: they see only `StatusReportingLockStore` and
/// three calls on the shared status.
struct StatusPublisher {
    let sharedStatus: SharedLeaderStatus
    let labelAndEvents: LabelAndEventWriter?

    /// Builds them and starts the status endpoint (a bind failure is a usage
    /// error: exit 2 before anything starts).
    static func start(config: LeaderConfig, client: KubeClient, logger: Logger) -> StatusPublisher {
        let labelAndEvents = LabelAndEventWriter(client: client, logger: logger, label: config.leaderLabel, events: config.events,
                                                 podName: config.podName, timeout: min(config.renewDeadline, .seconds(5)))
        let sharedStatus = SharedLeaderStatus(LeaderStatus(identity: config.identity, namespace: config.namespace,
                                                           lockName: config.lockName, kind: config.lockKind)) { change, status in
            labelAndEvents?.enqueue(change, status)
        }
        if let address = config.statusAddress {
            do {
                let server = try StatusServer(address: address, sharedStatus: sharedStatus, renewDeadline: config.renewDeadline)
                server.start()
                logger.info("status endpoint listening", ("status.address", .string(server.boundAddress)))
            } catch {
                usageExit(error.message)
            }
        }
        return StatusPublisher(sharedStatus: sharedStatus, labelAndEvents: labelAndEvents)
    }

    /// Before exit: give the label removal and the last Event a moment.
    func finish() { labelAndEvents?.finish(within: .seconds(3)) }
}
