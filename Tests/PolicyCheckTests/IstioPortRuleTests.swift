import Testing
@testable import PolicyCheckKit

@Suite struct IstioPortRuleTests {
    static let defaultPattern = "^(grpc|grpc-web|http|http2|http_proxy|https|mongo|mysql|redis|tcp|tls|udp)($|-)"

    @Test func defaultPattern_listsIstioProtocolsSorted() throws {
        #expect(try IstioPortRule().pattern == Self.defaultPattern)
    }

    struct Case: Sendable, CustomTestStringConvertible {
        var label: String
        var port: ServicePort
        var offending: IstioPortRule.Field?
        var testDescription: String { label }
    }

    static let cases: [Case] = [
        Case(label: "exact match https passes", port: ServicePort(name: "https"), offending: nil),
        Case(label: "prefix https-foobar passes", port: ServicePort(name: "https-foobar"), offending: nil),
        Case(label: "httpsfoobar is blocked", port: ServicePort(name: "httpsfoobar"), offending: .name),
        Case(label: "an empty port is blocked", port: ServicePort(), offending: .name),
        Case(label: "an empty name is blocked", port: ServicePort(name: "", number: "80"), offending: .name),
        Case(label: "names match ignoring case", port: ServicePort(name: "HTTP2-api"), offending: nil),
        Case(label: "grpc-web is known", port: ServicePort(name: "grpc-web"), offending: nil),
        Case(label: "http_proxy is known", port: ServicePort(name: "http_proxy-out"), offending: nil),
        Case(label: "experimental mysql is accepted", port: ServicePort(name: "mysql"), offending: nil),
        Case(label: "appProtocol wins over a bad name", port: ServicePort(name: "web", appProtocol: "http"), offending: nil),
        Case(label: "a bad appProtocol loses despite a good name", port: ServicePort(name: "http", appProtocol: "foo"), offending: .appProtocol),
        Case(label: "an empty appProtocol falls back to the name", port: ServicePort(name: "web", appProtocol: ""), offending: .name),
        Case(label: "appProtocol matches ignoring case", port: ServicePort(appProtocol: "GRPC-Web"), offending: nil),
        Case(label: "kubernetes.io/h2c is a known appProtocol", port: ServicePort(appProtocol: "kubernetes.io/h2c"), offending: nil),
        Case(label: "kubernetes.io/wss is not a port name", port: ServicePort(name: "kubernetes.io/wss"), offending: .name),
        Case(label: "UDP ports are UDP whatever the name", port: ServicePort(name: "dns", protocolName: "UDP"), offending: nil),
        Case(label: "lowercase udp protocol counts too", port: ServicePort(name: "dns", protocolName: "udp"), offending: nil),
        Case(label: "TCP does not excuse a bad name", port: ServicePort(name: "dns", protocolName: "TCP"), offending: .name),
        Case(label: "SCTP does not excuse a bad name", port: ServicePort(name: "sctp", protocolName: "SCTP"), offending: .name),
    ]

    @Test(arguments: cases) func offendingField(_ c: Case) throws {
        #expect(try IstioPortRule().offendingField(of: c.port) == c.offending)
    }

    @Test func protocolsParameter_replacesTheListLowercasedAndSorted() throws {
        let rule = try IstioPortRule(protocols: ["TCP", "http", "tcp"])
        #expect(rule.pattern == "^(http|tcp)($|-)")
        #expect(rule.offendingField(of: ServicePort(name: "grpc")) == .name)
        #expect(rule.offendingField(of: ServicePort(name: "Http-x")) == nil)
    }

    @Test func protocolsParameter_rejectsRegexCharacters() {
        #expect(throws: PolicyCheckError.self) { try IstioPortRule(protocols: ["http.*"]) }
        #expect(throws: PolicyCheckError.self) { try IstioPortRule(protocols: [""]) }
    }

    @Test func portID_prefersNameThenNumberThenIndex() {
        #expect(ServicePort(name: "web", number: "80").id(index: 2) == "web")
        #expect(ServicePort(name: "", number: "80").id(index: 2) == "80")
        #expect(ServicePort().id(index: 2) == "ports[2]")
    }

    @Test func message_isWordForWordTheRegoMessage() throws {
        let m = try IstioPortRule().message(kind: "Service", namespace: "shop", name: "web", portID: "httpsfoobar", field: .name)
        #expect(m == "Service shop web: port httpsfoobar name must match \(Self.defaultPattern) to be routable by Istio")
    }
}
