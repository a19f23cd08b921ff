import KLCore
import Synchronization

extension AWSService {
    public static let ec2 = AWSService(signingName: "ec2", endpointEnvID: "EC2", hostPrefix: "ec2")
}

/// EC2 (Query protocol, `Version=2016-11-15`): only `DescribeTags`.
public struct EC2Client: Sendable {
    let endpoint: QueryEndpoint

    public init(aws: AWSClient, baseURL: String) {
        endpoint = QueryEndpoint(aws: aws, baseURL: baseURL, service: .ec2, version: "2016-11-15")
    }

    /// The value of tag `key` on `instanceID`, or nil when the instance has
    /// no such tag. `DescribeTags` filtered by `resource-id` and `key`.
    public func tagValue(instanceID: String, key: String) throws(NodeLifecycleError) -> String? {
        let xml = try endpoint.call("DescribeTags", [
            ("Filter.1.Name", "resource-id"), ("Filter.1.Value.1", instanceID),
            ("Filter.2.Name", "key"), ("Filter.2.Value.1", key),
        ])
        return Self.tagValue(in: xml, instanceID: instanceID, key: key)
    }

    /// Tag `key` of several instances in one call (`resource-id` values
    /// 1…N): instance id → value; instances without the tag are absent.
    public func tagValues(instanceIDs: [String], key: String) throws(NodeLifecycleError) -> [String: String] {
        var params = [("Filter.1.Name", "resource-id")]
        for (i, id) in instanceIDs.enumerated() { params.append(("Filter.1.Value.\(i + 1)", id)) }
        params += [("Filter.2.Name", "key"), ("Filter.2.Value.1", key), ("MaxResults", "1000")]
        let xml = try endpoint.call("DescribeTags", params)
        var out: [String: String] = [:]
        for id in instanceIDs { if let v = Self.tagValue(in: xml, instanceID: id, key: key) { out[id] = v } }
        return out
    }

    /// Reads `<tagSet><item><resourceId/><key/><value/></item>…` item by
    /// item, whatever the order of the fields inside an item (AWS and moto
    /// differ): a field seen twice starts the next item.
    static func tagValue(in xml: XMLLeaves, instanceID: String, key: String) -> String? {
        var item: [String: String] = [:]
        var found: String?
        func flush() {
            if found == nil, item["resourceId"] == instanceID, item["key"] == key { found = item["value"] ?? "" }
            item = [:]
        }
        for (path, text) in xml.leaves where path.count >= 2 && path[path.count - 2] == "item" {
            let field = path[path.count - 1]
            guard ["resourceId", "resourceType", "key", "value"].contains(field) else { continue }
            if item[field] != nil { flush() }
            item[field] = text
        }
        flush()
        return found
    }
}

/// What answers "is this instance ours?" (`--managed-tag`).
public protocol InstanceTagsAPI: Sendable {
    func tagValue(instanceID: String, key: String) throws(NodeLifecycleError) -> String?
    /// Several at once; instances without the tag are absent from the answer.
    func tagValues(instanceIDs: [String], key: String) throws(NodeLifecycleError) -> [String: String]
}

extension InstanceTagsAPI {
    public func tagValues(instanceIDs: [String], key: String) throws(NodeLifecycleError) -> [String: String] {
        var out: [String: String] = [:]
        for id in instanceIDs { if let v = try tagValue(instanceID: id, key: key) { out[id] = v } }
        return out
    }
}
extension EC2Client: InstanceTagsAPI {}

/// `--managed-tag KEY[=VALUE]`: aws-node-termination-handler's
/// `CHECK_TAG_BEFORE_DRAINING` + `MANAGED_TAG`. An instance without the tag
/// (or with another value) belongs to another cluster sharing the queue.
/// Answers are cached per instance (an instance's tags do not move it to
/// another cluster); failures are not cached.
public final class ManagedTag: Sendable {
    public let key: String
    public let value: String?
    let tags: any InstanceTagsAPI
    let cache = Mutex<[String: Bool]>([:])
    let calls = Mutex(0)
    /// Bound on the cache; beyond it, the cache starts again empty.
    let maxCached: Int

    public init(key: String, value: String?, tags: any InstanceTagsAPI, maxCached: Int = 10_000) {
        self.key = key
        self.value = value
        self.tags = tags
        self.maxCached = max(1, maxCached)
    }

    /// Parses `KEY[=VALUE]`; nil for an empty key.
    public static func parse(_ text: String) -> (key: String, value: String?)? {
        let trimmed = text.trimmingWhitespace
        if let eq = trimmed.firstIndex(of: "=") {
            let key = String(trimmed[..<eq])
            return key.isEmpty ? nil : (key, String(trimmed[trimmed.index(after: eq)...]))
        }
        return trimmed.isEmpty ? nil : (trimmed, nil)
    }

    /// DescribeTags calls made (cache misses).
    public var lookups: Int { calls.withLock { $0 } }

    /// Reads the tags of every instance of a receive batch not cached yet,
    /// in one DescribeTags (at most 200 ids). A failure is left to
    /// `isManaged`, which asks again per instance.
    public func prefetch(_ instanceIDs: [String]) {
        let missing = Array(Set(instanceIDs.filter { id in cache.withLock { $0[id] == nil } }).sorted().prefix(200))
        guard missing.count > 1 else { return }
        calls.withLock { $0 += 1 }
        guard let found = try? tags.tagValues(instanceIDs: missing, key: key) else { return }
        cache.withLock { c in
            if c.count + missing.count > maxCached { c.removeAll() }
            for id in missing { c[id] = found[id].map { value == nil || $0 == value } ?? false }
        }
    }

    public func isManaged(_ instanceID: String) throws(NodeLifecycleError) -> Bool {
        if let known = cache.withLock({ $0[instanceID] }) { return known }
        calls.withLock { $0 += 1 }
        let found = try tags.tagValue(instanceID: instanceID, key: key)
        let managed = found != nil && (value == nil || found == value)
        cache.withLock { c in
            if c.count >= maxCached { c.removeAll() }
            c[instanceID] = managed
        }
        return managed
    }

    public var description: String { value.map { "\(key)=\($0)" } ?? key }
}
