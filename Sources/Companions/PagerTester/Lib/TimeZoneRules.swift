import KLSystem

/// A time zone read from a TZif file (RFC 8536): the table of transitions
/// plus the POSIX TZ footer for instants after the table ends.
///
/// Only the 64-bit (v2+) data block is used; v1 files fall back to their
/// 32-bit block. Leap-second records ("right/" zones) are ignored: cron
/// times are civil times.
public struct TimeZoneRules: Sendable, Equatable {
    public var name: String
    /// UTC instants (seconds) where the local time type changes, ascending.
    var transitions: [Int64]
    /// Index into `types` for each transition.
    var transitionTypes: [Int]
    /// (seconds east of UTC, is DST) for each local time type.
    var types: [LocalType]
    var footer: PosixTZ?

    struct LocalType: Sendable, Equatable {
        var offset: Int
        var isDST: Bool
    }

    /// UTC, for expressions without a zone.
    public static let utc = TimeZoneRules(name: "UTC", transitions: [], transitionTypes: [],
                                          types: [LocalType(offset: 0, isDST: false)], footer: nil)

    /// The offset (seconds east of UTC) in effect at a UTC instant.
    public func offset(atUTC t: Int64) -> Int {
        if transitions.isEmpty || t >= transitions[transitions.count - 1] {
            if let footer { return footer.offset(atUTC: t).offset }
        }
        guard let first = transitions.first, t >= first else {
            return types.first?.offset ?? 0
        }
        // Last transition <= t (binary search).
        var lo = 0, hi = transitions.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if transitions[mid] <= t { lo = mid } else { hi = mid - 1 }
        }
        return types[transitionTypes[lo]].offset
    }

    /// Every UTC instant whose local time is `local` (seconds since the epoch
    /// in local civil time), earliest first: none in a spring-forward gap,
    /// two in a fall-back overlap.
    public func utcInstants(forLocal local: Int64) -> [Int64] {
        var offsets: [Int] = []
        for probe in [local - 86400, local, local + 86400] {
            let o = offset(atUTC: probe)
            if !offsets.contains(o) { offsets.append(o) }
        }
        var result: [Int64] = []
        for o in offsets {
            let u = local - Int64(o)
            if offset(atUTC: u) == o, !result.contains(u) { result.append(u) }
        }
        return result.sorted()
    }

    /// Parses TZif bytes; nil when they are not a valid TZif file.
    public static func parse(name: String, bytes: [UInt8]) -> TimeZoneRules? {
        var r = ByteReader(bytes: bytes)
        guard let v1 = r.header() else { return nil }
        var header = v1
        var timeSize = 4
        if v1.version >= 2 {
            // Skip the v1 block, then read the second header and 64-bit data.
            guard r.skip(v1.dataLength(timeSize: 4)), let v2 = r.header() else { return nil }
            header = v2
            timeSize = 8
        }
        var transitions: [Int64] = []
        for _ in 0..<header.timecnt {
            guard let t = timeSize == 8 ? r.int64() : r.int32().map(Int64.init) else { return nil }
            transitions.append(t)
        }
        var transitionTypes: [Int] = []
        for _ in 0..<header.timecnt {
            guard let i = r.byte(), Int(i) < header.typecnt else { return nil }
            transitionTypes.append(Int(i))
        }
        var types: [LocalType] = []
        for _ in 0..<header.typecnt {
            guard let off = r.int32(), let dst = r.byte(), r.byte() != nil else { return nil }
            types.append(LocalType(offset: Int(off), isDST: dst != 0))
        }
        guard !types.isEmpty,
              r.skip(header.charcnt + header.leapcnt * (timeSize + 4) + header.isstdcnt + header.isutcnt) else { return nil }
        var footer: PosixTZ? = nil
        if v1.version >= 2, r.byte() == UInt8(ascii: "\n") {
            let rest = r.bytes[r.offset...]
            if let nl = rest.firstIndex(of: UInt8(ascii: "\n")), nl > rest.startIndex {
                footer = PosixTZ.parse(String(decoding: rest[rest.startIndex..<nl], as: UTF8.self))
            }
        }
        return TimeZoneRules(name: name, transitions: transitions, transitionTypes: transitionTypes,
                             types: types, footer: footer)
    }

    struct Header {
        var version: Int
        var isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt: Int
        func dataLength(timeSize: Int) -> Int {
            timecnt * timeSize + timecnt + typecnt * 6 + charcnt + leapcnt * (timeSize + 4) + isstdcnt + isutcnt
        }
    }

    struct ByteReader {
        var bytes: [UInt8]
        var offset = 0
        mutating func byte() -> UInt8? {
            guard offset < bytes.count else { return nil }
            defer { offset += 1 }
            return bytes[offset]
        }
        mutating func skip(_ n: Int) -> Bool {
            guard n >= 0, offset + n <= bytes.count else { return false }
            offset += n
            return true
        }
        mutating func uint32() -> UInt32? {
            guard offset + 4 <= bytes.count else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 { v = v << 8 | UInt32(bytes[offset + k]) }
            offset += 4
            return v
        }
        mutating func int32() -> Int32? { uint32().map { Int32(bitPattern: $0) } }
        mutating func int64() -> Int64? {
            guard let hi = uint32(), let lo = uint32() else { return nil }
            return Int64(bitPattern: UInt64(hi) << 32 | UInt64(lo))
        }
        mutating func header() -> Header? {
            guard offset + 44 <= bytes.count, Array(bytes[offset..<offset + 4]) == Array("TZif".utf8) else { return nil }
            let vb = bytes[offset + 4]
            let version = vb == 0 ? 1 : Int(vb) - 48
            offset += 20
            guard let a = uint32(), let b = uint32(), let c = uint32(), let d = uint32(), let e = uint32(),
                  let f = uint32(), version >= 1 else { return nil }
            let limit: UInt32 = 1 << 20
            guard a < limit, b < limit, c < limit, d < limit, e < limit, f < limit else { return nil }
            return Header(version: version, isutcnt: Int(a), isstdcnt: Int(b), leapcnt: Int(c),
                          timecnt: Int(d), typecnt: Int(e), charcnt: Int(f))
        }
    }
}

