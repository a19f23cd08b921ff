#!/usr/bin/env bash
# node-lifecycle, black box:
#  1. deploy/node-lifecycle/ parses (YAML with CloudFormation tags, JSON);
#  2. the drain and ready binaries run against kube-apiserver-fake with
#     exactly the verbs of deploy/node-lifecycle/rbac.yaml, moto_server (SQS
#     with signature checking) and the signature-checking Query double.
set -euo pipefail
source "$(dirname "$0")/../lib/common.sh"
cd "$ROOT"

bin="${KL_BIN_DIR:-$(bin_dir)}"
for b in node-lifecycle kube-apiserver-fake; do
  [[ -x $bin/$b ]] || { log "$b not built: run swift build first"; exit 1; }
done

log "node-lifecycle: deploy/node-lifecycle manifests parse"
python3 - <<'PY'
import glob, json, yaml
class CFN(yaml.SafeLoader):
    pass
CFN.add_multi_constructor("!", lambda loader, suffix, node: None)
for path in sorted(glob.glob("deploy/node-lifecycle/*")):
    if path.endswith("Dockerfile"):
        text = open(path).read()
        assert 'ENTRYPOINT ["/kube-leader", "node-lifecycle-drain", "--"]' in text, path
        print("ok", path)
        continue
    with open(path) as f:
        if path.endswith(".json"):
            json.load(f)
        elif "cloudformation" in path:
            doc = yaml.load(f, Loader=CFN)
            policy = doc["Resources"]["NodeGroup"]["UpdatePolicy"]["AutoScalingRollingUpdate"]
            assert policy["WaitOnResourceSignals"] is True, path
        else:
            docs = [d for d in yaml.safe_load_all(f) if d]
            assert docs and all("kind" in d and "apiVersion" in d for d in docs), path
            if path.endswith("drain-deployment.yaml"):
                spec = docs[0]["spec"]["template"]["spec"]
                # It must never run on a booting or draining node: no tolerations.
                assert not spec.get("tolerations"), "drain Deployment tolerates " + str(spec.get("tolerations"))
                assert spec["containers"][0]["args"][:2] == ["/node-lifecycle", "drain"], path
                env = {e["name"] for e in spec["containers"][0]["env"]}
                assert {"POD_NAME", "POD_NAMESPACE"} <= env, "kube-leader needs POD_NAME and POD_NAMESPACE"
            if path.endswith("ready-daemonset.yaml"):
                init = docs[0]["spec"]["template"]["spec"]["initContainers"][0]
                assert init["command"] == ["/node-lifecycle"], path
    print("ok", path)
PY

log "node-lifecycle: binaries end to end with the RBAC of deploy/"
python3 Tests/NodeLifecycleTests/Support/binary_e2e.py "$bin" deploy/node-lifecycle/rbac.yaml

log "node-lifecycle: scale-in beyond --concurrency (scripts/node-scale, small case)"
# 6 nodes, 2 drains at a time, HeartbeatTimeout 3 s: the last actions wait
# several timeouts for a slot and must still be heartbeated and drained.
out=$(KL_BIN_DIR="$bin" scripts/node-scale --nodes 6 --concurrency 2 --heartbeat-timeout 3 --drain-seconds 2 --seed 7 2>&1)
echo "$out" | tail -2
line=$(echo "$out" | tail -1)
[[ $line == *" undrained_terminations=0 "* && $line == *" pdb_violations=0 "* && $line == *"completed=6 "* ]] \
  || { log "node-scale small case failed: $out"; exit 1; }
# The case only proves something if an action outlived HeartbeatTimeout.
ratio=$(echo "$out" | sed -n 's/.*= \([0-9.]*\) x HeartbeatTimeout.*/\1/p')
awk -v r="$ratio" 'BEGIN { exit !(r > 1.5) }' \
  || { log "no action waited longer than HeartbeatTimeout (ratio '$ratio'): the small case proves nothing"; exit 1; }

log "node-lifecycle: node-scale fails when heartbeats are missing (negative control)"
set +e
line=$(KL_BIN_DIR="$bin" scripts/node-scale --nodes 3 --concurrency 1 --heartbeat-timeout 2 --drain-seconds 1 --seed 7 \
  --extra-args "--heartbeat-interval 60s" 2>/dev/null | tail -1)
status=$?
set -e
echo "$line"
[[ $line == *"undrained_terminations=0 "* ]] && { log "node-scale did not notice missing heartbeats: $line"; exit 1; }
[[ $line == nodes=3* ]] || { log "node-scale negative control printed no result (status $status)"; exit 1; }
(( status == 1 )) || { log "node-scale exited $status, not 1, with undrained terminations"; exit 1; }

log "node-lifecycle: aws-node-termination-handler event mix on a shared queue (scripts/node-scale --mix, small case)"
# Hooks, spot warnings, scheduled changes, a state change, rebalance
# recommendations and another cluster's instances on the same queue, with
# --managed-tag (moto's EC2), the Kubernetes token bucket and webhooks.
line=$(KL_BIN_DIR="$bin" scripts/node-scale --nodes 12 --concurrency 4 --heartbeat-timeout 6 --drain-seconds 1 --seed 3 --mix 2>&1 | tail -1)
echo "$line"
for want in "completed=12 " " undrained_terminations=0 " " pdb_violations=0 " " foreign_touched=0 "; do
  [[ $line == *"$want"* ]] || { log "node-scale --mix: expected '$want' in: $line"; exit 1; }
done
[[ $line =~ webhook_sent=([0-9]+)\ webhook_failed=([0-9]+) ]] && (( BASH_REMATCH[1] >= 10 && BASH_REMATCH[2] >= 1 )) \
  || { log "node-scale --mix: webhook posts not sent and failed as the receiver answered: $line"; exit 1; }
