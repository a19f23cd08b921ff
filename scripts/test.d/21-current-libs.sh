#!/usr/bin/env bash
# The security-fix gate of the static build (docs/release.md), against a package
# archive that offers a newer OpenSSL than the one installed (stand-ins for
# apt-get and apt-cache on PATH: the archive has libssl-dev 3.0.99-1, the
# upgrade does not take, as with a held package or a failed download):
# - ensure_current_static_libs (scripts/build-static's first step) fails and
#   names both versions; with the real archive it passes (the machine is
#   current: build-static upgraded it);
# - scripts/lib/klharness/sbom.py (its last step) refuses a binary whose OpenSSL is
#   older than the newest offered, naming both, and accepts it otherwise.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
arch="$(uname -m)"
static_binary kube-leader >/dev/null
work="$(mktemp -d /tmp/kl-libs.XXXXXX)"
trap 'rm -rf "$work"' EXIT
fail=0
bad() { log "FAIL: $*"; fail=1; }

installed=$(dpkg-query -W -f='${Version}' libssl-dev)
newer="3.0.99-1"
mkdir -p "$work/bin"
cat >"$work/bin/apt-get" <<'SH'
#!/bin/sh
# The upgrade "succeeds" without changing anything (held package).
exit 0
SH
cat >"$work/bin/apt-cache" <<SH
#!/bin/sh
# madison: the real answer plus a newer libssl-dev in the archive.
if [ "\$1" = madison ] && [ "\$2" = libssl-dev ]; then
  echo " libssl-dev | $newer | http://deb.debian.org/debian-security bookworm-security/main amd64 Packages"
fi
exec /usr/bin/apt-cache "\$@"
SH
chmod +x "$work/bin/apt-get" "$work/bin/apt-cache"

# 1. The pre-build gate.
set +e
msg=$(PATH="$work/bin:$PATH" bash -c 'source scripts/lib/common.sh; ensure_current_static_libs' 2>&1)
rc=$?
set -e
if [[ $rc == 0 ]]; then
  bad "ensure_current_static_libs passed although the archive offers libssl-dev $newer and $installed is installed"
elif [[ $msg != *"libssl-dev $installed is installed"*"offer $newer"* ]]; then
  bad "ensure_current_static_libs failed without naming both versions: $msg"
else
  log "ok: an outdated libssl-dev stops the build: $(grep -m1 ERROR <<<"$msg")"
fi
if ! msg=$(KL_SKIP_APT_REFRESH=1 bash -c 'source scripts/lib/common.sh; ensure_current_static_libs' 2>&1); then
  bad "ensure_current_static_libs fails with the real archive: $msg"
fi

# 2. The post-build check, on the real binary.
mkdir -p "$work/dist"
cp "dist/kube-leader-linux-$arch" "$work/dist/"
set +e
msg=$(PATH="$work/bin:$PATH" python3 -m klharness.sbom "$work/dist" "$arch" kube-leader 2>&1)
rc=$?
set -e
inside=$("dist/kube-leader-linux-$arch" --version | sed -n 's/^openssl: OpenSSL \([^ ]*\).*/\1/p')
if [[ $rc == 0 ]]; then
  bad "sbom.py accepted kube-leader with OpenSSL $inside although the archive offers $newer"
elif [[ $msg != *"OpenSSL $inside, older than"*"($newer)"* ]]; then
  bad "sbom.py failed without naming both versions: $msg"
else
  log "ok: a binary with an older OpenSSL is refused: $msg"
fi
python3 -m klharness.sbom "$work/dist" "$arch" kube-leader || bad "sbom.py refuses the binary with the real archive"
[[ -f $work/dist/kube-leader-linux-$arch.cdx.json ]] || bad "sbom.py wrote no SBOM"
[[ $fail == 0 ]] && log "ok: the static build's security-fix gate works before and after the build"
exit $fail
