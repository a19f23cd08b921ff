#!/usr/bin/env bash
# The built kube-leader against a deliberately broken API server
# (scripts/lib/hostile_server.py), one case per hostile mode, 8 at a time:
# exit code and message, no child without the lock, request rate within the
# retry period, CPU near zero while waiting, no crash, bounded memory.
# About 140 s (watch-silent-* run ~133 s beside the rest). One case: python3 scripts/lib/hostile.py --only NAME (--list).
# See docs/hostile-server.md.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
ensure_apt python3 python3
ensure_apt util-linux unshare   # dns-down: a private /etc/resolv.conf
KL_BIN_DIR="${KL_BIN_DIR:-$(bin_dir)}"
export KL_BIN_DIR
python3 scripts/lib/test_hostile.py   # the checks themselves fail when they must
python3 scripts/lib/hostile.py --jobs 8
