#!/usr/bin/env bash
# The GitHub workflows: actionlint (with shellcheck on every run: script) is
# clean; every action is pinned by a full commit SHA; the release assets are
# named as Dockerfile.example downloads them; CI runs what .ci/run runs.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
log "actionlint: $(actionlint -version | head -1)"
actionlint -no-color .github/workflows/*.yml

fail=0
while IFS= read -r line; do
  ref=${line#*uses: }; ref=${ref%% *}
  [[ $ref =~ ^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@[0-9a-f]{40}$ ]] || { log "FAIL: not pinned by a full commit SHA: $line"; fail=1; }
done < <(grep -h -E '^\s*(-\s+)?uses:' .github/workflows/*.yml)

# Dockerfile.example downloads .../v${KUBE_LEADER_VERSION}/kube-leader-linux-${KUBE_LEADER_ARCH};
# release.yml must publish exactly that name for both architectures.
grep -q 'releases/download/v${KUBE_LEADER_VERSION}/kube-leader-linux-${KUBE_LEADER_ARCH}' Dockerfile.example \
  || { log "FAIL: Dockerfile.example no longer downloads kube-leader-linux-\${KUBE_LEADER_ARCH}"; fail=1; }
for arch in x86_64 aarch64; do
  grep -q "arch: $arch" .github/workflows/release.yml || { log "FAIL: release.yml builds no $arch"; fail=1; }
done
grep -q 'dist/\*-linux-\${{ matrix.arch }}' .github/workflows/release.yml \
  || { log "FAIL: release.yml does not upload dist/NAME-linux-ARCH as scripts/build-static names them"; fail=1; }
grep -q 'out="dist/$p-linux-$arch"' scripts/build-static \
  || { log "FAIL: scripts/build-static no longer writes dist/NAME-linux-ARCH"; fail=1; }
grep -q '\.ci/run' .github/workflows/ci.yml || { log "FAIL: ci.yml does not run .ci/run"; fail=1; }
[[ $fail == 0 ]] && log "ok: workflows lint clean, actions pinned, asset names match Dockerfile.example"
exit $fail
