# PDB-required policy: every Deployment and StatefulSet that runs more than one
# pod has exactly one PodDisruptionBudget, and that budget lets a node drain
# evict at least one pod (docs/policy-check.md explains each rule).
# Gatekeeper runs this module from template.yaml (ConstraintTemplate
# k8srequiredpdb); keep the two identical (scripts/test checks).
# The PDBs come from Gatekeeper's replicated data (config.yaml syncs
# policy/v1 PodDisruptionBudget into data.inventory). The namespace opt-out is
# not here: it is the Constraint's match.namespaceSelector.
package k8srequiredpdb

# The annotation that opts one workload out, with value "true".
opt_out_annotation := "kube-leader.io/skip-pdb-required"

obj := input.review.object

# Unset (or null) replicas means 1, as the API server defaults it.
replicas := n if {
	n := obj.spec.replicas
	n != null
} else := 1

# The namespace from the object, else from the admission request, else default.
namespace := object.get(obj, ["metadata", "namespace"], object.get(input.review, "namespace", "default"))

pod_labels := object.get(obj, ["spec", "template", "metadata", "labels"], {})

# The PodDisruptionBudgets of the namespace, by name; none when not synced.
pdbs := budgets if {
	budgets := data.inventory.namespace[namespace]["policy/v1"].PodDisruptionBudget
} else := {}

# Names of the budgets whose selector matches the pod template's labels, sorted.
selecting := sort([name | some name, pdb in pdbs; selects(pdb.spec.selector, pod_labels)])

violation contains {"msg": msg} if {
	obj.kind in {"Deployment", "StatefulSet"}
	object.get(obj, ["metadata", "annotations", opt_out_annotation], "") != "true"
	some reason in reasons
	msg := sprintf("%s %s %s: %s", [obj.kind, namespace, object.get(obj, ["metadata", "name"], ""), reason])
}

# Rule 1: two or more replicas need a budget.
reasons contains sprintf("%d replicas and no PodDisruptionBudget selects its pods", [replicas]) if {
	replicas >= 2
	count(selecting) == 0
}

# Rule 2a: a budget that no scale can satisfy (maxUnavailable 0 or 0%, minAvailable 100%).
reasons contains sprintf("PodDisruptionBudget %s blocks every drain (%s)", [name, setting(pdbs[name].spec)]) if {
	some name in selecting
	blocks_every_drain(pdbs[name].spec)
}

# Rule 2b: a budget that allows no eviction at the workload's full scale.
reasons contains sprintf("PodDisruptionBudget %s allows no disruption at full scale (replicas %d, %s)", [name, replicas, setting(pdbs[name].spec)]) if {
	some name in selecting
	not blocks_every_drain(pdbs[name].spec)
	replicas >= 1
	min_available(pdbs[name].spec, replicas) >= replicas
}

# Rule 3: the eviction API refuses a pod that more than one budget selects.
reasons contains sprintf("selected by %d PodDisruptionBudgets (%s); the eviction API refuses to evict its pods", [count(selecting), concat(", ", selecting)]) if {
	count(selecting) > 1
}

# policy/v1: an empty selector selects every pod of the namespace, a missing
# or null one none.
selects(selector, labels) if {
	is_object(selector)
	every key, value in object.get(selector, "matchLabels", {}) {
		labels[key] == value
	}
	every expression in object.get(selector, "matchExpressions", []) {
		matches(expression, labels)
	}
}

matches(expression, labels) if {
	expression.operator == "In"
	value_in(labels, expression)
}

# NotIn also matches pods without the label, as in Kubernetes.
matches(expression, labels) if {
	expression.operator == "NotIn"
	not value_in(labels, expression)
}

matches(expression, labels) if {
	expression.operator == "Exists"
	expression.key in object.keys(labels)
}

matches(expression, labels) if {
	expression.operator == "DoesNotExist"
	not expression.key in object.keys(labels)
}

value_in(labels, expression) if labels[expression.key] in expression.values

# maxUnavailable wins when both are set, as in the disruption controller (the
# API server refuses that anyway); a budget with neither allows everything.
has_max_unavailable(spec) if object.get(spec, "maxUnavailable", null) != null

blocks_every_drain(spec) if scaled(spec.maxUnavailable, 1) == 0

blocks_every_drain(spec) if {
	not has_max_unavailable(spec)
	percent(spec.minAvailable) >= 100
}

min_available(spec, n) := scaled(spec.minAvailable, n) if not has_max_unavailable(spec)

setting(spec) := sprintf("maxUnavailable %v", [spec.maxUnavailable]) if {
	has_max_unavailable(spec)
} else := sprintf("minAvailable %v", [spec.minAvailable])

# An int-or-percent resolved against n pods as the disruption controller does:
# an integer as it is, "P%" rounded up (ceil(P * n / 100)) for both
# maxUnavailable and minAvailable.
scaled(value, _) := value if is_number(value)

scaled(value, n) := ceil((percent(value) * n) / 100)

# "P%" as the number P (the API server accepts only whole percentages).
percent(value) := to_number(trim_suffix(value, "%")) if {
	is_string(value)
	regex.match(`^[0-9]+%$`, value)
}
