import KLCore
import Testing
@testable import PolicyCheckKit

@Suite struct IstioPortsCheckTests {
    static let p = IstioPortRuleTests.defaultPattern

    func check(_ text: String, protocols: [String] = []) throws(PolicyCheckError) -> IstioPortsCheck.Result {
        try IstioPortsCheck.check(text: Array(text.utf8), source: "input.json", rule: IstioPortRule(protocols: protocols))
    }

    func service(_ name: String, namespace: String? = "shop", ports: String) -> String {
        let ns = namespace.map { #","namespace":"\#($0)""# } ?? ""
        return #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"\#(name)"\#(ns)},"spec":{"ports":\#(ports)}}"#
    }

    func badInputMessage(_ text: String) -> String? {
        do { _ = try check(text); return nil } catch {
            #expect(error.code == .badInput)
            return error.message
        }
    }

    @Test func singleService_withGoodPorts_hasNoViolation() throws {
        let r = try check(service("web", ports: #"[{"name":"https","port":443},{"name":"https-foobar","port":8443}]"#))
        #expect(r.violations.isEmpty)
        #expect(r.services == 1)
    }

    @Test func badName_givesTheRegoMessage() throws {
        let r = try check(service("web", ports: #"[{"name":"httpsfoobar","port":443}]"#))
        #expect(r.violations.map(\.message) == ["Service shop web: port httpsfoobar name must match \(Self.p) to be routable by Istio"])
    }

    @Test func twoEmptyPorts_giveOneViolationEach_namedByIndex() throws {
        let r = try check(service("web", ports: "[{},{}]"))
        #expect(r.violations.map(\.port) == ["ports[0]", "ports[1]"])
    }

    @Test func perPortViolations_nameEachOffendingPort() throws {
        let r = try check(service("web", ports: #"[{"name":"http","port":80},{"name":"metrics","port":9090},{"port":8080,"protocol":"TCP"}]"#))
        #expect(r.violations.map(\.port) == ["metrics", "8080"])
        #expect(r.violations.map(\.field) == [.name, .name])
    }

    @Test func appProtocol_winsOverTheName() throws {
        let r = try check(service("web", ports: #"[{"name":"web","port":80,"appProtocol":"http"},{"name":"http","port":81,"appProtocol":"foo"}]"#))
        #expect(r.violations.count == 1)
        #expect(r.violations.first?.message == "Service shop web: port http appProtocol must match \(Self.p) to be routable by Istio")
    }

    @Test func optOutLabel_onANamespaceInTheList_skipsItsServices() throws {
        let list = """
            {"apiVersion":"v1","kind":"List","items":[
              {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"legacy","labels":{"kube-leader.io/skip-istio-port-names":"true"}}},
              {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","labels":{"kube-leader.io/skip-istio-port-names":"false"}}},
              \(service("old", namespace: "legacy", ports: "[{}]")),
              \(service("web", namespace: "shop", ports: "[{}]"))
            ]}
            """
        let r = try check(list)
        #expect(r.skipped == 1)
        #expect(r.services == 1)
        #expect(r.violations.map(\.name) == ["web"])
    }

    @Test func list_withNonServiceObjects_ignoresThem() throws {
        let list = #"{"kind":"List","items":[{"kind":"Pod","metadata":{"name":"p"},"spec":{"ports":[{}]}},"# + service("web", ports: #"[{"name":"tcp"}]"#) + "]}"
        let r = try check(list)
        #expect(r.violations.isEmpty)
        #expect(r.services == 1)
    }

    @Test func serviceList_fromTheRawAPI_isAList() throws {
        let r = try check(#"{"kind":"ServiceList","apiVersion":"v1","items":["# + service("a", ports: "[{}]") + "]}")
        #expect(r.violations.count == 1)
    }

    @Test func nonServiceObject_alone_isIgnored() throws {
        let r = try check(#"{"kind":"ConfigMap","metadata":{"name":"x"},"data":{}}"#)
        #expect(r.violations.isEmpty)
        #expect(r.services == 0)
    }

    @Test func serviceWithoutPorts_passes() throws {
        let r = try check(#"{"kind":"Service","metadata":{"name":"ext","namespace":"a"},"spec":{"type":"ExternalName","externalName":"example.com"}}"#)
        #expect(r.violations.isEmpty)
        #expect(r.services == 1)
    }

    @Test func portNamedByNumberOnly_isNamedByItsNumber() throws {
        let r = try check(service("web", ports: #"[{"port":8080,"targetPort":8080}]"#))
        #expect(r.violations.first?.message == "Service shop web: port 8080 name must match \(Self.p) to be routable by Istio")
    }

    @Test func admissionReview_checksTheRequestObject_withTheRequestNamespace() throws {
        let review = #"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"1","namespace":"team-a","operation":"CREATE","object":"# + service("api", namespace: nil, ports: "[{}]") + "}}"
        let r = try check(review)
        #expect(r.violations.map(\.message) == ["Service team-a api: port ports[0] name must match \(Self.p) to be routable by Istio"])
    }

    @Test func admissionReview_forADelete_hasNothingToCheck() throws {
        let r = try check(#"{"kind":"AdmissionReview","request":{"operation":"DELETE","object":null}}"#)
        #expect(r.services == 0)
    }

    @Test func serviceWithoutNamespace_isInDefault() throws {
        let r = try check(service("api", namespace: nil, ports: "[{}]"))
        #expect(r.violations.first?.namespace == "default")
    }

    @Test func protocolsOverride_changesVerdictAndPattern() throws {
        let r = try check(service("web", ports: #"[{"name":"http"},{"name":"mongo"}]"#), protocols: ["http", "tcp"])
        #expect(r.violations.map(\.message) == ["Service shop web: port mongo name must match ^(http|tcp)($|-) to be routable by Istio"])
    }

    // MARK: bad input

    @Test func emptyInput_isBadInput() {
        #expect(badInputMessage("") == "input.json is empty: pipe in `kubectl get services -o json` or give a file with a Service, a List or an AdmissionReview.")
        #expect(badInputMessage(" \n\t") != nil)
    }

    @Test func invalidJSON_isBadInput_withItsPlace() throws {
        let m = try #require(badInputMessage("{\"kind\": \"Service\",\n  oops}"))
        #expect(m.hasPrefix("input.json is not JSON (invalid JSON at line 2, column 3"))
    }

    struct Shape: Sendable, CustomTestStringConvertible {
        var label: String
        var text: String
        var place: String
        var testDescription: String { label }
    }

    static let shapes: [Shape] = [
        Shape(label: "a top-level array", text: "[]", place: "the top level must be a Kubernetes object"),
        Shape(label: "a bare string", text: #""svc""#, place: "the top level must be"),
        Shape(label: "an object without kind", text: #"{"metadata":{}}"#, place: "the top level has no \"kind\""),
        Shape(label: "List items not an array", text: #"{"kind":"List","items":{}}"#, place: "items must be an array"),
        Shape(label: "a List item that is a number", text: #"{"kind":"List","items":[1]}"#, place: "items[0] must be an object, not a number"),
        Shape(label: "a List item without kind", text: #"{"kind":"List","items":[{"metadata":{}}]}"#, place: "items[0] has no \"kind\""),
        Shape(label: "ports not an array", text: #"{"kind":"Service","metadata":{"name":"a"},"spec":{"ports":{"name":"x"}}}"#, place: "the object.spec.ports must be an array"),
        Shape(label: "a port that is a string", text: #"{"kind":"Service","metadata":{"name":"a"},"spec":{"ports":["http"]}}"#, place: "the object.spec.ports[0] must be an object, not a string"),
        Shape(label: "a numeric port name", text: #"{"kind":"Service","metadata":{"name":"a"},"spec":{"ports":[{"name":80}]}}"#, place: "the object.spec.ports[0].name must be a string, not a number"),
        Shape(label: "a port number as text", text: #"{"kind":"Service","metadata":{"name":"a"},"spec":{"ports":[{"port":"80"}]}}"#, place: "the object.spec.ports[0].port must be a number"),
        Shape(label: "a numeric name", text: #"{"kind":"Service","metadata":{"name":5},"spec":{}}"#, place: "the object.metadata.name must be a string"),
        Shape(label: "an AdmissionReview without request", text: #"{"kind":"AdmissionReview"}"#, place: "request is missing"),
        Shape(label: "an AdmissionReview with an array object", text: #"{"kind":"AdmissionReview","request":{"object":[]}}"#, place: "request.object must be an object"),
    ]

    @Test(arguments: shapes) func wrongShape_isBadInput_namingThePlace(_ s: Shape) throws {
        let m = try #require(badInputMessage(s.text))
        #expect(m.hasPrefix("input.json: " + s.place), "\(m)")
    }
}
