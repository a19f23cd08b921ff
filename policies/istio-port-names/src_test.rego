# Tests of src.rego: the cases of the original policy first, then one test per
# improvement. Run: opa test policies/ (or scripts/test, which uses OPA 1.20).
package k8svalidistioserviceportname_test

import data.k8svalidistioserviceportname.pattern
import data.k8svalidistioserviceportname.violation

default_pattern := "^(grpc|grpc-web|http|http2|http_proxy|https|mongo|mysql|redis|tcp|tls|udp)($|-)"

review(ports) := {"review": {"object": {
	"apiVersion": "v1",
	"kind": "Service",
	"metadata": {"name": "web", "namespace": "shop"},
	"spec": {"ports": ports},
}}}

messages(result) := {v.msg | some v in result}

# --- the original cases ---

test_exact_match_passes if {
	count(violation) == 0 with input as review([{"name": "https", "port": 443}])
}

test_prefix_match_passes if {
	count(violation) == 0 with input as review([{"name": "https-foobar", "port": 443}])
}

test_name_without_dash_is_blocked if {
	messages(violation) == {sprintf("Service shop web: port httpsfoobar name must match %s to be routable by Istio", [default_pattern])} with input as review([{"name": "httpsfoobar", "port": 443}])
}

test_empty_port_is_blocked if {
	messages(violation) == {sprintf("Service shop web: port ports[0] name must match %s to be routable by Istio", [default_pattern])} with input as review([{}])
}

# --- improvements ---

test_two_empty_ports_give_one_violation_each if {
	count(violation) == 2 with input as review([{}, {}])
}

test_each_offending_port_is_named if {
	result := violation with input as review([
		{"name": "http", "port": 80},
		{"name": "metrics", "port": 9090},
		{"port": 8080},
	])
	{v.details.port | some v in result} == {"metrics", "8080"}
}

test_unnamed_port_is_named_by_number if {
	messages(violation) == {sprintf("Service shop web: port 8080 name must match %s to be routable by Istio", [default_pattern])} with input as review([{"port": 8080, "protocol": "TCP"}])
}

test_app_protocol_wins_over_a_bad_name if {
	count(violation) == 0 with input as review([{"name": "web", "port": 80, "appProtocol": "http"}])
}

test_bad_app_protocol_is_blocked_despite_a_good_name if {
	messages(violation) == {sprintf("Service shop web: port http appProtocol must match %s to be routable by Istio", [default_pattern])} with input as review([{"name": "http", "port": 80, "appProtocol": "foo"}])
}

test_empty_app_protocol_falls_back_to_the_name if {
	count(violation) == 1 with input as review([{"name": "web", "port": 80, "appProtocol": ""}])
}

test_kubernetes_app_protocols_are_known if {
	count(violation) == 0 with input as review([
		{"name": "a", "port": 1, "appProtocol": "kubernetes.io/h2c"},
		{"name": "b", "port": 2, "appProtocol": "kubernetes.io/ws"},
		{"name": "c", "port": 3, "appProtocol": "kubernetes.io/wss"},
	])
}

test_kubernetes_app_protocols_are_not_port_names if {
	count(violation) == 1 with input as review([{"name": "kubernetes.io/h2c", "port": 1}])
}

test_udp_ports_are_udp_whatever_their_name if {
	count(violation) == 0 with input as review([{"name": "dns", "port": 53, "protocol": "UDP"}])
}

test_tcp_protocol_does_not_excuse_a_bad_name if {
	count(violation) == 1 with input as review([{"name": "dns", "port": 53, "protocol": "TCP"}])
}

test_names_match_ignoring_case if {
	count(violation) == 0 with input as review([
		{"name": "HTTP-web", "port": 80},
		{"name": "Grpc", "port": 81, "appProtocol": "GRPC-Web"},
	])
}

test_grpc_web_and_http_proxy_are_known if {
	count(violation) == 0 with input as review([
		{"name": "grpc-web", "port": 80},
		{"name": "http_proxy-egress", "port": 81},
	])
}

test_experimental_protocols_are_allowed_by_default if {
	count(violation) == 0 with input as review([
		{"name": "mongo", "port": 1},
		{"name": "mysql-main", "port": 2},
		{"name": "redis", "port": 3},
	])
}

test_parameters_replace_the_protocol_list if {
	inp := object.union(review([{"name": "http", "port": 80}, {"name": "mongo", "port": 27017}]), {"parameters": {"protocols": ["HTTP", "tcp"]}})
	result := violation with input as inp
	{v.details.port | some v in result} == {"mongo"}
	pattern == "^(http|tcp)($|-)" with input as inp
}

test_empty_parameter_list_keeps_the_defaults if {
	pattern == default_pattern with input as {"parameters": {"protocols": []}}
}

test_non_services_are_ignored if {
	count(violation) == 0 with input as {"review": {"object": {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"ports": [{}]}}}}
}

test_service_without_ports_passes if {
	count(violation) == 0 with input as {"review": {"object": {"kind": "Service", "metadata": {"name": "ext"}, "spec": {"type": "ExternalName"}}}}
}

test_namespace_comes_from_the_request_when_the_object_has_none if {
	messages(violation) == {sprintf("Service team-a api: port ports[0] name must match %s to be routable by Istio", [default_pattern])} with input as {"review": {"namespace": "team-a", "object": {"kind": "Service", "metadata": {"name": "api"}, "spec": {"ports": [{}]}}}}
}

test_namespace_defaults_to_default if {
	messages(violation) == {sprintf("Service default api: port ports[0] name must match %s to be routable by Istio", [default_pattern])} with input as {"review": {"object": {"kind": "Service", "metadata": {"name": "api"}, "spec": {"ports": [{}]}}}}
}
