# Shared by scripts/*: repo root, dependency installation, build paths.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export ROOT
export PATH="/opt/swift/usr/bin:$PATH"

log() { printf '==> %s\n' "$*" >&2; }

apt_updated=0
# ensure_apt PACKAGE [COMMAND-OR-FILE]: install a Debian package when the
# command (or file) it provides is missing.
ensure_apt() {
  local pkg=$1 probe=${2:-$1}
  if [[ $probe == /* ]]; then [[ -e $probe ]] && return 0; else command -v "$probe" >/dev/null 2>&1 && return 0; fi
  log "installing $pkg (apt-get)"
  if [[ $apt_updated == 0 ]]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || true
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg" >/dev/null
}

# ensure_pip MODULE PACKAGE [pip args...]: install a PyPI package when the
# Python module is not importable.
ensure_pip() {
  local module=$1 pkg=$2; shift 2
  python3 -c "import $module" >/dev/null 2>&1 && return 0
  log "installing $pkg (pip)"
  python3 -m pip install -q --disable-pip-version-check "$@" "$pkg" >/dev/null
}

ensure_build_deps() {
  ensure_apt libssl-dev /usr/include/openssl/ssl.h
  ensure_apt openssl openssl
  ensure_apt file file
}

# The folder holding debug binaries (kube-leader, kube-apiserver-fake, ...).
bin_dir() { (cd "$ROOT" && swift build --show-bin-path "$@"); }
