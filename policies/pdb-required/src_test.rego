# Tests of src.rego: one group per rule. Run: opa test policies/ (or
# scripts/test, which uses OPA 1.20).
package k8srequiredpdb_test

import data.k8srequiredpdb.violation

workload(kind, replicas, labels) := {"review": {"object": {
	"apiVersion": "apps/v1",
	"kind": kind,
	"metadata": {"name": "web", "namespace": "shop"},
	"spec": {"replicas": replicas, "template": {"metadata": {"labels": labels}}},
}}}

deployment(replicas) := workload("Deployment", replicas, {"app": "web", "tier": "front"})

pdb(spec) := object.union({"selector": {"matchLabels": {"app": "web"}}}, spec)

# data.inventory as Gatekeeper replicates it: namespace, groupVersion, kind, name.
inventory(budgets) := {"namespace": {"shop": {"policy/v1": {"PodDisruptionBudget": {name: {
	"apiVersion": "policy/v1",
	"kind": "PodDisruptionBudget",
	"metadata": {"name": name, "namespace": "shop"},
	"spec": spec,
} |
	some name, spec in budgets
}}}}}

messages(result) := {v.msg | some v in result}

# --- rule 1: two or more replicas need a budget ---

test_two_replicas_without_budget if {
	messages(violation) == {"Deployment shop web: 2 replicas and no PodDisruptionBudget selects its pods"} with input as deployment(2)
}

test_statefulset_is_checked_too if {
	messages(violation) == {"StatefulSet shop web: 3 replicas and no PodDisruptionBudget selects its pods"} with input as workload("StatefulSet", 3, {"app": "web"})
}

test_one_replica_needs_no_budget if {
	count(violation) == 0 with input as deployment(1)
}

test_unset_replicas_means_one if {
	count(violation) == 0 with input as {"review": {"object": {"kind": "Deployment", "metadata": {"name": "web"}}}}
}

test_other_kinds_are_ignored if {
	count(violation) == 0 with input as workload("DaemonSet", 5, {"app": "web"})
}

test_budget_of_another_namespace_does_not_count if {
	inv := {"namespace": {"other": {"policy/v1": {"PodDisruptionBudget": {"web": {"spec": pdb({"maxUnavailable": 1})}}}}}}
	count(violation) == 1 with input as deployment(3) with data.inventory as inv
}

test_namespace_from_the_request_when_the_object_has_none if {
	inp := {"review": {"namespace": "shop", "object": {
		"kind": "Deployment", "metadata": {"name": "web"},
		"spec": {"replicas": 2, "template": {"metadata": {"labels": {"app": "web"}}}},
	}}}
	count(violation) == 0 with input as inp with data.inventory as inventory({"web": pdb({"maxUnavailable": 1})})
}

test_matching_budget_satisfies if {
	count(violation) == 0 with input as deployment(3) with data.inventory as inventory({"web": pdb({"maxUnavailable": 1})})
}

test_budget_with_other_labels_does_not_select if {
	count(violation) == 1 with input as deployment(3)
		with data.inventory as inventory({"api": {"selector": {"matchLabels": {"app": "api"}}, "maxUnavailable": 1}})
}

test_missing_or_null_selector_selects_nothing if {
	count(violation) == 1 with input as deployment(3) with data.inventory as inventory({"a": {"maxUnavailable": 1}})
	count(violation) == 1 with input as deployment(3) with data.inventory as inventory({"a": {"selector": null, "maxUnavailable": 1}})
}

test_empty_selector_selects_every_pod if {
	count(violation) == 0 with input as deployment(3) with data.inventory as inventory({"all": {"selector": {}, "maxUnavailable": 1}})
}

expression_budget(op, values) := inventory({"web": {
	"selector": {"matchExpressions": [{"key": "tier", "operator": op, "values": values}]},
	"maxUnavailable": 1,
}})

test_match_expressions if {
	count(violation) == 0 with input as deployment(3) with data.inventory as expression_budget("In", ["front", "back"])
	count(violation) == 1 with input as deployment(3) with data.inventory as expression_budget("In", ["back"])
	count(violation) == 0 with input as deployment(3) with data.inventory as expression_budget("NotIn", ["back"])
	count(violation) == 1 with input as deployment(3) with data.inventory as expression_budget("NotIn", ["front"])
	count(violation) == 0 with input as deployment(3) with data.inventory as expression_budget("Exists", [])
	count(violation) == 1 with input as deployment(3) with data.inventory as expression_budget("DoesNotExist", [])
	count(violation) == 1 with input as deployment(3) with data.inventory as expression_budget("Unknown", [])
}

test_not_in_and_does_not_exist_match_a_missing_label if {
	d := workload("Deployment", 3, {"app": "web"})
	count(violation) == 0 with input as d with data.inventory as expression_budget("NotIn", ["front"])
	count(violation) == 0 with input as d with data.inventory as expression_budget("DoesNotExist", [])
	count(violation) == 1 with input as d with data.inventory as expression_budget("Exists", [])
}

