import KLCore

/// The checks of the real API server that clients can trip over.
enum Validation {
    /// RFC 1123 subdomain (most kinds) or label (namespaces), with the real messages.
    static func nameProblem(_ name: String, label: Bool) -> String? {
        let bytes = Array(name.utf8)
        func alnum(_ b: UInt8) -> Bool { (b >= 97 && b <= 122) || (b >= 48 && b <= 57) }
        func validLabel(_ part: ArraySlice<UInt8>) -> Bool {
            guard let f = part.first, let l = part.last, alnum(f), alnum(l) else { return false }
            return part.allSatisfy { alnum($0) || $0 == 45 }
        }
        if label {
            if bytes.count > 63 { return "Invalid value: \"\(name)\": must be no more than 63 characters" }
            if !validLabel(bytes[...]) {
                return "Invalid value: \"\(name)\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
            }
            return nil
        }
        if bytes.count > 253 { return "Invalid value: \"\(name)\": must be no more than 253 characters" }
        if !bytes.split(separator: 46, omittingEmptySubsequences: false).allSatisfy(validLabel) {
            return "Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        }
        return nil
    }

    /// Maps the real server decodes as `map[string]string` (labels,
    /// annotations, ConfigMap data): any other value type is a 400 there.
    static func stringMapProblem(_ object: JSON, _ r: ResourceType) -> String? {
        var fields: [([String], String)] = [(["metadata", "labels"], "ObjectMeta.metadata.labels"),
                                            (["metadata", "annotations"], "ObjectMeta.metadata.annotations")]
        if r == .configMaps { fields.append((["data"], "ConfigMap.data")) }
        for (path, goField) in fields {
            var v: JSON? = object
            for key in path { v = v?[key] }
            guard let v, !v.isNull else { continue }
            guard let map = v.objectValue else {
                return "\(r.kind) in version \"\(r.version)\" cannot be handled as a \(r.kind): json: cannot unmarshal \(goType(v)) into Go struct field \(goField) of type map[string]string"
            }
            for (_, value) in map where value.stringValue == nil {
                return "\(r.kind) in version \"\(r.version)\" cannot be handled as a \(r.kind): json: cannot unmarshal \(goType(value)) into Go struct field \(goField) of type string"
            }
        }
        return nil
    }

    private static func goType(_ v: JSON) -> String {
        switch v {
        case .number: "number"
        case .bool: "bool"
        case .array: "array"
        case .object: "object"
        case .string: "string"
        case .null: "null"
        }
    }

    /// Lease `acquireTime`/`renewTime` are MicroTime: exactly six fractional
    /// digits, as Go's `time.Parse(RFC3339Micro)` demands (the real server
    /// answers 400 otherwise, kubernetes/kubernetes#89156).
    static func leaseProblem(_ object: JSON) -> String? {
        for field in ["acquireTime", "renewTime"] {
            guard let value = object[path: "spec", field] else { continue }
            if value.isNull { continue }
            guard let text = value.stringValue else {
                return "Lease in version \"v1\" cannot be handled as a Lease: json: cannot unmarshal into Go struct field LeaseSpec.spec.\(field) of type string"
            }
            if !isMicroTime(text) {
                return "Lease in version \"v1\" cannot be handled as a Lease: parsing time \"\(text)\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"\(text)\" as \"2006-01-02T15:04:05.000000Z07:00\""
            }
        }
        for field in ["leaseDurationSeconds", "leaseTransitions"] {
            if let v = object[path: "spec", field], !v.isNull, v.intValue == nil {
                return "Lease in version \"v1\" cannot be handled as a Lease: json: cannot unmarshal \(v.serialized()) into Go struct field LeaseSpec.spec.\(field) of type int32"
            }
        }
        return nil
    }

    static func isMicroTime(_ s: String) -> Bool {
        let b = Array(s.utf8)
        func digits(_ r: Range<Int>) -> Bool { r.upperBound <= b.count && b[r].allSatisfy { $0 >= 48 && $0 <= 57 } }
        guard b.count >= 27, digits(0..<4), b[4] == 45, digits(5..<7), b[7] == 45, digits(8..<10), b[10] == 84,
              digits(11..<13), b[13] == 58, digits(14..<16), b[16] == 58, digits(17..<19), b[19] == 46, digits(20..<26) else { return false }
        let zone = b[26...]
        if zone.count == 1 && zone.first == 90 { return true }
        let z = Array(zone)
        return z.count == 6 && (z[0] == 43 || z[0] == 45) && z[3] == 58 && z[1...2].allSatisfy { $0 >= 48 && $0 <= 57 }
            && z[4...5].allSatisfy { $0 >= 48 && $0 <= 57 }
    }
}

/// Random identifiers (uid, generateName suffixes, tokens).
struct RandomSource {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    init() {
        var seed: UInt64 = 0
        withUnsafeMutableBytes(of: &seed) { _ = getrandomBytes($0) }
        state = seed
    }
    /// SplitMix64.
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }

