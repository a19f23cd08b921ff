import KLCore
import Testing
@testable import PolicyCheckKit

/// The PDB rules and their input parsing; the same cases as
/// policies/pdb-required/src_test.rego, with the same messages.
@Suite struct PDBCheckTests {
    func check(_ text: String) throws(PolicyCheckError) -> PDBCheck.Result {
        try PDBCheck.check(text: Array(text.utf8), source: "input.json")
    }

    func workload(_ name: String = "web", kind: String = "Deployment", namespace: String = "shop", replicas: String? = "3",
                  labels: String = #"{"app":"web","tier":"front"}"#, annotations: String? = nil) -> String {
        let r = replicas.map { #""replicas":\#($0),"# } ?? ""
        let a = annotations.map { #","annotations":\#($0)"# } ?? ""
        return #"{"apiVersion":"apps/v1","kind":"\#(kind)","metadata":{"name":"\#(name)","namespace":"\#(namespace)"\#(a)},"spec":{\#(r)"template":{"metadata":{"labels":\#(labels)}}}}"#
    }

    func budget(_ name: String, namespace: String = "shop", selector: String? = #"{"matchLabels":{"app":"web"}}"#, _ spec: String = "") -> String {
        var fields: [String] = []
        if let selector { fields.append(#""selector":\#(selector)"#) }
        if !spec.isEmpty { fields.append(spec) }
        return #"{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"spec":{\#(fields.joined(separator: ","))}}"#
    }

    func list(_ items: String...) -> String { #"{"apiVersion":"v1","kind":"List","items":[\#(items.joined(separator: ","))]}"# }

    func messages(_ items: String...) throws -> [String] {
        try PDBCheck.check(text: Array(#"{"apiVersion":"v1","kind":"List","items":[\#(items.joined(separator: ","))]}"#.utf8), source: "input.json")
            .violations.map(\.message)
    }

    func badInput(_ text: String) -> String? {
        do { _ = try check(text); return nil } catch {
            #expect(error.code == .badInput)
            return error.message
        }
    }

    // MARK: rule 1

    @Test func twoReplicas_withoutBudget_isAViolation() throws {
        #expect(try messages(workload(replicas: "2")) == ["Deployment shop web: 2 replicas and no PodDisruptionBudget selects its pods"])
        #expect(try messages(workload(kind: "StatefulSet")) == ["StatefulSet shop web: 3 replicas and no PodDisruptionBudget selects its pods"])
    }

    @Test func oneOrUnsetReplicas_needNoBudget_otherKindsIgnored() throws {
        #expect(try messages(workload(replicas: "1")).isEmpty)
        #expect(try messages(workload(replicas: nil)).isEmpty)
        #expect(try messages(workload(replicas: "null")).isEmpty)
        #expect(try messages(workload(kind: "DaemonSet", replicas: "5")).isEmpty)
    }

    @Test func budgetOfAnotherNamespace_orWithOtherLabels_doesNotCount() throws {
        #expect(try messages(workload(), budget("web", namespace: "other", #""maxUnavailable":1"#)).count == 1)
        #expect(try messages(workload(), budget("api", selector: #"{"matchLabels":{"app":"api"}}"#, #""maxUnavailable":1"#)).count == 1)
        #expect(try messages(workload(), budget("web", #""maxUnavailable":1"#)).isEmpty)
    }

    @Test func missingOrNullSelector_selectsNothing_emptySelectsAll() throws {
        #expect(try messages(workload(), budget("a", selector: nil, #""maxUnavailable":1"#)).count == 1)
        #expect(try messages(workload(), budget("a", selector: "null", #""maxUnavailable":1"#)).count == 1)
        #expect(try messages(workload(), budget("all", selector: "{}", #""maxUnavailable":1"#)).isEmpty)
    }

    @Test(arguments: [
        ("In", #"["front","back"]"#, true), ("In", #"["back"]"#, false),
        ("NotIn", #"["back"]"#, true), ("NotIn", #"["front"]"#, false),
        ("Exists", "null", true), ("DoesNotExist", "null", false),
    ])
    func matchExpressions(op: String, values: String, selects: Bool) throws {
        let sel = #"{"matchExpressions":[{"key":"tier","operator":"\#(op)","values":\#(values)}]}"#
        #expect(try messages(workload(), budget("web", selector: sel, #""maxUnavailable":1"#)).isEmpty == selects)
    }

    @Test func notInAndDoesNotExist_matchAMissingLabel_existsDoesNot() throws {
        let w = workload(labels: #"{"app":"web"}"#)
        func sel(_ op: String, _ values: String = "[]") -> String { #"{"matchExpressions":[{"key":"tier","operator":"\#(op)","values":\#(values)}]}"# }
        #expect(try messages(w, budget("web", selector: sel("NotIn", #"["front"]"#), #""maxUnavailable":1"#)).isEmpty)
        #expect(try messages(w, budget("web", selector: sel("DoesNotExist"), #""maxUnavailable":1"#)).isEmpty)
        #expect(try messages(w, budget("web", selector: sel("Exists"), #""maxUnavailable":1"#)).count == 1)
    }

    @Test func matchLabelsAndExpressions_mustBothHold() throws {
        let sel = #"{"matchLabels":{"app":"web"},"matchExpressions":[{"key":"tier","operator":"In","values":["back"]}]}"#
        #expect(try messages(workload(), budget("web", selector: sel, #""maxUnavailable":1"#)).count == 1)
    }

    // MARK: rule 2

    @Test func maxUnavailableZero_blocksEveryDrain_atAnyScale() throws {
        #expect(try messages(workload(), budget("web", #""maxUnavailable":0"#)) == ["Deployment shop web: PodDisruptionBudget web blocks every drain (maxUnavailable 0)"])
        #expect(try messages(workload(replicas: "1"), budget("web", #""maxUnavailable":"0%""#)) == ["Deployment shop web: PodDisruptionBudget web blocks every drain (maxUnavailable 0%)"])
        #expect(try messages(workload(replicas: "0"), budget("web", #""minAvailable":"100%""#)) == ["Deployment shop web: PodDisruptionBudget web blocks every drain (minAvailable 100%)"])
    }

    @Test func minAvailableAtOrAboveReplicas_blocksAtFullScale() throws {
        #expect(try messages(workload(), budget("web", #""minAvailable":3"#)) == ["Deployment shop web: PodDisruptionBudget web allows no disruption at full scale (replicas 3, minAvailable 3)"])
        #expect(try messages(workload(replicas: "1"), budget("web", #""minAvailable":1"#)) == ["Deployment shop web: PodDisruptionBudget web allows no disruption at full scale (replicas 1, minAvailable 1)"])
        #expect(try messages(workload(), budget("web", #""minAvailable":2"#)).isEmpty)
        #expect(try messages(workload(replicas: "0"), budget("web", #""minAvailable":2"#)).isEmpty)
    }

    /// The disruption controller rounds both percentages up.
    @Test func percentages_roundUp() throws {
        #expect(try messages(workload(replicas: "5"), budget("web", #""minAvailable":"90%""#)) == ["Deployment shop web: PodDisruptionBudget web allows no disruption at full scale (replicas 5, minAvailable 90%)"])
        #expect(try messages(workload(replicas: "5"), budget("web", #""minAvailable":"50%""#)).isEmpty)
        #expect(try messages(workload(replicas: "2"), budget("web", #""maxUnavailable":"1%""#)).isEmpty)
        #expect(PDBRule.Amount.percent(50).scaled(to: 7) == 4)
        #expect(PDBRule.Amount.percent(1).scaled(to: 1) == 1)
        #expect(PDBRule.Amount.percent(100).scaled(to: Int(Int32.max)) == Int(Int32.max))
    }

    @Test func maxUnavailableWins_neitherAllowsEverything() throws {
        #expect(try messages(workload(), budget("web", #""maxUnavailable":1,"minAvailable":3"#)).isEmpty)
        #expect(try messages(workload(), budget("web")).isEmpty)
    }

    // MARK: rule 3

    @Test func twoBudgets_areAViolation_namedInByteOrder() throws {
        #expect(try messages(workload(), budget("b", #""maxUnavailable":1"#), budget("a", selector: "{}", #""minAvailable":1"#))
            == ["Deployment shop web: selected by 2 PodDisruptionBudgets (a, b); the eviction API refuses to evict its pods"])
        #expect(try messages(workload(replicas: "1"), budget("a", #""maxUnavailable":1"#), budget("b", #""maxUnavailable":0"#)) == [
            "Deployment shop web: PodDisruptionBudget b blocks every drain (maxUnavailable 0)",
            "Deployment shop web: selected by 2 PodDisruptionBudgets (a, b); the eviction API refuses to evict its pods",
        ])
    }

    // MARK: rule 4

    @Test func optOut_byAnnotation_andByNamespaceLabel() throws {
        let r = try check(list(
            #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"legacy","labels":{"kube-leader.io/skip-pdb-required":"true"}}}"#,
            #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","labels":{"kube-leader.io/skip-pdb-required":"false"}}}"#,
            workload("old", namespace: "legacy"),
            workload("batch", annotations: #"{"kube-leader.io/skip-pdb-required":"true"}"#),
            workload("yes", annotations: #"{"kube-leader.io/skip-pdb-required":"yes"}"#),
            workload("web")))
        #expect(r.violations.map(\.name) == ["yes", "web"])
        #expect(r.skipped == 2)
        #expect(r.workloads == 2)
    }

    // MARK: input shapes

    @Test func singleObject_admissionReview_andGatekeeperReview() throws {
        #expect(try check(workload()).violations.count == 1)
        let admission = #"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"namespace":"shop","object":\#(workload())}}"#
        #expect(try check(admission).violations.count == 1)
        let review = #"""
            {"review":{"namespace":"shop","object":{"kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":2,"template":{"metadata":{"labels":{"app":"web"}}}}}},
             "inventory":{"namespace":{"shop":{"policy/v1":{"PodDisruptionBudget":{"web":{"spec":{"selector":{"matchLabels":{"app":"web"}},"minAvailable":2}}}}}}}}
            """#
        #expect(try check(review).violations.map(\.message) == ["Deployment shop web: PodDisruptionBudget web allows no disruption at full scale (replicas 2, minAvailable 2)"])
        let optedOut = #"{"review":{"object":\#(workload())},"inventory":{"cluster":{"v1":{"Namespace":{"shop":{"metadata":{"name":"shop","labels":{"kube-leader.io/skip-pdb-required":"true"}}}}}}}}"#
        #expect(try check(optedOut).skipped == 1)
        #expect(try check(#"{"review":{"object":null}}"#).violations.isEmpty)
    }

    @Test func sampleFile_givesTheDocumentedViolations() throws {
        let r = try PDBCheck.check(text: try SystemIO().read(BinaryTests.packageRoot + "/policies/testdata/workloads.json"), source: "workloads.json")
        #expect(r.violations.map { "\($0.namespace)/\($0.name)" } == ["shop/api", "shop/cart", "shop/search", "shop/postgres", "payments/worker", "monitoring/prometheus"])
        #expect(r.skipped == 2)
        #expect(r.budgets == 11)
    }

    @Test func malformedInput_isRefused_namingThePlace() {
        #expect(badInput("") == "input.json is empty: pipe in `kubectl get namespaces,deployments,statefulsets,poddisruptionbudgets -A -o json` or give a file with such a List, one object, an AdmissionReview or a Gatekeeper review.")
        #expect(badInput("[1]")?.contains("the top level must be a Kubernetes object") == true)
        #expect(badInput(list(workload(replicas: #""3""#))) == #"input.json: items[0].spec.replicas must be a whole number from 0 to 2147483647, not "3"."#)
        #expect(badInput(list(workload(replicas: "-1")))?.contains("items[0].spec.replicas") == true)
        #expect(badInput(list(workload(replicas: "2.5")))?.contains("items[0].spec.replicas") == true)
        #expect(badInput(list(workload(labels: #"{"app":1}"#))) == #"input.json: items[0].spec.template.metadata.labels["app"] must be a string, not a number."#)
        #expect(badInput(list(workload(), budget("web", #""minAvailable":"50""#))) == #"input.json: items[1].spec.minAvailable must be a whole number or a percentage from "0%" to "100%", not "50"."#)
        #expect(badInput(list(budget("web", #""minAvailable":"101%""#)))?.contains("items[0].spec.minAvailable") == true)
        #expect(badInput(list(budget("web", #""maxUnavailable":"1.5%""#)))?.contains("items[0].spec.maxUnavailable") == true)
        #expect(badInput(list(budget("web", #""maxUnavailable":99999999999"#)))?.contains("items[0].spec.maxUnavailable") == true)
        #expect(badInput(list(budget("web", #""maxUnavailable":true"#))) == "input.json: items[0].spec.maxUnavailable must be a number or a percentage string, not a boolean.")
        #expect(badInput(list(budget("web", selector: #"{"matchExpressions":[{"key":"a","operator":"Gt","values":["1"]}]}"#)))
            == "input.json: items[0].spec.selector.matchExpressions[0].operator must be In, NotIn, Exists or DoesNotExist, not 'Gt'.")
        #expect(badInput(list(budget("web", selector: #"{"matchExpressions":[{"operator":"Exists"}]}"#)))?.contains("matchExpressions[0].key is missing") == true)
        #expect(badInput(list(budget("web", selector: #""app=web""#)))?.contains("items[0].spec.selector must be an object") == true)
        #expect(badInput(#"{"review":{"object":\#(workload())},"inventory":{"namespace":{"shop":{"policy/v1":{"PodDisruptionBudget":[]}}}}}"#)?
            .contains(#"inventory.namespace.shop["policy/v1"].PodDisruptionBudget must be an object of budgets by name"#) == true)
        #expect(badInput(#"{"review":"x"}"#) == "input.json: review must be an object.")
    }
}
