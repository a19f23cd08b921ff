#!/usr/bin/env bash
# pager-tester beyond the Swift tests:
#  1. cron parity with Ruby fugit (Debian ruby-fugit, the gem the original
#     service used): `pager-tester cron` and fugit give the same fire times
#     for every case below, except the documented deliberate difference
#     (a local time repeated by fall-back fires once; 50-pager.rb applies it);
#  2. the deploy/pager-tester manifests parse and wire pager-tester under
#     kube-leader with the lock RBAC, the people ConfigMap and the metrics port;
#  3. `next` warns when a fire time falls into a DST gap in the coming year.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"

pager_tester="${KL_BIN_DIR:-$(bin_dir)}/pager-tester"
[[ -x $pager_tester ]] || { log "pager-tester not built: run swift build first"; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
count=6

log "pager: cron fire times against Ruby fugit"
cat >"$work/cases" <<'CASES'
55 6 * * 2#1 America/Los_Angeles|2026-01-01T00:00:00Z
55 6 * * tue#1 America/Los_Angeles|2026-10-01T00:00:00Z
30 2 * * * America/New_York|2026-03-07T00:00:00Z
30 1 * * * America/New_York|2026-10-31T00:00:00Z
*/20 1 * * * America/New_York|2026-11-01T04:00:00Z
0 9 * * mon-fri Europe/Berlin|2026-03-27T00:00:00Z
0 12 * * * Australia/Lord_Howe|2026-10-03T00:00:00Z
15 2 * * * Australia/Lord_Howe|2026-10-02T12:00:00Z
45 1 * * * Australia/Lord_Howe|2026-04-03T12:00:00Z
0 12 1 7 * America/Los_Angeles|2040-01-01T00:00:00Z
*/20 9-10 * jan,jul mon|2026-01-01T00:00:00Z
10-30/10,45/5 0 1 1 *|2026-01-01T00:00:00Z
0 0 * * fri-mon|2026-01-01T00:00:00Z
0 12 L * *|2026-02-01T00:00:00Z
0 0 -2 * *|2028-02-01T00:00:00Z
0 9 * * 5#-1|2026-01-01T00:00:00Z
0 9 * * fri#L|2026-01-01T00:00:00Z
0 8 1 * fri|2026-05-25T00:00:00Z
0 8 */2 * fri|2026-05-25T00:00:00Z
0 0 * * 7|2026-01-01T00:00:00Z
0 0 29 2 *|2026-01-01T00:00:00Z
0 0 * * sun-sat|2026-01-01T00:00:00Z
@weekly|2026-01-01T00:00:00Z
@noon|2026-01-01T00:00:00Z
@hourly|2026-07-01T00:00:00Z
@monthly|2026-07-01T00:00:00Z
@annually|2026-07-01T00:00:00Z
15 0 9 * * *|2026-01-01T00:00:00Z
*/15 55 6 * * 2#1 America/Los_Angeles|2026-03-01T00:00:00Z
30 30 2 * * * America/New_York|2026-03-07T00:00:00Z
0,30 30 1 * * * America/New_York|2026-10-31T12:00:00Z
0 9 * * tue%2|2026-01-01T00:00:00Z
0 9 * * tue%2+1 Europe/Berlin|2026-01-01T00:00:00Z
0 0 * * tue%2 America/New_York|2026-06-01T00:00:00Z
0 30 0 * * mon%3+2 America/Los_Angeles|2026-03-01T00:00:00Z
0 9 * * mon%2,fri|2026-01-01T00:00:00Z
30 2 * * 0#2 America/New_York|2027-01-01T00:00:00Z
0 3 * * * Europe/London|2026-03-28T00:00:00Z
30 0 * * * America/Havana|2026-03-07T00:00:00Z
0 0 * * * America/Santiago|2026-09-05T00:00:00Z
0 9 * * 1-5|2026-01-01T00:00:00Z
5 4 * * sun|2026-01-01T00:00:00Z
CASES
ruby scripts/test.d/50-pager.rb "$count" <"$work/cases" >"$work/fugit"
failures=0
while IFS='|' read -r expr from want; do
  got="$("$pager_tester" cron "$expr" --from "$from" --count "$count" 2>/dev/null | tr '\n' ' ' | sed 's/ $//')"
  if [[ $got != "$want" ]]; then
    log "differs from fugit: '$expr' from $from"
    echo "  fugit:        $want"
    echo "  pager-tester: $got"
    failures=$((failures + 1))
  fi
done <"$work/fugit"
cases=$(wc -l <"$work/fugit")
[[ $cases -ge 40 ]] || { log "only $cases fugit cases ran"; exit 1; }
[[ $failures == 0 ]] || { log "$failures of $cases cron cases differ from fugit"; exit 1; }
echo "pager: $cases cron cases agree with fugit $(ruby -e 'require "fugit"; print Fugit::VERSION')"

log "pager: next warns about a fire time in a DST gap"
cat >"$work/people.yaml" <<'YAML'
- name: Jane
  id: PJANE
  cron: 30 2 * * 0#2 America/New_York
YAML
"$pager_tester" next "$work/people.yaml" --from 2027-01-01T00:00:00Z --count 2 >"$work/next.out" 2>"$work/next.err"
grep -q '"msg":"fire time falls into a daylight-saving gap"' "$work/next.err"
grep -q '"local_time":"2027-03-14T02:30:00"' "$work/next.err"
[[ $(grep -c 'daylight-saving gap' "$work/next.err") == 1 ]] || { log "expected exactly one DST gap warning"; cat "$work/next.err"; exit 1; }

log "pager: deploy/pager-tester manifests"
python3 - deploy/pager-tester <<'PY'
import sys, glob, yaml
docs = []
for f in sorted(glob.glob(sys.argv[1] + "/*.yaml")):
    docs += [(f, d) for d in yaml.safe_load_all(open(f)) if d]
kinds = {}
for f, d in docs:
    kinds.setdefault(d["kind"], []).append(d)
for k in ["Deployment", "Secret", "ConfigMap", "ServiceAccount", "Role", "RoleBinding", "PrometheusRule"]:
    assert k in kinds, "deploy/pager-tester has no " + k
dep = kinds["Deployment"][0]
spec = dep["spec"]["template"]["spec"]
c = spec["containers"][0]
cmd = c.get("command", []) + c.get("args", [])
assert cmd[:4] == ["/kube-leader", "pager-tester", "--", "/pager-tester"] and cmd[4] == "run", cmd
assert dep["spec"]["replicas"] >= 2, "a spare replica takes over"
env = {e["name"]: e for e in c["env"]}
for name in ["POD_NAME", "POD_NAMESPACE", "PAGERDUTY_TOKEN", "SERVICE_ID", "SUBDOMAIN", "PAGERDUTY_FROM", "PAGER_TESTER_METRICS_ADDR"]:
    assert name in env, "container env lacks " + name
assert env["PAGERDUTY_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == kinds["Secret"][0]["metadata"]["name"]
people = kinds["ConfigMap"][0]
mounted = {v["name"]: v for v in spec["volumes"]}
assert any(v.get("configMap", {}).get("name") == people["metadata"]["name"] for v in mounted.values()), "people ConfigMap not mounted"
assert cmd[5].startswith("/etc/pager-tester/"), cmd
role = kinds["Role"][0]
lock_rules = [r for r in role["rules"] if "pager-tester" in r.get("resourceNames", [])]
assert lock_rules and set(lock_rules[0]["verbs"]) >= {"get", "update", "watch"}, role
assert any("create" in r["verbs"] for r in role["rules"]), role
assert dep["spec"]["template"]["spec"]["serviceAccountName"] == kinds["ServiceAccount"][0]["metadata"]["name"]
rule = kinds["PrometheusRule"][0]["spec"]["groups"][0]["rules"]
exprs = " ".join(r["expr"] for r in rule if "alert" in r)
assert "pager_tester_last_verdict" in exprs and "acknowledged|delivered" in exprs, exprs
assert "pager_tester_pages_skipped_total" in exprs, exprs
print("pager: %d manifests wire pager-tester under kube-leader" % len(docs))
PY
