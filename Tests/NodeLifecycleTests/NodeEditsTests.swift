import KLCore
import Testing
@testable import NodeLifecycleKit

@Suite("Node edits and health")
struct NodeEditsTests {
    let node: JSON = ["metadata": ["name": "n1", "resourceVersion": "7"],
                      "spec": ["taints": [["key": "other", "effect": "NoExecute"]]]]
    let taint = Taint(key: "node-lifecycle/draining", effect: "NoSchedule")

    @Test func cordonAndTaint_addsBoth_keepsOtherTaints_andIsIdempotent() throws {
        let edited = try #require(NodeEdits.cordonAndTaint(node, taint: taint))
        #expect(edited[path: "spec", "unschedulable"] == .bool(true))
        #expect(edited[path: "spec", "taints"]?.arrayValue?.compactMap { $0["key"]?.stringValue } == ["other", "node-lifecycle/draining"])
        #expect(edited[path: "metadata", "resourceVersion"]?.stringValue == "7")
        // Regression: `changed ? node : nil` returned `.some(.null)` (JSON is
        // ExpressibleByNilLiteral) and the drainer PUT a null node.
        #expect(NodeEdits.cordonAndTaint(edited, taint: taint) == nil)
    }

    @Test func removeTaint_removesOnlyThatKey_andIsIdempotent() throws {
        let tainted = try #require(NodeEdits.cordonAndTaint(node, taint: Taint(key: "boot", effect: "NoSchedule")))
        let cleared = try #require(NodeEdits.removeTaint(tainted, key: "boot"))
        #expect(!NodeEdits.hasTaint(cleared, key: "boot"))
        #expect(NodeEdits.hasTaint(cleared, key: "other"))
        #expect(NodeEdits.removeTaint(cleared, key: "boot") == nil)
        let only = try #require(NodeEdits.removeTaint(cleared, key: "other"))
        #expect(only[path: "spec", "taints"] == nil)
    }

    @Test func taintParse_kubeletSyntax() {
        #expect(Taint.parse("node.example.com/booting=true:NoSchedule") == Taint(key: "node.example.com/booting", value: "true", effect: "NoSchedule"))
        #expect(Taint.parse("booting:NoExecute") == Taint(key: "booting", effect: "NoExecute"))
        #expect(Taint.parse("booting") == Taint(key: "booting"))
        #expect(Taint.parse("booting:Sometimes") == nil)
        #expect(Taint.parse("=x") == nil)
    }

    func withConditions(_ c: [(String, String)]) -> JSON {
        ["metadata": ["name": "n1"], "status": ["conditions": .array(c.map { ["type": .string($0.0), "status": .string($0.1)] })]]
    }

    @Test func health_readyTrue_andNamedConditionsFalse() {
        let ok = withConditions([("Ready", "True"), ("KernelDeadlock", "False"), ("ReadonlyFilesystem", "False")])
        #expect(NodeHealth.check(ok, mustBeFalse: ["KernelDeadlock", "ReadonlyFilesystem"]) == NodeHealth(healthy: true, problems: []))
    }

    @Test func health_missingConditionCountsAsUnhealthy() {
        let n = withConditions([("Ready", "True")])
        #expect(NodeHealth.check(n, mustBeFalse: ["KernelDeadlock"]).problems == ["KernelDeadlock is not reported yet"])
        #expect(NodeHealth.check(withConditions([]), mustBeFalse: []).problems == ["Ready is not reported yet"])
    }

    @Test func health_notReady_andTrueCondition_areBothNamed() {
        let n = withConditions([("Ready", "False"), ("KernelDeadlock", "True")])
        #expect(NodeHealth.check(n, mustBeFalse: ["KernelDeadlock"]).problems == ["Ready is False", "KernelDeadlock is True"])
    }
}
