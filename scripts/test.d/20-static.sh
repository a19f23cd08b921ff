#!/usr/bin/env bash
# Static release binaries: scripts/build-static, then for each binary in dist/
# `file` must say "statically linked" and `--version` must run inside an
# empty root holding only the binary and /proc (the container contract: a
# static Swift binary needs /proc/self/exe). kube-leader must be there and
# within the limit of 11,500,000 bytes stripped, which keeps headroom
# under the project's budget of 12,000,000 (docs/release.md, "Size flags").
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"

scripts/build-static
arch="$(uname -m)"
budget=12000000   # the project's hard limit
limit=11500000    # enforced: the headroom below the budget
fail=0
bad() { log "FAIL: $*"; fail=1; }

[[ -f dist/kube-leader-linux-$arch ]] || bad "dist/kube-leader-linux-$arch was not built"
for p in kube-leader policy-check pager-tester node-lifecycle; do
  f="dist/$p-linux-$arch"
  if [[ ! -f $f ]]; then
    [[ $p == kube-leader ]] || log "WARNING: $p is missing from dist/ (build-static left it out); not checked"
    continue
  fi
  desc="$(file -b "$f")"
  [[ $desc == *"statically linked"* ]] || { bad "$f is not statically linked: $desc"; continue; }

  root="$(mktemp -d)"
  cp "$f" "$root/$p"
  mkdir "$root/proc"
  set +e
  out="$(unshare --mount --pid --fork --mount-proc=/proc --root "$root" "/$p" --version 2>&1)"
  rc=$?
  set -e
  rm -rf "$root"
  if [[ $rc != 0 || $out != *"$p"* ]]; then
    bad "$p --version in an empty root (only the binary and /proc) exited $rc: $out"
  else
    log "ok: $p is static and runs alone: $out"
  fi
done

size=$(stat -c %s "dist/kube-leader-linux-$arch" 2>/dev/null || echo 0)
if (( size > limit )); then
  bad "kube-leader is $size bytes stripped, $((size - limit)) over the limit of $limit bytes (the project's budget is $budget); a runtime library pulled in again is the usual cause (_StringProcessing: 1.25 MB, _Concurrency + libdispatch: 0.7 MB; see 'lean' in Package.swift), a size flag of scripts/build-static lost, or a large struct copied by value: build with -Xlinker -Map=FILE or nm --size-sort -S .build-static/release/kube-leader and look (docs/release.md, \"Size flags\")"
else
  log "ok: kube-leader is $size bytes stripped (limit $limit bytes, $((limit - size)) to spare; budget $budget)"
fi
exit $fail
