#!/usr/bin/env bash
# A short chaos soak per lock kind (fixed seeds): faults for 30 s each, then
# the calm check. Fails on any overlap of two leaders' children or on a
# leaderless gap longer than lease + retry after the faults stop.
# About 80 s in all. Longer runs: scripts/chaos --seconds 600 --seed 1
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
ensure_apt python3 python3
python3 scripts/lib/test_chaos.py   # the overlap and gap arithmetic
scripts/chaos --seconds 30 --seed 1 --lock-kind configmap
scripts/chaos --seconds 30 --seed 2 --lock-kind lease
