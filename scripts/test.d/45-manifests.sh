#!/usr/bin/env bash
# Every YAML under deploy/ and policies/ (whoever adds it) validated with
# kubernetes-validate, strict, for the oldest and newest Kubernetes the README
# supports (1.25 and 1.37). Gatekeeper's kinds have no schema here: listed as
# SKIP, not counted. First a check that the validator catches what it must:
# an unknown field, and an API removed before the oldest version.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
versions=1.25.0,1.37.0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/bad"
cat >"$work/bad/unknown-field.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replicas: 2
  selector: {matchLabels: {app: x}}
  template:
    metadata: {labels: {app: x}}
    spec:
      containers: [{name: x, image: x, restartPolicyy: Always}]
YAML
cat >"$work/bad/removed-api.yaml" <<'YAML'
apiVersion: policy/v1beta1
kind: PodDisruptionBudget
metadata: {name: x}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: x}}}
YAML
rc=0; python3 -m klharness.validate_manifests --versions "$versions" "$work/bad" >"$work/out" 2>&1 || rc=$?
if [[ $rc != 1 ]] || ! grep -q "restartPolicyy" "$work/out" || ! grep -q "has no policy/v1beta1 PodDisruptionBudget" "$work/out"; then
  log "the manifest check does not catch an unknown field or a removed API:"; cat "$work/out"; exit 1
fi

python3 -m klharness.validate_manifests --versions "$versions" deploy policies
