#!/usr/bin/env bash
# kube-leader's own modules are built without reflection metadata
# (-disable-reflection-metadata in Package.swift's `lean`). A type
# without `description` then interpolates as `Kind(rawValue: 1)`, `Kind()`,
# `Kind` or `KLCore.Kind` instead of its case name or fields. This test runs
# the static binaries (dist/, built by 20-static.sh, or here when missing)
# the way people see them and fails on any such text:
# - `--help` (and subcommand help) and `--version` of every binary;
# - bad usage of every binary (the error texts);
# - kube-leader outside a cluster (debug logs, text and JSON), against an API
#   server that refuses connections and with an unreadable token and CA file;
# - the demo (klharness/demo.py) with the static kube-leader against kube-apiserver-fake
#   (election, hand-over, failover, label, Events, /metrics: logs of 3+ replicas).
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"
arch="$(uname -m)"
[[ -f dist/kube-leader-linux-$arch ]] || scripts/build-static
work="$(mktemp -d /tmp/kl-reflection.XXXXXX)"
[[ -n ${KL_KEEP:-} ]] || trap 'rm -rf "$work"' EXIT  # KL_KEEP=1 keeps what was collected
out="$work/all.txt"
: >"$out"

# What un-reflected values look like (module names: kube-leader's lean modules).
pattern='rawValue:|\b(KLCore|KLSystem|KLProcess|KLTransport|KLKube|KLLeader|KubeLeaderMain)\.[A-Z]|\b[A-Z][A-Za-z]+\(\)'
# The matcher must catch what the compiler prints (a test that cannot fail is no test).
for sample in 'lock kind Kind(rawValue: 1)' 'role: KLCore.Role' 'config Timing()'; do
  grep -qE "$pattern" <<<"$sample" || { log "FAIL: the pattern misses '$sample'"; exit 1; }
done

run() {  # run LABEL COMMAND...: append the command's stdout and stderr (any exit code) to $out
  local label=$1; shift
  { echo "### $label"; timeout 20 "$@" 2>&1 </dev/null || true; } >>"$out"
}
bin() { echo "dist/$1-linux-$arch"; }
kl=$(bin kube-leader)
cluster=(env -u KUBERNETES_SERVICE_HOST -u KUBERNETES_SERVICE_PORT)

run "kube-leader --help" "$kl" --help
run "kube-leader --version" "$kl" --version
run "kube-leader no arguments" "$kl"
run "kube-leader bad lock kind" "${cluster[@]}" "$kl" --lock-kind nope my-lock -- /bin/true
run "kube-leader bad duration" "${cluster[@]}" "$kl" --lease-duration soon my-lock -- /bin/true
run "kube-leader bad durations" "${cluster[@]}" "$kl" --lease-duration 2s --renew-deadline 5s my-lock -- /bin/true
run "kube-leader bad log level" "${cluster[@]}" "$kl" --log-level chatty my-lock -- /bin/true
run "kube-leader unknown option" "${cluster[@]}" "$kl" --frobnicate my-lock -- /bin/true
run "kube-leader command missing" "${cluster[@]}" "$kl" my-lock -- /nonexistent/cmd
for fmt in text json; do
  run "kube-leader outside a cluster ($fmt)" "${cluster[@]}" "$kl" --log-level debug --log-format "$fmt" my-lock -- /bin/sh -c 'exit 3'
  run "kube-leader child killed ($fmt)" "${cluster[@]}" "$kl" --log-level debug --log-format "$fmt" my-lock -- /bin/sh -c 'kill -9 $$'
done
echo token >"$work/token"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# Any readable CA bundle will do: nothing listens on the port.
ca="$work/ca.crt"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$ca" -days 1 -subj /CN=reflection-test 2>/dev/null
for kind in configmap lease; do
  run "kube-leader API refused ($kind)" "${cluster[@]}" timeout -s TERM 6 "$kl" --log-level debug --log-format text \
    --lock-kind "$kind" --api-server "https://127.0.0.1:$port" --token-file "$work/token" --ca-file "$ca" \
    --namespace default my-lock -- /bin/true
done
run "kube-leader token unreadable" "${cluster[@]}" "$kl" --api-server "https://127.0.0.1:$port" \
  --token-file "$work/none" --namespace default my-lock -- /bin/true
run "kube-leader CA unreadable" "${cluster[@]}" "$kl" --api-server "https://127.0.0.1:$port" \
  --token-file "$work/token" --ca-file "$work/none" --namespace default my-lock -- /bin/true
for p in policy-check pager-tester node-lifecycle; do
  f=$(bin "$p"); [[ -f $f ]] || continue
  run "$p --help" "$f" --help
  run "$p --version" "$f" --version
  run "$p bad usage" "$f" --frobnicate
  run "$p no arguments" "$f"
done
f=$(bin node-lifecycle)
if [[ -f $f ]]; then
  run "node-lifecycle drain --help" "$f" drain --help
  run "node-lifecycle ready --help" "$f" ready --help
  run "node-lifecycle drain bad" "$f" drain --queue-url nope
fi

# The demo: real elections, hand-over and failover, logs of every replica.
bins="$work/bin"
mkdir -p "$bins"
debug_bins="${KL_BIN_DIR:-$(bin_dir)}"
[[ -x $debug_bins/kube-apiserver-fake ]] || swift build --product kube-apiserver-fake -q
ln -s "$ROOT/$kl" "$bins/kube-leader"
ln -s "$debug_bins/kube-apiserver-fake" "$bins/kube-apiserver-fake"
demo_out="$work/demo.txt"
if ! KL_BIN_DIR="$bins" TMPDIR="$work" timeout 180 python3 -m klharness.demo >"$demo_out" 2>&1; then
  tail -20 "$demo_out"; log "FAIL: the demo with the static kube-leader failed"; exit 1
fi
{ echo "### demo"; cat "$demo_out"; } >>"$out"
logs=$(sed -n 's/^All logs: //p' "$demo_out")
[[ -d $logs ]] || { log "FAIL: the demo names no log directory"; exit 1; }
n_logs=0
while IFS= read -r -d '' l; do
  { echo "### demo log $l"; cat "$l"; } >>"$out"; n_logs=$((n_logs + 1))
done < <(find "$logs" -name '*.log' -print0)
(( n_logs >= 3 )) || { log "FAIL: the demo left $n_logs logs, expected the replicas' and the fake's"; exit 1; }

lines=$(grep -cv '^###' "$out")
(( lines > 200 )) || { log "FAIL: only $lines lines of output collected; the commands did not run"; exit 1; }
if grep -nE "$pattern" "$out" >"$work/hits"; then
  log "FAIL: text that depends on reflection metadata (give the type a description):"
  head -20 "$work/hits" >&2
  exit 1
fi
log "ok: $lines lines of help, version, error texts and logs (demo: $n_logs logs), none prints a type by reflection"