test_match_labels_and_expressions_must_both_hold if {
	inv := inventory({"web": {
		"selector": {
			"matchLabels": {"app": "web"},
			"matchExpressions": [{"key": "tier", "operator": "In", "values": ["back"]}],
		},
		"maxUnavailable": 1,
	}})
	count(violation) == 1 with input as deployment(3) with data.inventory as inv
}

# --- rule 2: the budget must let a drain evict at least one pod ---

test_max_unavailable_zero_blocks_every_drain if {
	messages(violation) == {"Deployment shop web: PodDisruptionBudget web blocks every drain (maxUnavailable 0)"} with input as deployment(3)
		with data.inventory as inventory({"web": pdb({"maxUnavailable": 0})})
}

test_max_unavailable_zero_percent_blocks_every_drain_even_at_one_replica if {
	messages(violation) == {"Deployment shop web: PodDisruptionBudget web blocks every drain (maxUnavailable 0%)"} with input as deployment(1)
		with data.inventory as inventory({"web": pdb({"maxUnavailable": "0%"})})
}

test_min_available_100_percent_blocks_every_drain_even_at_zero_replicas if {
	messages(violation) == {"Deployment shop web: PodDisruptionBudget web blocks every drain (minAvailable 100%)"} with input as deployment(0)
		with data.inventory as inventory({"web": pdb({"minAvailable": "100%"})})
}

test_small_max_unavailable_percent_rounds_up_to_one_pod if {
	count(violation) == 0 with input as deployment(2) with data.inventory as inventory({"web": pdb({"maxUnavailable": "1%"})})
}

test_min_available_equal_to_replicas_blocks if {
	messages(violation) == {"Deployment shop web: PodDisruptionBudget web allows no disruption at full scale (replicas 3, minAvailable 3)"} with input as deployment(3)
		with data.inventory as inventory({"web": pdb({"minAvailable": 3})})
}

test_min_available_one_blocks_a_single_replica if {
	messages(violation) == {"Deployment shop web: PodDisruptionBudget web allows no disruption at full scale (replicas 1, minAvailable 1)"} with input as deployment(1)
		with data.inventory as inventory({"web": pdb({"minAvailable": 1})})
}

test_min_available_below_replicas_passes if {
	count(violation) == 0 with input as deployment(3) with data.inventory as inventory({"web": pdb({"minAvailable": 2})})
}

test_min_available_percent_rounds_up if {
	# ceil(90% of 5) = 5: nothing may go; ceil(50% of 5) = 3: two may go.
	messages(violation) == {"Deployment shop web: PodDisruptionBudget web allows no disruption at full scale (replicas 5, minAvailable 90%)"} with input as deployment(5)
		with data.inventory as inventory({"web": pdb({"minAvailable": "90%"})})
	count(violation) == 0 with input as deployment(5) with data.inventory as inventory({"web": pdb({"minAvailable": "50%"})})
}

test_max_unavailable_wins_over_min_available if {
	count(violation) == 0 with input as deployment(3) with data.inventory as inventory({"web": pdb({"maxUnavailable": 1, "minAvailable": 3})})
}

test_budget_with_neither_field_allows_everything if {
	count(violation) == 0 with input as deployment(3) with data.inventory as inventory({"web": pdb({})})
}

test_zero_replicas_only_scale_independent_blocks if {
	count(violation) == 0 with input as deployment(0) with data.inventory as inventory({"web": pdb({"minAvailable": 2})})
}

# --- rule 3: one budget per pod ---

test_two_budgets_selecting_the_pods if {
	messages(violation) == {"Deployment shop web: selected by 2 PodDisruptionBudgets (a, b); the eviction API refuses to evict its pods"} with input as deployment(3)
		with data.inventory as inventory({"b": pdb({"maxUnavailable": 1}), "a": {"selector": {}, "minAvailable": 1}})
}

test_two_budgets_and_one_blocks_give_both_reasons if {
	messages(violation) == {
		"Deployment shop web: selected by 2 PodDisruptionBudgets (a, b); the eviction API refuses to evict its pods",
		"Deployment shop web: PodDisruptionBudget b blocks every drain (maxUnavailable 0)",
	} with input as deployment(1)
		with data.inventory as inventory({"a": pdb({"maxUnavailable": 1}), "b": pdb({"maxUnavailable": 0})})
}

# --- rule 4: opt-out (the namespace label is the Constraint's namespaceSelector) ---

test_annotation_opts_the_workload_out if {
	d := json.patch(deployment(5), [{"op": "add", "path": "/review/object/metadata/annotations", "value": {"kube-leader.io/skip-pdb-required": "true"}}])
	count(violation) == 0 with input as d
}

test_annotation_other_than_true_does_not_opt_out if {
	d := json.patch(deployment(5), [{"op": "add", "path": "/review/object/metadata/annotations", "value": {"kube-leader.io/skip-pdb-required": "yes"}}])
	count(violation) == 1 with input as d
}
