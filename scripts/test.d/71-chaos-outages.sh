#!/usr/bin/env bash
# --on-loss standby through whole-API outages: two 8 s outages
# (503, then hanging requests) on 3 candidates; no kube-leader may exit, each
# outage must be recovered within lease + retry of its end, 0 overlaps. Then
# the detector's own check: with --on-loss exit the same outage makes the
# leader exit 3, and the run must count that exit. About 60 s.
# Full run: scripts/chaos --outages 6 --outage-seconds 30 --on-loss standby (docs/proof.md)
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
ensure_apt python3 python3

out="$(scripts/chaos --outages 2 --outage-seconds 8 --on-loss standby --candidates 3 --calm 6 --seed 4 --lock-kind lease)"
echo "$out"
grep -q "result=pass .*kube_leader_exits=0 " <<<"$out" || { log "FAIL: --on-loss standby through outages"; exit 1; }
grep -q "outages_that_stopped_the_leader=2 " <<<"$out" || { log "FAIL: the outages did not stop the leader (the check would prove nothing)"; exit 1; }
log "ok: --on-loss standby rides out whole-API outages without an exit"

out="$(scripts/chaos --outages 1 --outage-seconds 5 --on-loss exit --candidates 2 --calm 5 --seed 5 --lock-kind configmap)"
echo "$out"
grep -Eq "kube_leader_exits=[1-9].* exits=3:" <<<"$out" || { log "FAIL: with --on-loss exit the outage mode did not see the leader exit 3"; exit 1; }
log "ok: the outage mode counts exits (--on-loss exit: the leader exits 3)"