/// Loads time zones by IANA name from `TZDIR` (default `/usr/share/zoneinfo`).
public struct TimeZoneDatabase: Sendable {
    public var directory: String

    public init(environment: [String: String]) {
        let dir = environment["TZDIR"] ?? ""
        directory = dir.isEmpty ? "/usr/share/zoneinfo" : dir
    }

    public init(directory: String) { self.directory = directory }

    /// The zone `name` (e.g. `America/Los_Angeles`); `UTC`, `Etc/UTC` and `Z`
    /// work without a file.
    public func load(_ name: String) throws(PagerError) -> TimeZoneRules {
        if name == "UTC" || name == "Etc/UTC" || name == "Z" || name == "GMT" { return .utc }
        let valid = !name.isEmpty && !name.hasPrefix("/") && !name.split(separator: "/").contains("..")
            && name.utf8.allSatisfy { $0 > 32 && $0 < 127 }
        guard valid else {
            throw PagerError(.unknownZone, "'\(name)' is not a time zone name: write an IANA name such as America/Los_Angeles")
        }
        let path = directory + "/" + name
        guard let bytes = try? readWholeFile(path, limit: Self.maxFileSize).get() else {
            throw PagerError(.unknownZone, "unknown time zone '\(name)': no file \(path); check the spelling (IANA names such as Europe/Berlin), install tzdata, or set TZDIR")
        }
        guard let rules = TimeZoneRules.parse(name: name, bytes: bytes) else {
            throw PagerError(.unknownZone, "time zone '\(name)': \(path) is not a valid TZif file; reinstall tzdata or set TZDIR")
        }
        return rules
    }

    /// The largest TZif (or people) file read: 4 MiB less a byte.
    static let maxFileSize = (1 << 22) - 1
}
