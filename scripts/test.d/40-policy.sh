#!/usr/bin/env bash
# Policies with a real OPA engine (opa-golib-python-bindings: OPA 1.20.2):
#  1. every test_ rule of policies/ passes;
#  2. each ConstraintTemplate embeds its policy's src.rego verbatim;
#  3. OPA's own coverage report (both policies) passes `policy-check coverage --report` at 100 %,
#     and `policy-check coverage --opa` runs the same gate through a process;
#  4. the gate fails on a failing test, an untested file and an uncovered rule;
#  5. the Rego policy and `policy-check istio-ports` give the same verdicts and
#     messages on policies/testdata/services.json (default and custom protocols);
#  6. the k8srequiredpdb Rego (PDBs as data.inventory) and `policy-check pdb`
#     give the same verdicts and messages on the kubectl sample
#     policies/testdata/workloads.json and on seeded random corpora.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"

opa="$ROOT/policies/tools/opa_driver.py"
policy_check="${KL_BIN_DIR:-$(bin_dir)}/policy-check"
[[ -x $policy_check ]] || { log "policy-check not built: run swift build first"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

log "policy: Rego tests (OPA 1.20)"
python3 "$opa" test policies

log "policy: templates embed src.rego"
python3 "$opa" check-template policies/istio-port-names/template.yaml policies/istio-port-names/src.rego
python3 "$opa" check-template policies/pdb-required/template.yaml policies/pdb-required/src.rego

log "policy: coverage gate on OPA's own report"
python3 "$opa" test --coverage policies >"$work/coverage.json"
out="$("$policy_check" coverage --report "$work/coverage.json" policies)"
echo "$out"
[[ $out == "coverage: 100.0% "* ]] || { log "coverage is not 100 %"; exit 1; }
for f in istio-port-names/src.rego pdb-required/src.rego; do  # both policies are in the report
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))["files"]; f=[k for k in d if k.endswith(sys.argv[2])]; assert f and d[f[0]]["coverage"] == 100, (sys.argv[2], f)' \
    "$work/coverage.json" "$f"
done
"$policy_check" coverage --opa "$opa" --format json policies >"$work/gate.json"
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["passed"] and d["coverage"] == 100.0, d' "$work/gate.json"

log "policy: the gate fails when it should"
expect_exit() {  # expect_exit CODE PATTERN COMMAND...: exit status and output
  local want=$1 pattern=$2 rc=0; shift 2
  "$@" >"$work/out" 2>&1 || rc=$?
  if [[ $rc != "$want" ]] || ! grep -q -- "$pattern" "$work/out"; then
    log "expected exit $want and '$pattern' from: $*"; cat "$work/out"; exit 1
  fi
}
cp -r policies "$work/failing"
sed -i 's/count(violation) == 0 with input as review(\[{"name": "https", "port": 443}\])/count(violation) == 1 with input as review([{"name": "https", "port": 443}])/' \
  "$work/failing/istio-port-names/src_test.rego"
expect_exit 1 "test_exact_match_passes" "$policy_check" coverage --opa "$opa" "$work/failing"
cp -r policies "$work/untested"
printf 'package extra\n\nallow if input.user == "admin"\n' >"$work/untested/extra.rego"
expect_exit 1 "extra.rego: untested" "$policy_check" coverage --opa "$opa" "$work/untested"
cp -r policies "$work/uncovered"
printf '\nunused_rule if {\n\tinput.nothing == 1\n}\n' >>"$work/uncovered/istio-port-names/src.rego"
expect_exit 1 "src.rego:67-68" "$policy_check" coverage --opa "$opa" "$work/uncovered"

log "policy: Rego and policy-check agree on the shared corpus"
python3 "$opa" corpus policies/testdata/services.json "$policy_check"
python3 "$opa" corpus policies/testdata/services.json "$policy_check" --protocols HTTP,tcp,grpc-web

log "policy: k8srequiredpdb Rego and policy-check pdb agree"
python3 "$opa" pdb-corpus policies/testdata/workloads.json "$policy_check"
for seed in 1 2 3; do
  python3 "$opa" pdb-generate "$seed" 300 >"$work/pdb-$seed.json"
  python3 "$opa" pdb-corpus "$work/pdb-$seed.json" "$policy_check"
done
cp -r policies "$work/pdbfail"
sed -i 's/blocks_every_drain(spec) if scaled(spec.maxUnavailable, 1) == 0/blocks_every_drain(spec) if scaled(spec.maxUnavailable, 1) == -1/' \
  "$work/pdbfail/pdb-required/src.rego"
rc=0; (cd "$work/pdbfail" && python3 tools/opa_driver.py pdb-corpus "$ROOT/policies/testdata/workloads.json" "$policy_check") >"$work/out" 2>&1 || rc=$?
[[ $rc == 1 ]] && grep -q "only native: StatefulSet shop postgres" "$work/out" || { log "the comparison did not catch a changed Rego rule"; cat "$work/out"; exit 1; }
