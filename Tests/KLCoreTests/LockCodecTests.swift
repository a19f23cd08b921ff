import KLCore
import Testing

@Suite struct LockCodecTests {
    let t = WallTime(seconds: 1_795_859_505, nanoseconds: 706_271_000)

    func record(_ holder: String = "pod-a") -> LeaderElectionRecord {
        LeaderElectionRecord(holderIdentity: holder, leaseDurationSeconds: 15, acquireTime: t, renewTime: t, leaderTransitions: 3)
    }

    /// Hand-over when asked: client-go's release replaces the whole Lease spec; ours
    /// writes the record's fields into the spec it read, so a release (and a
    /// renew) keeps `spec.strategy` and `spec.preferredHolder` (coordinated
    /// leader election), and a ConfigMap keeps its other annotations.
    @Test func releaseKeeps_leaseStrategyAndPreferredHolder_andOtherAnnotations() {
        var lease = LockCodec.newObject(.lease, namespace: "ns", name: "l", record: record("me"))
        lease[path: "spec", "strategy"] = "OldestEmulationVersion"
        lease[path: "spec", "preferredHolder"] = "pod-b"
        lease[path: "metadata", "resourceVersion"] = "7"
        let base = LockCodec.decode(.lease, object: lease)
        var released = base.record!
        released.holderIdentity = ""
        released.leaseDurationSeconds = 1
        let written = LockCodec.updatedObject(.lease, base: base, record: released)
        #expect(written[path: "spec", "strategy"] == "OldestEmulationVersion")
        #expect(written[path: "spec", "preferredHolder"] == "pod-b")
        #expect(written[path: "spec", "holderIdentity"] == "" && written[path: "spec", "leaseDurationSeconds"] == 1)
        #expect(written[path: "metadata", "resourceVersion"] == "7")

        var cm = LockCodec.newObject(.configMap, namespace: "ns", name: "l", record: record("me"))
        cm[path: "metadata", "annotations", "kube-leader.io/preferred-holder"] = "pod-b"
        cm[path: "metadata", "resourceVersion"] = "8"
        let cmBase = LockCodec.decode(.configMap, object: cm)
        let cmWritten = LockCodec.updatedObject(.configMap, base: cmBase, record: released)
        #expect(cmWritten[path: "metadata", "annotations", "kube-leader.io/preferred-holder"] == "pod-b")
        #expect(LockCodec.decode(.configMap, object: cmWritten).record?.holderIdentity == "")
    }

    @Test func configMap_writesClientGoRecordJSON() {
        let object = LockCodec.newObject(.configMap, namespace: "ns", name: "my-lock", record: record())
        let annotation = object[path: "metadata", "annotations", LockKind.annotation]?.stringValue
        #expect(annotation == #"{"holderIdentity":"pod-a","leaseDurationSeconds":15,"acquireTime":"2026-11-28T09:51:45Z","renewTime":"2026-11-28T09:51:45Z","leaderTransitions":3}"#)
        #expect(object[path: "metadata", "namespace"] == "ns")
        #expect(object["kind"] == "ConfigMap")
    }

    @Test func lease_writesMicroTimeWithSixDigits_andLeaseTransitions() {
        let object = LockCodec.newObject(.lease, namespace: "ns", name: "my-lock", record: record())
        #expect(object["apiVersion"] == "coordination.k8s.io/v1")
        #expect(object[path: "spec", "renewTime"] == "2026-11-28T09:51:45.706271Z")
        #expect(object[path: "spec", "leaseTransitions"] == 3)
        #expect(object[path: "spec", "leaderTransitions"] == nil)
    }

    @Test(arguments: [LockKind.configMap, .lease])
    func update_keepsForeignFieldsAndCarriesResourceVersion(kind: LockKind) throws {
        var object = LockCodec.newObject(kind, namespace: "ns", name: "l", record: record())
        object[path: "metadata", "resourceVersion"] = "42"
        object[path: "metadata", "annotations", "team"] = "payments"
        object[path: "metadata", "labels", "app"] = "x"
        object["data"] = ["k": "v"]
        if kind == .lease { object[path: "spec", "strategy"] = "OldestEmulationVersion" }
        let snapshot = LockCodec.decode(kind, object: object)
        #expect(snapshot.resourceVersion == "42")
        var next = try #require(snapshot.record)
        #expect(next.leaderTransitions == 3)
        next.holderIdentity = "pod-b"
        let updated = LockCodec.updatedObject(kind, base: snapshot, record: next)
        #expect(updated[path: "metadata", "annotations", "team"] == "payments")
        #expect(updated[path: "metadata", "labels", "app"] == "x")
        #expect(updated["data"] == ["k": "v"])
        #expect(updated[path: "metadata", "resourceVersion"] == "42")
        let reread = LockCodec.decode(kind, object: updated)
        #expect(reread.record?.holderIdentity == "pod-b")
        if kind == .lease { #expect(updated[path: "spec", "strategy"] == "OldestEmulationVersion") }
    }

    /// The Python kubernetes client's ConfigMapLock writes numbers as strings
    /// and times without a zone.
    @Test func foreignPythonRecord_isUnderstood() throws {
        let raw = #"{"holderIdentity": "py-1", "leaseDurationSeconds": "17", "acquireTime": "2026-11-28 05:27:02.706271", "renewTime": "2026-11-28 05:27:02.706271", "leaderTransitions": "2"}"#
        let object: JSON = ["metadata": ["resourceVersion": "7", "annotations": [LockKind.annotation: .string(raw)]]]
        let r = try #require(LockCodec.decode(.configMap, object: object).record)
        #expect(r.holderIdentity == "py-1")
        #expect(r.leaseDurationSeconds == 17)
        #expect(r.leaderTransitions == 2)
        #expect(r.renewTime == RFC3339.parse("2026-11-28T05:27:02.706271Z"))
    }

    @Test func clientGoLease_isUnderstood() throws {
        let object = try JSON.parse(#"{"metadata":{"resourceVersion":"9"},"spec":{"holderIdentity":"kcm-1","leaseDurationSeconds":15,"acquireTime":"2026-11-28T09:00:00.000000Z","renewTime":"2026-11-28T09:51:45.123456Z","leaseTransitions":4}}"#)
        let r = try #require(LockCodec.decode(.lease, object: object).record)
        #expect(r.holderIdentity == "kcm-1")
        #expect(r.leaderTransitions == 4)
    }

    @Test(arguments: [#"not json"#, #"{"holderIdentity":7}"#, #"{"holderIdentity":"a","renewTime":"tuesday"}"#, #"[1]"#,
                      #"{"holderIdentity":"a","leaseDurationSeconds":"soon"}"#])
    func unreadableRecords_areMarkedUnreadable(raw: String) {
        let object: JSON = ["metadata": ["annotations": [LockKind.annotation: .string(raw)]]]
        let snapshot = LockCodec.decode(.configMap, object: object)
        guard case .unreadable = snapshot.state else { Issue.record("expected unreadable, got \(snapshot.state)"); return }
        #expect(snapshot.fingerprint == raw)
    }

    @Test func configMapWithoutAnnotation_hasNoRecord() {
        #expect(LockCodec.decode(.configMap, object: ["metadata": ["name": "x"]]).state == .none)
        #expect(LockCodec.decode(.lease, object: ["metadata": ["name": "x"], "spec": [:]]).state == .none)
    }
}
