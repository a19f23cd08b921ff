import KLCore
import KLKube
import KLLeader
import KLSystem

/// The optional surfaces around the election (all off by default except the
/// child's environment): the status board every one of them reads, the
/// label/Events worker and the status endpoint. Wired here so the election
/// and the supervisor stay as they are: they see only `ObservedLockStore`
/// and three calls on the board.
struct Surfaces {
    let board: StatusBoard
    let workers: LeaderSurfaces?

    /// Builds them and starts the status endpoint (a bind failure is a usage
    /// error: exit 2 before anything starts).
    static func start(config: LeaderConfig, client: KubeClient, logger: Logger) -> Surfaces {
        let workers = LeaderSurfaces(client: client, logger: logger, label: config.leaderLabel, events: config.events,
                                     podName: config.podName, timeout: min(config.renewDeadline, .seconds(5)))
        let board = StatusBoard(LeaderStatus(identity: config.identity, namespace: config.namespace,
                                             lockName: config.lockName, kind: config.lockKind)) { change, status in
            workers?.enqueue(change, status)
        }
        if let address = config.statusAddress {
            do {
                let server = try StatusServer(address: address, board: board, renewDeadline: config.renewDeadline)
                server.start()
                logger.info("status endpoint listening", ("status.address", .string(server.boundAddress)))
            } catch {
                usageExit(error.message)
            }
        }
        return Surfaces(board: board, workers: workers)
    }

    /// Before exit: give the label removal and the last Event a moment.
    func finish() { workers?.finish(within: .seconds(3)) }
}
