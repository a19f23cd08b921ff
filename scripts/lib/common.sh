# Shared by scripts/*: repo root, the Python harness's path, provisioning
# (scripts/lib/provision.sh), the static build's library check, build paths.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT
export PATH="/opt/swift/usr/bin:$PATH"
# The Python harness is the package scripts/lib/klharness, its programs run as
# `python3 -m klharness.NAME`; node-lifecycle's AWS doubles
# (Tests/NodeLifecycleTests/Support) are imported by nodescale and binary_e2e.
case ":${PYTHONPATH:-}:" in
  *":$ROOT/scripts/lib:"*) ;;
  *) export PYTHONPATH="$ROOT/scripts/lib:$ROOT/Tests/NodeLifecycleTests/Support${PYTHONPATH:+:$PYTHONPATH}";;
esac

log() { printf '==> %s\n' "$*" >&2; }

# shellcheck source=scripts/lib/provision.sh
source "$ROOT/scripts/lib/provision.sh"

# Current security fixes for what a static build links in: a
# static binary never gets the distribution's later updates, so it must be
# built from the newest package the sources offer. ensure_current_static_libs
# refreshes the package lists, upgrades these packages to the newest version
# (upgrade first: a build should just work with today's fixes), then fails,
# naming both versions, if one is still older than the newest offered (a
# held or pinned package, a failed download): never ship a known-fixed hole
# silently. `openssl` (the command) is upgraded with them so tests can ask
# the same Debian version. KL_SKIP_APT_REFRESH=1 skips `apt-get update` (no
# network); the check then uses the package lists as they are, and
# scripts/release refuses it.
STATIC_LIB_PACKAGES=(libssl-dev libc6-dev)
# check_newest PACKAGE INSTALLED NEWEST: exit 1 with both versions when INSTALLED < NEWEST.
check_newest() {
  local pkg=$1 installed=$2 newest=$3
  if [[ -z $installed ]]; then
    log "ERROR: $pkg is not installed; the static build links it"; return 1
  fi
  if [[ -n $newest ]] && dpkg --compare-versions "$installed" lt "$newest"; then
    log "ERROR: $pkg $installed is installed but the package sources offer $newest (security fixes):" \
        "the static binaries would embed the older one. Upgrade it (apt-get install $pkg=$newest) and build again."
    return 1
  fi
  return 0
}
# newest_apt_version PACKAGE: the newest version any configured source offers.
newest_apt_version() {
  local v newest=""
  while read -r v; do
    [[ -z $newest ]] || dpkg --compare-versions "$v" gt "$newest" && newest=$v
  done < <(apt-cache madison "$1" 2>/dev/null | awk -F'|' -v p="$1" '{gsub(/ /, "", $1); gsub(/ /, "", $2); if ($1 == p) print $2}')
  printf '%s\n' "$newest"
}
ensure_current_static_libs() {
  local apt=(env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 -qq)
  [[ $(id -u) == 0 ]] || apt=(sudo -n "${apt[@]}")
  if [[ ${KL_SKIP_APT_REFRESH:-0} == 1 ]]; then
    log "KL_SKIP_APT_REFRESH=1: not refreshing the package lists (not for releases)"
  elif ! "${apt[@]}" update >/dev/null; then
    log "ERROR: apt-get update failed, so the newest security release of ${STATIC_LIB_PACKAGES[*]} is unknown;" \
        "fix the package sources or set KL_SKIP_APT_REFRESH=1 to build against the lists as they are"
    return 1
  fi
  apt_updated=1
  "${apt[@]}" install -y --no-install-recommends "${STATIC_LIB_PACKAGES[@]}" openssl >/dev/null \
    || { log "ERROR: could not install the newest ${STATIC_LIB_PACKAGES[*]}"; return 1; }
  local p ok=0
  for p in "${STATIC_LIB_PACKAGES[@]}"; do
    check_newest "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null)" "$(newest_apt_version "$p")" || ok=1
  done
  return $ok
}

# static_binary NAME: the path dist/NAME-linux-ARCH (relative to $ROOT), built
# first by scripts/build-static NAME when it is missing.
static_binary() {
  local f="dist/$1-linux-$(uname -m)"
  [[ -f $ROOT/$f ]] || (cd "$ROOT" && scripts/build-static "$1" >&2)
  printf '%s\n' "$f"
}

# The folder holding debug binaries (kube-leader, kube-apiserver-fake, ...).
bin_dir() { (cd "$ROOT" && swift build --show-bin-path "$@"); }
