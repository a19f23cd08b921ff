import KLCore
import KLSupport
import Synchronization

/// The `drain` loop: long-polls the queue and hands each terminating
/// instance to a `NodeDrainer` on its own thread, at most `concurrency` at
/// once. Test notifications are deleted; malformed messages are logged and
/// left on the queue, so its redrive policy moves them to the dead-letter
/// queue after `maxReceiveCount` tries.
public final class DrainService: Sendable {
    public let queue: any QueueAPI
    public let drainer: NodeDrainer
    public let concurrency: Int
    public let logger: Logger
    /// Long-poll wait per ReceiveMessage (SQS maximum 20 s).
    public let waitSeconds: Int
    private let inFlight = Mutex<Set<String>>([])
    /// The message of each drain in progress (newest copy), for `releaseInFlight`.
    private let inFlightMessages = Mutex<[String: SQSMessage]>([:])
    private let reports = Mutex<[DrainReport]>([])
    /// The newest copy of each in-flight message received again (SQS only
    /// deletes a message reliably with its most recent receipt handle).
    private let redelivered = Mutex<[String: SQSMessage]>([:])

    public init(queue: any QueueAPI, drainer: NodeDrainer, concurrency: Int = 4, waitSeconds: Int = 20, logger: Logger) {
        self.queue = queue
        self.drainer = drainer
        self.concurrency = max(1, concurrency)
        self.waitSeconds = waitSeconds
        self.logger = logger
    }

    /// Drains running now (lifecycle action tokens).
    public var running: Int { inFlight.withLock { $0.count } }

    /// Every finished drain's report, in order (for tests and metrics).
    public var finished: [DrainReport] { reports.withLock { $0 } }

    /// One receive and dispatch. Returns how many messages came.
    /// `inline` runs drains on the calling thread (tests).
    @discardableResult
    public func pollOnce(inline: Bool = false) throws(NodeLifecycleError) -> Int {
        let free = concurrency - running
        if free <= 0 {
            drainer.sleeper.sleep(until: drainer.sleeper.now() + .seconds(1))
            return 0
        }
        let messages = try queue.receive(max: min(10, free), waitSeconds: waitSeconds,
                                         visibilitySeconds: drainer.visibilitySeconds)
        for message in messages { dispatch(message, inline: inline) }
        return messages.count
    }

    func dispatch(_ message: SQSMessage, inline: Bool) {
        let log = logger.with(("sqs.message_id", .string(message.messageID)), ("sqs.receive_count", JSON(message.receiveCount)))
        let parsed: LifecycleMessage
        do {
            parsed = try LifecycleMessage.parse(message.body)
        } catch {
            log.error("malformed message left on the queue", ("error", .string(error.description)),
                      ("body", .string(String(message.body.prefix(300)))))
            return
        }
        switch parsed {
        case .testNotification:
            log.info("test notification deleted")
            do { try queue.delete(message) } catch {
                log.warning("cannot delete the test notification", ("error", .string(error.description)))
            }
        case .action(let action):
            let token = action.lifecycleActionToken
            let isNew = inFlight.withLock { $0.insert(token).inserted }
            guard isNew else {
                log.info("lifecycle action already being handled; redelivery ignored", ("instance.id", .string(action.instanceID)))
                redelivered.withLock { $0[token] = message }
                inFlightMessages.withLock { $0[token] = message }
                do { try queue.extend(message, seconds: drainer.visibilitySeconds) } catch {
                    log.warning("cannot extend the message's visibility", ("error", .string(error.description)))
                }
                return
            }
            inFlightMessages.withLock { $0[token] = message }
            let work: @Sendable () -> Void = { [self] in
                let report = drainer.handle(action, message: message)
                reports.withLock { $0.append(report) }
                // Received again while draining: delete that copy too, unless
                // the drain left the message for redelivery on purpose.
                if let newer = redelivered.withLock({ $0.removeValue(forKey: token) }) {
                    if case .leftOnQueue = report {} else {
                        do { try queue.delete(newer) } catch {
                            log.debug("the newer copy of the message was already gone", ("error", .string("\(error)")))
                        }
                    }
                }
                _ = inFlightMessages.withLock { $0.removeValue(forKey: token) }
                _ = inFlight.withLock { $0.remove(token) }
            }
            if inline { work() } else { startThread(work) }
        }
    }

    /// Makes the messages of drains in progress visible again at once, so
    /// another replica resumes them without waiting out the visibility
    /// timeout. Called on SIGTERM (the drain pod may itself be evicted from a
    /// node being drained); the lifecycle actions stay open.
    @discardableResult
    public func releaseInFlight() -> Int {
        let messages = inFlightMessages.withLock { Array($0.values) }
        for m in messages {
            do {
                try queue.extend(m, seconds: 0)
            } catch {
                logger.warning("cannot release a message", ("sqs.message_id", .string(m.messageID)), ("error", .string(error.description)))
            }
        }
        return messages.count
    }

    /// Polls until `shouldStop` returns true. Receive errors are logged and
    /// retried with backoff (up to 30 s); the process keeps running.
    public func run(shouldStop: @Sendable () -> Bool) {
        var backoff: Duration = .seconds(1)
        while !shouldStop() {
            do {
                try pollOnce()
                backoff = .seconds(1)
            } catch {
                logger.error("cannot receive from the queue; retrying", ("error", .string(error.description)),
                             ("retry_in", .string(DurationText.format(backoff))))
                drainer.sleeper.sleep(until: drainer.sleeper.now() + backoff)
                backoff = min(backoff * 2, .seconds(30))
            }
        }
    }
}

extension DrainService {
    /// Marks a lifecycle action token as running (tests of the duplicate guard).
    func inFlightInsertForTests(_ token: String) -> Bool {
        inFlight.withLock { $0.insert(token).inserted }
    }
}