    mutating func uuid() -> String {
        let hex = Array("0123456789abcdef")
        var out = ""
        let a = next(), b = next()
        for i in 0..<32 {
            if [8, 12, 16, 20].contains(i) { out.append("-") }
            var nibble = Int(((i < 16 ? a : b) >> (UInt64(i % 16) * 4)) & 0xF)
            if i == 12 { nibble = 4 }
            if i == 16 { nibble = 8 | (nibble & 3) }
            out.append(hex[nibble])
        }
        return out
    }

    /// Five characters from the alphabet of Kubernetes' generateName.
    mutating func nameSuffix() -> String {
        let alphabet = Array("bcdfghjklmnpqrstvwxz2456789")
        return String((0..<5).map { _ in alphabet[Int(next() % UInt64(alphabet.count))] })
    }

    mutating func token() -> String {
        let hex = Array("0123456789abcdef")
        return String((0..<40).map { _ in hex[Int(next() & 0xF)] })
    }
}

/// coordination.k8s.io/v1beta1 LeaseCandidate: the checks of the real API
/// server's validation (pkg/apis/coordination/validation), with its messages.
enum CandidateValidation {
    static let oldestEmulationVersion = "OldestEmulationVersion"

    /// MicroTime fields that fail to decode: 400, as for Lease times.
    static func decodeProblem(_ object: JSON) -> String? {
        for field in ["pingTime", "renewTime"] {
            guard let value = object[path: "spec", field], !value.isNull else { continue }
            guard let text = value.stringValue, Validation.isMicroTime(text) else {
                let shown = value.stringValue ?? value.serialized()
                return "LeaseCandidate in version \"v1beta1\" cannot be handled as a LeaseCandidate: parsing time \"\(shown)\" as \"2006-01-02T15:04:05.000000Z07:00\": cannot parse \"\(shown)\" as \"2006-01-02T15:04:05.000000Z07:00\""
            }
        }
        for field in ["leaseName", "binaryVersion", "emulationVersion", "strategy"] {
            if let v = object[path: "spec", field], !v.isNull, v.stringValue == nil {
                return "LeaseCandidate in version \"v1beta1\" cannot be handled as a LeaseCandidate: json: cannot unmarshal \(v.serialized()) into Go struct field LeaseCandidateSpec.spec.\(field) of type string"
            }
        }
        return nil
    }

