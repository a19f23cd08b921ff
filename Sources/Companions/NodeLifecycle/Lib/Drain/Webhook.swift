import KLCore
import KLSystem
import Synchronization

/// What a webhook post says about one event (the template's placeholders).
public struct WebhookEvent: Sendable, Equatable {
    public var eventID: String
    public var kind: String
    public var instanceID: String
    public var nodeName: String
    public var description: String
    public var startTime: String
    public var state: String
    public var autoScalingGroupName: String

    public init(eventID: String, kind: String, instanceID: String, nodeName: String, description: String,
                startTime: String, state: String = "", autoScalingGroupName: String = "") {
        self.eventID = eventID
        self.kind = kind
        self.instanceID = instanceID
        self.nodeName = nodeName
        self.description = description
        self.startTime = startTime
        self.state = state
        self.autoScalingGroupName = autoScalingGroupName
    }

    /// Placeholder name → value, as `{{ .Name }}` in the template.
    public var fields: [(String, String)] {
        [("EventID", eventID), ("Kind", kind), ("InstanceID", instanceID), ("NodeName", nodeName),
         ("Description", description), ("StartTime", startTime), ("State", state),
         ("AutoScalingGroupName", autoScalingGroupName)]
    }
}

/// `--webhook-template`: aws-node-termination-handler's placeholders
/// (`{{ .EventID }}`, `{{ .Kind }}`, `{{ .InstanceID }}`, `{{ .NodeName }}`,
/// `{{ .Description }}`, `{{ .StartTime }}`, plus `{{ .State }}` and
/// `{{ .AutoScalingGroupName }}`). Not Go templates: only these
/// substitutions, values escaped for a JSON string (the template is JSON).
public struct WebhookTemplate: Sendable, Equatable {
    public static let nthDefault = #"{"text":"[NTH][Instance Interruption] EventID: {{ .EventID }} - Kind: {{ .Kind }} - Instance: {{ .InstanceID }} - Node: {{ .NodeName }} - Description: {{ .Description }} - Start Time: {{ .StartTime }}"}"#
    public static let names = ["EventID", "Kind", "InstanceID", "NodeName", "Description", "StartTime", "State", "AutoScalingGroupName"]

    public let text: String

    /// Checks every `{{ … }}` names a known field; the error names the first that does not.
    public init(_ text: String) throws(NodeLifecycleError) {
        var rest = Substring(text)
        while let open = rest.firstRange(of: "{{") {
            guard let close = rest[open.upperBound...].firstRange(of: "}}") else {
                throw NodeLifecycleError(.usage, "The webhook template has \"{{\" without \"}}\".")
            }
            let name = Self.placeholderName(rest[open.upperBound..<close.lowerBound])
            guard Self.names.contains(name) else {
                throw NodeLifecycleError(.usage, "The webhook template names the unknown field \"\(String(rest[open.upperBound..<close.lowerBound]).trimmingWhitespace)\"; known: \(Self.names.map { "{{ .\($0) }}" }.joined(separator: ", ")).")
            }
            rest = rest[close.upperBound...]
        }
        self.text = text
    }

    static func placeholderName(_ s: Substring) -> String {
        var t = String(s).trimmingWhitespace
        if t.hasPrefix(".") { t.removeFirst() }
        return t
    }

    public func render(_ event: WebhookEvent) -> String {
        let values = Dictionary(uniqueKeysWithValues: event.fields)
        var out = ""
        var rest = Substring(text)
        while let open = rest.firstRange(of: "{{"), let close = rest[open.upperBound...].firstRange(of: "}}") {
            out += rest[..<open.lowerBound]
            out += Self.jsonEscaped(values[Self.placeholderName(rest[open.upperBound..<close.lowerBound])] ?? "")
            rest = rest[close.upperBound...]
        }
        return out + rest
    }

    /// The inside of a JSON string for `s` (no quotes).
    static func jsonEscaped(_ s: String) -> String {
        let quoted = JSON.string(s).serialized()
        return String(quoted.dropFirst().dropLast())
    }
}

/// Posts one message per event to `--webhook-url`, on a thread of its own:
/// a drain never waits for it. At most `capacity` posts wait; beyond that
/// the newest is dropped (counted as failed). Each post has `timeout`.
public final class WebhookNotifier: Sendable {
    public let url: AWSURL
    public let template: WebhookTemplate
    public let headers: [AWSHeader]
    public let timeout: Duration
    public let capacity: Int
    let transport: any AWSTransport
    let logger: Logger
    let metrics: DrainMetrics?
    let pending = Mutex<[String]>([])
    let wake = WakeSignal()

