# Istio port-name policy: every Service port must select a protocol Istio can
# route (https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/).
# Gatekeeper runs this module from template.yaml (ConstraintTemplate
# k8svalidistioserviceportname); keep the two identical (scripts/test checks).
# The namespace opt-out is not here: it is the Constraint's match.namespaceSelector.
package k8svalidistioserviceportname

# Protocols Istio selects by the port name prefix or by appProtocol. mongo,
# mysql and redis are experimental in Istio (plain TCP unless enabled).
default_protocols := [
	"grpc", "grpc-web", "http", "http2", "http_proxy", "https",
	"mongo", "mysql", "redis", "tcp", "tls", "udp",
]

# Kubernetes-defined appProtocol values Istio understands (h2c, WebSocket).
kubernetes_app_protocols := {"kubernetes.io/h2c", "kubernetes.io/ws", "kubernetes.io/wss"}

# The Constraint's parameters.protocols replaces the list when it is not empty.
protocols := sort({lower(p) | some p in input.parameters.protocols}) if {
	count(input.parameters.protocols) > 0
} else := default_protocols

# Case-insensitive: Istio compares protocol names ignoring case.
pattern := sprintf("^(%s)($|-)", [concat("|", protocols)])

violation contains {"msg": msg, "details": {"port": id}} if {
	obj := input.review.object
	obj.kind == "Service"
	some i, port in obj.spec.ports
	not is_udp(port)
	[field, value] := selector(port)
	not routable(field, value)
	id := port_id(port, i)
	msg := sprintf("%s %s %s: port %s %s must match %s to be routable by Istio", [
		obj.kind, namespace(obj), object.get(obj, ["metadata", "name"], ""), id, field, pattern,
	])
}

# Kubernetes protocol UDP always means UDP to Istio, whatever the name says.
is_udp(port) if upper(port.protocol) == "UDP"

# appProtocol wins over the name when both are set.
selector(port) := ["appProtocol", port.appProtocol] if {
	port.appProtocol != ""
} else := ["name", object.get(port, "name", "")]

routable("appProtocol", value) if kubernetes_app_protocols[lower(value)]

routable(_, value) if regex.match(pattern, lower(value))

# How a message names the port: its name, else its number, else its index.
port_id(port, _) := port.name if port.name != ""

port_id(port, _) := sprintf("%v", [port.port]) if {
	object.get(port, "name", "") == ""
	port.port
}

port_id(port, i) := sprintf("ports[%d]", [i]) if {
	object.get(port, "name", "") == ""
	not port.port
}

# The namespace from the object, else from the admission request, else default.
namespace(obj) := object.get(obj, ["metadata", "namespace"], object.get(input.review, "namespace", "default"))