    /// 422 causes for a new object, or an update of `old`.
    static func causes(_ o: JSON, old: JSON?) -> [(field: String, message: String, reason: String)] {
        var out: [(field: String, message: String, reason: String)] = []
        let spec = o["spec"]
        let leaseName = spec?["leaseName"]?.stringValue ?? ""
        if leaseName.isEmpty {
            out.append(("spec.leaseName", "Required value", "FieldValueRequired"))
        } else if let problem = Validation.nameProblem(leaseName, label: false) {
            out.append(("spec.leaseName", problem, "FieldValueInvalid"))
        }
        if let old, let was = old[path: "spec", "leaseName"]?.stringValue, was != leaseName {
            out.append(("spec.leaseName", "Invalid value: \"\(leaseName)\": field is immutable", "FieldValueInvalid"))
        }
        let binary = spec?["binaryVersion"]?.stringValue ?? ""
        let binaryVersion = SemVer(binary)
        if binary.isEmpty {
            out.append(("spec.binaryVersion", "Required value", "FieldValueRequired"))
        } else if binaryVersion == nil {
            out.append(("spec.binaryVersion", "Invalid value: \"\(binary)\": must be in a semver format without leading `v`", "FieldValueInvalid"))
        }
        let strategy = spec?["strategy"]?.stringValue ?? ""
        let emulation = spec?["emulationVersion"]?.stringValue ?? ""
        if !emulation.isEmpty {
            if let e = SemVer(emulation) {
                if let b = binaryVersion, b < e {
                    out.append(("spec.emulationVersion", "Invalid value: \"\(emulation)\": must be less than or equal to binaryVersion", "FieldValueInvalid"))
                }
            } else {
                out.append(("spec.emulationVersion", "Invalid value: \"\(emulation)\": must be in a semver format without leading `v`", "FieldValueInvalid"))
            }
        } else if strategy == oldestEmulationVersion {
            out.append(("spec.emulationVersion", "Required value: must be specified when strategy is \"OldestEmulationVersion\"", "FieldValueRequired"))
        }
        if strategy.isEmpty {
            out.append(("spec.strategy", "Required value", "FieldValueRequired"))
        } else if strategy != oldestEmulationVersion {
            // A third-party strategy is a qualified name: PREFIX/NAME.
            let parts = strategy.split(separator: "/", omittingEmptySubsequences: false)
            if parts.count != 2 || parts[1].isEmpty || Validation.nameProblem(String(parts[0]), label: false) != nil {
                out.append(("spec.strategy", "Invalid value: \"\(strategy)\": must be \"OldestEmulationVersion\" or a qualified name with a prefix (e.g. example.com/MyStrategy)", "FieldValueInvalid"))
            }
        }
        return out
    }
}

/// A semantic version as the controller compares them (MAJOR.MINOR.PATCH,
/// an optional pre-release; build metadata ignored). The fake's own parser.
struct SemVer: Comparable {
    var core: [Int]
    var pre: [String]

    init?(_ text: String) {
        var body = Substring(text)
        if let plus = body.firstIndex(of: "+") { body = body[..<plus] }
        var preText: Substring?
        if let dash = body.firstIndex(of: "-") { preText = body[body.index(after: dash)...]; body = body[..<dash] }
        let nums = body.split(separator: ".", omittingEmptySubsequences: false)
        guard nums.count == 3 else { return nil }
        var core: [Int] = []
        for n in nums {
            guard !n.isEmpty, n.count <= 9, n.allSatisfy({ $0.isASCII && $0.isNumber }), n == "0" || n.first != "0",
                  let v = Int(n) else { return nil }
            core.append(v)
        }
        self.core = core
        if let preText {
            let ids = preText.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
            guard !ids.isEmpty, ids.allSatisfy({ !$0.isEmpty && $0.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") } }) else { return nil }
            pre = ids
        } else {
            pre = []
        }
    }

    static func < (a: SemVer, b: SemVer) -> Bool {
        if a.core != b.core { return a.core.lexicographicallyPrecedes(b.core) }
        if a.pre.isEmpty || b.pre.isEmpty { return !a.pre.isEmpty && b.pre.isEmpty }
        for (x, y) in zip(a.pre, b.pre) where x != y {
            switch (Int(x), Int(y)) {
            case let (i?, j?): return i < j
            case (_?, nil): return true
            case (nil, _?): return false
            default: return x < y
            }
        }
        return a.pre.count < b.pre.count
    }
}
