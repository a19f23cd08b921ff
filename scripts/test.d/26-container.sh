#!/usr/bin/env bash
# The container contract, as a container runtime runs kube-leader: the static
# kube-leader (dist/, from 20-static.sh) as PID 1 of a new PID namespace in a
# root holding only itself, a static busybox as the application, /proc and the
# service-account files; ENTRYPOINT and CMD read from Dockerfile.example (both
# forms). Leads in the namespace from the mounted file, reaps orphans, returns
# the application's code, forwards SIGTERM from outside and releases the lock.
# Details: scripts/lib/klharness/container_contract.py. About 10 s.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
kl="$(static_binary kube-leader)"
bins="${KL_BIN_DIR:-$(bin_dir)}"
[[ -x $bins/kube-apiserver-fake ]] || { log "kube-apiserver-fake not built: run swift build first"; exit 1; }
python3 -m klharness.container_contract "$kl" "$bins" Dockerfile.example
