#!/usr/bin/env bash
# Reproducible kube-leader: a second scripts/build-static run, from a clone in
# another directory (a longer path, another time), must give a stripped
# kube-leader byte-identical to dist/kube-leader-linux-ARCH (built from $ROOT by
# 20-static.sh, or here when missing). Only kube-leader is rebuilt (one static
# release build, 1.5-4 min on 2 cores).
# With a clean work tree the second copy is a `git clone` and works out its
# commit itself; with uncommitted changes it is a copy of the work tree
# (tracked and untracked, not ignored, files) told the commit the first build
# embedded, so the comparison still covers the changes.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
arch="$(uname -m)"
ref="$(static_binary kube-leader)"

work="$(mktemp -d /tmp/kl-repro.XXXXXX)"
trap 'rm -rf "$work"' EXIT
copy="$work/a-clone-in-a-directory-with-a-longer-name/kube-leader"
mkdir -p "$(dirname "$copy")"
version="$("$ref" --version)"
ref_commit="$(sed -n 's/.*(source commit \(.*\))$/\1/p' <<<"$version")"
[[ -n $ref_commit ]] || { log "FAIL: $ref --version does not name its source commit: $version"; exit 1; }
if [[ -z $(git status --porcelain 2>/dev/null) && $ref_commit != *-dirty && $ref_commit != unknown ]]; then
  log "clean tree: git clone into $copy, at $ref_commit"
  git clone -q --no-local "$ROOT" "$copy"
  git -C "$copy" checkout -q --detach "$ref_commit"
  unset KL_SOURCE_COMMIT
else
  log "uncommitted changes: copying the work tree into $copy (commit $ref_commit)"
  mkdir -p "$copy"
  git ls-files -z -co --exclude-standard | grep -zv '^dist/' | (cd "$ROOT" && xargs -0 cp --parents -t "$copy")
  export KL_SOURCE_COMMIT="$ref_commit"
fi
sleep 1  # a different second, so an embedded time could not match by chance
(cd "$copy" && scripts/build-static kube-leader) >"$work/build.log" 2>&1 || { tail -30 "$work/build.log"; exit 1; }
other="$copy/dist/kube-leader-linux-$arch"
if cmp -s "$ref" "$other"; then
  log "ok: kube-leader is byte-identical from $ROOT and $copy ($(sha256sum "$ref" | cut -c1-16)…, $version)"
  # Its SBOM too (no timestamp, no random serial number).
  if ! cmp -s "$ref.cdx.json" "$other.cdx.json"; then
    log "FAIL: the SBOMs of the two identical binaries differ"; diff "$ref.cdx.json" "$other.cdx.json" | head -10; exit 1
  fi
  exit 0
fi
log "FAIL: kube-leader differs between $ROOT and $copy (kept as .build-static/kube-leader.other)"
cp "$other" .build-static/kube-leader.other
cmp "$ref" "$other" | head -3 || true
# Which sections differ, and does either binary embed its directory?
python3 - "$ref" "$other" <<'PY'
import collections, re, subprocess, sys
a, b = (open(f, "rb").read() for f in sys.argv[1:3])
out = subprocess.run(["readelf", "-SW", sys.argv[1]], capture_output=True, text=True).stdout
secs = [(m[0], int(m[1], 16), int(m[2], 16)) for m in
        re.findall(r"\]\s+(\S+)\s+\S+\s+[0-9a-f]+\s+([0-9a-f]+)\s+([0-9a-f]+)", out)]
diff = collections.Counter()
for i in range(min(len(a), len(b))):
    if a[i] != b[i]:
        diff[next((s for s, off, size in secs if off <= i < off + size), "outside sections")] += 1
print("sizes %d and %d; differing bytes by section: %s" % (len(a), len(b), dict(diff)))
PY
strings -n 12 "$ref" | grep -F "$ROOT" | head -5 && log "(the first binary embeds its directory)"
strings -n 12 "$other" | grep -F "$copy" | head -5 && log "(the second binary embeds its directory)"
exit 1