    public init(url: AWSURL, template: WebhookTemplate, headers: [AWSHeader], transport: any AWSTransport,
                timeout: Duration = .seconds(5), capacity: Int = 100, logger: Logger, metrics: DrainMetrics?) {
        self.url = url
        self.template = template
        self.headers = headers
        self.transport = transport
        self.timeout = timeout
        self.capacity = max(1, capacity)
        self.logger = logger
        self.metrics = metrics
    }

    /// `--webhook-headers`: a JSON object of strings, as NTH's `WEBHOOK_HEADERS`.
    public static func parseHeaders(_ text: String) throws(NodeLifecycleError) -> [AWSHeader] {
        guard let json = try? JSON.parse(text), let object = json.objectValue else {
            throw NodeLifecycleError(.usage, "The webhook headers must be a JSON object of strings, e.g. {\"Content-Type\":\"application/json\"} (got \(text.prefix(80))).")
        }
        var out: [AWSHeader] = []
        for (k, v) in object {
            guard let s = v.stringValue, !k.isEmpty, !k.contains(":"), !k.contains("\n"), !s.contains("\n"), !s.contains("\r") else {
                throw NodeLifecycleError(.usage, "The webhook header \"\(k)\" must have a string value on one line.")
            }
            out.append(AWSHeader(k, s))
        }
        return out
    }

    /// Queues a post; never blocks. Returns false when the queue was full.
    @discardableResult
    public func notify(_ event: WebhookEvent) -> Bool {
        let body = template.render(event)
        let queued = pending.withLock { p -> Bool in
            guard p.count < capacity else { return false }
            p.append(body)
            return true
        }
        if !queued {
            metrics?.webhook(ok: false)
            logger.warning("webhook queue full; post dropped", ("instance.id", .string(event.instanceID)), ("capacity", JSON(capacity)))
            return false
        }
        wake.signal()
        return true
    }

    /// Posts waiting now, in order (tests call it; `run` loops on it).
    public func drain() {
        while let body = pending.withLock({ $0.isEmpty ? nil : $0.removeFirst() }) {
            post(body)
        }
    }

    func post(_ body: String) {
        var request = AWSRequest(method: "POST", target: url.path, headers: [AWSHeader("Host", url.hostHeader)] + headers, body: Array(body.utf8))
        if request.header("Content-Type") == nil { request.headers.append(AWSHeader("Content-Type", "application/json")) }
        do {
            let r = try transport.send(baseURL: url.base, request, timeout: timeout)
            if (200..<300).contains(r.status) {
                metrics?.webhook(ok: true)
                logger.debug("webhook posted", ("status", JSON(r.status)))
            } else {
                metrics?.webhook(ok: false)
                logger.warning("webhook refused", ("status", JSON(r.status)), ("body", .string(String(r.bodyText.prefix(200)))))
            }
        } catch {
            metrics?.webhook(ok: false)
            logger.warning("webhook post failed", ("error", .string(error.description)))
        }
    }

    /// The sender thread: posts whatever is queued, then waits for more.
    public func start() {
        runOnNewThread { [self] in
            var seen = 0
            while true {
                seen = wake.wait(for: seen + 1, seconds: 60)
                drain()
            }
        }
    }
}

/// A counting signal the sender thread blocks on (pthread condition with a
/// deadline: no busy wait, no sleep). The tests wait on it too (`Gate`).
final class WakeSignal: @unchecked Sendable {
    private var mutex = pthread_mutex_t()
    private var cond = pthread_cond_t()
    private var count = 0
    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&cond, nil)
    }
    func signal() {
        pthread_mutex_lock(&mutex); count += 1; pthread_cond_broadcast(&cond); pthread_mutex_unlock(&mutex)
    }
    /// Blocks until at least `n` signals happened or `seconds` passed; returns the count.
    @discardableResult
    func wait(for n: Int, seconds: Int = 20) -> Int {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        deadline.tv_sec += seconds
        pthread_mutex_lock(&mutex)
        while count < n {
            if pthread_cond_timedwait(&cond, &mutex, &deadline) == ETIMEDOUT { break }
        }
        let c = count
        pthread_mutex_unlock(&mutex)
        return c
    }
}
