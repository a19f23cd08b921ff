#!/usr/bin/env bash
# The built kube-leader against a deliberately broken API server
# (scripts/lib/klharness/hostile_server.py), one case per hostile mode, 8 at a time:
# exit code and message, no child without the lock, request rate within the
# retry period, CPU near zero while waiting, no crash, bounded memory.
# About 140 s (watch-silent-* run ~133 s beside the rest). One case: python3 -m klharness.hostile --only NAME (--list).
# See docs/hostile-server.md.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
KL_BIN_DIR="${KL_BIN_DIR:-$(bin_dir)}"
export KL_BIN_DIR
python3 -m unittest -q klharness.test_hostile   # the checks themselves fail when they must
python3 -m klharness.hostile --jobs 8
