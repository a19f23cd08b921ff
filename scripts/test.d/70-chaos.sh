#!/usr/bin/env bash
# A short chaos soak per lock kind (fixed seeds): faults for 30 s each, then
# the calm check. Fails on any overlap of two leaders' children or on a
# leaderless gap longer than lease + retry after the faults stop. First, the
# detector itself must catch candidates that do overlap (each on its own lock).
# Then the network-namespace checks (root): the cuts of klharness/netns.py
# on the real kernel, and a 45 s soak with every replica in its own namespace
# (silent cuts by blackhole routes among the faults), after which no
# namespace of the run may be left. About 3 min in all.
# Longer runs: scripts/chaos --seconds 600 --seed 1 [--netns]  (docs/proof.md)
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
python3 -m unittest -q klharness.test_chaos   # the overlap and gap arithmetic, fault selection

work="$(mktemp -d)"
if scripts/chaos --seconds 3 --candidates 3 --calm 2 --split-locks --workdir "$work" >"$work.out" 2>&1; then
  cat "$work.out"
  log "FAIL: scripts/chaos did not report the overlap of candidates on separate locks"; exit 1
fi
grep -q "result=FAIL .*overlaps=[1-9]" "$work.out" || { cat "$work.out"; log "FAIL: the self-check failed for another reason"; exit 1; }
rm -rf "$work" "$work.out"
log "ok: the chaos detector reports overlapping children"

scripts/chaos --seconds 30 --seed 1 --lock-kind configmap
scripts/chaos --seconds 30 --seed 2 --lock-kind lease

# Network namespaces (CI runs as root): the cuts do what they claim, silently.
python3 -m unittest -q klharness.test_netns
scripts/chaos --netns --seconds 45 --seed 3 --candidates 3 --lock-kind lease
left="$(python3 -c 'from klharness import netns; print(" ".join(netns.stale_namespaces()))')"
[[ -z $left ]] || { log "FAIL: network namespaces left behind: $left"; exit 1; }
log "ok: no network namespace left behind"
