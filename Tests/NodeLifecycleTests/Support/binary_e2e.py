#!/usr/bin/env python3
"""Black-box run of the node-lifecycle binary with exactly the RBAC of
deploy/node-lifecycle/rbac.yaml (kube-apiserver-fake enforces per-token verb
lists), moto_server (SQS, signature checking on) and the Query double
(Auto Scaling). Used by scripts/test.d/60-node.sh; needs scripts/lib on
PYTHONPATH (scripts/lib/common.sh sets it) for the klharness package.

  binary_e2e.py BIN_DIR RBAC_YAML
"""
import http.server
import json
import os
import threading
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import yaml

from klharness import aws, cluster, processes
from moto_harness import sqs_client


def fail(msg):
    sys.exit("binary e2e: FAILED: " + msg)


def allow_lists(rbac_path):
    """ClusterRole name -> ["verb resource", ...]."""
    out = {}
    with open(rbac_path) as f:
        for doc in yaml.safe_load_all(f):
            if doc and doc.get("kind") == "ClusterRole":
                entries = []
                for rule in doc["rules"]:
                    for res in rule["resources"]:
                        for verb in rule["verbs"]:
                            entries.append(f"{verb} {res}")
                out[doc["metadata"]["name"]] = entries
    return out


def pod(ns, name, node, owner=None, labels=None):
    p = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
         "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
         "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    if owner:
        p["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": owner, "name": "o", "uid": "u", "controller": True}]
    return p


def node(name, instance, taints=None):
    n = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
         "spec": {"providerID": f"aws:///us-east-1a/{instance}"},
         "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    if taints:
        n["spec"]["taints"] = taints
    return n


def main():
    bin_dir, rbac = sys.argv[1], sys.argv[2]
    work = tempfile.mkdtemp(prefix="node-lifecycle-e2e-")
    kube = moto = double = drain = None

    def drain_log():
        return open(work + "/drain.log").read()

    def double_calls():
        return json.loads(urllib.request.urlopen(double["url"] + "/calls", timeout=5).read())

    def queue_attributes():
        return sqs.get_queue_attributes(QueueUrl=moto["queue_url"], AttributeNames=["All"])["Attributes"]

    def queue_empty(attrs):
        return attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0"

    try:
        # 1. kube-apiserver-fake and tokens with the RBAC verbs of deploy/.
        kube = cluster.FakeServer(bin_dir, work + "/fake", state=False)
        roles = allow_lists(rbac)
        for role, token in (("node-lifecycle-drain", "drain-token"), ("node-lifecycle-ready", "ready-token")):
            kube.write_token(f"{work}/{token}", token, role, roles[role])
        print("allow lists:", json.dumps(roles))

        kube.call("POST", "/api/v1/nodes", node("n1", "i-aaa"))
        kube.call("POST", "/api/v1/nodes", node("n2", "i-bbb"))
        kube.call("POST", "/api/v1/nodes", node("n3", "i-ccc", [{"key": "node-lifecycle/booting", "value": "true", "effect": "NoSchedule"}]))
        kube.call("POST", "/api/v1/namespaces/shop/pods", pod("shop", "web-1", "n1", "ReplicaSet", {"app": "web"}))
        kube.call("POST", "/api/v1/namespaces/shop/pods", pod("shop", "web-2", "n2", "ReplicaSet", {"app": "web"}))
        kube.call("POST", "/api/v1/namespaces/kube-system/pods", pod("kube-system", "agent-n1", "n1", "DaemonSet"))

        # 2. moto (SQS) and the Query double (Auto Scaling), same credentials.
        moto = aws.start_moto(work)
        double = aws.start_query_double(work, moto["access_key"], moto["secret_key"])
        sqs = sqs_client(moto)
        sqs.send_message(QueueUrl=moto["queue_url"], MessageBody=json.dumps({
            "Origin": "AutoScalingGroup", "LifecycleHookName": "drain", "Destination": "EC2",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "AutoScalingGroupName": "nodes",
            "Service": "AWS Auto Scaling", "EC2InstanceId": "i-aaa", "LifecycleActionToken": "tok-aaa"}))

        # 3. The drain binary.
        env = aws.node_lifecycle_env(moto, double["url"])
        kube_flags = kube.kube_flags()
        metrics_port = processes.free_port()
        drain = processes.spawn_logged([os.path.join(bin_dir, "node-lifecycle"), "drain", *kube_flags, "--token-file", work + "/drain-token",
                                 "--heartbeat-interval", "1s", "--poll-interval", "200ms",
                                 "--metrics-addr", f"127.0.0.1:{metrics_port}"], work + "/drain.log", env)

        def completed():
            calls = double_calls()
            if any(c["action"] == "CompleteLifecycleAction" for c in calls):
                return calls
            if drain.poll() is not None:
                fail("drain exited early:\n" + drain_log())
            return None
        calls = processes.wait_until(completed, 60, 0.2) or fail("no CompleteLifecycleAction within 60 s:\n" + drain_log())
        completes = [c for c in calls if c["action"] == "CompleteLifecycleAction"]
        if len(completes) != 1 or completes[0]["params"]["LifecycleActionResult"] != "CONTINUE":
            fail(f"expected one CONTINUE, got {completes}")
        n1 = kube.call("GET", "/api/v1/nodes/n1")
        if not n1["spec"].get("unschedulable") or not any(t["key"] == "node-lifecycle/draining" for t in n1["spec"].get("taints", [])):
            fail(f"n1 not cordoned and tainted: {n1['spec']}")
        left = sorted(p["metadata"]["name"] for p in kube.call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")["items"])
        if left != ["agent-n1"]:
            fail(f"pods left on n1: {left}")
        if not processes.wait_until(lambda: queue_empty(queue_attributes()), 10, 0.1):
            fail(f"message not deleted: {queue_attributes()}")
        log = drain_log()
        if '"level":"error"' in log or "forbidden" in log.lower():
            fail("drain logged errors (RBAC too narrow?):\n" + log)
        print("drain: node n1 drained with the RBAC of deploy/, CONTINUE sent once, message deleted")

        # Events on the Node (namespace default, as kubelet's), with the RBAC of deploy/.
        events = kube.call("GET", "/api/v1/namespaces/default/events")["items"]
        reasons = [e["reason"] for e in events if e["involvedObject"]["kind"] == "Node" and e["involvedObject"]["name"] == "n1"]
        if sorted(reasons) != ["DrainFinished", "DrainStarted"]:
            fail(f"expected DrainStarted, DrainFinished events on n1, got {reasons}")
        print("drain: DrainStarted and DrainFinished events on the Node")

        # /metrics: valid Prometheus text (prometheus_client's parser) with the drain counted.
        from prometheus_client.parser import text_string_to_metric_families
        # A client that connects and sends nothing holds the (serial) server
        # for at most its 5 s request deadline.
        idle = socket.create_connection(("127.0.0.1", metrics_port))
        t0 = time.time()
        text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=15).read().decode()
        if time.time() - t0 > 10:
            fail("a silent client blocked /metrics for more than 10 s")
        idle.close()
        for path, status in (("/healthz", 200), ("/nope", 404)):
            try:
                got = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}{path}", timeout=5).status
            except urllib.error.HTTPError as e:
                got = e.code
            if got != status:
                fail(f"GET {path}: {got}, expected {status}")
        samples = {}
        types = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        def value(name, **labels):
            return samples.get((name, tuple(sorted(labels.items()))))
        expected = {
            ("node_lifecycle_actions_received", "counter"), ("node_lifecycle_actions_completed", "counter"),
            ("node_lifecycle_drains_in_progress", "gauge"), ("node_lifecycle_pods_evicted", "counter"),
            ("node_lifecycle_evictions_blocked", "counter"), ("node_lifecycle_heartbeats", "counter"),
            ("node_lifecycle_drain_duration_seconds", "histogram"),
        }
        missing = {e for e in expected if types.get(e[0]) != e[1]}
        if missing:
            fail(f"metrics families missing or of the wrong type: {missing}\n{text}")
        checks = [
            (value("node_lifecycle_actions_received_total", transition="terminating"), 1),
            (value("node_lifecycle_actions_completed_total", result="drained"), 1),
            (value("node_lifecycle_pods_evicted_total"), 1),
            (value("node_lifecycle_drain_duration_seconds_count"), 1),
            (value("node_lifecycle_drains_in_progress"), 0),
        ]
        if any(got != want for got, want in checks) or not value("node_lifecycle_heartbeats_total", outcome="ok"):
            fail(f"unexpected metric values {checks}:\n{text}")
        print("drain: /metrics parses with prometheus_client and counts the drain")

        # EventBridge spot interruption warning for n2: drained, no Auto Scaling call, deleted.
        sqs.send_message(QueueUrl=moto["queue_url"], MessageBody=json.dumps({
            "version": "0", "id": "spot-1", "detail-type": "EC2 Spot Instance Interruption Warning", "source": "aws.ec2",
            "time": "2026-11-28T10:00:00Z", "region": "us-east-1",
            "detail": {"instance-id": "i-bbb", "instance-action": "terminate"}}))
        seen = {}

        def spot_handled():
            seen["left"] = [p["metadata"]["name"] for p in kube.call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2")["items"]]
            seen["attrs"] = queue_attributes()
            return not seen["left"] and queue_empty(seen["attrs"])
        if not processes.wait_until(spot_handled, 30, 0.2):
            fail(f"spot interruption not handled: pods {seen['left']}, queue {seen['attrs']}:\n" + drain_log())
        if any(c["params"].get("InstanceId") == "i-bbb" for c in double_calls()):
            fail("a spot interruption has no lifecycle action, yet Auto Scaling was called for i-bbb")
        if not kube.call("GET", "/api/v1/nodes/n2")["spec"].get("unschedulable"):
            fail("n2 not cordoned after its spot interruption warning")
        print("drain: EventBridge spot interruption drained n2 without lifecycle calls, message deleted")

        # 4. The ready binary with the ready role's verbs.
        def ready(node_name, flags, environment):
            return subprocess.run([os.path.join(bin_dir, "node-lifecycle"), "ready", *kube_flags, "--token-file", work + "/ready-token",
                                   "--node", node_name, "--timeout", "20s", "--poll-interval", "200ms", *flags],
                                  env=environment, capture_output=True, text=True, timeout=60)
        r = ready("n3", [], env)
        if r.returncode != 0:
            fail(f"ready exited {r.returncode}:\n{r.stderr}")
        n3 = kube.call("GET", "/api/v1/nodes/n3")
        if any(t["key"] == "node-lifecycle/booting" for t in n3["spec"].get("taints", [])):
            fail("boot taint still on n3")
        print("ready: boot taint removed from n3 with the RBAC of deploy/")

        # ready is idempotent: twice on a booting node -> one SUCCESS; on an
        # old node that never carried the taint (n1) -> no signal at all.
        kube.call("POST", "/api/v1/nodes", node("n5", "i-eee", [{"key": "node-lifecycle/booting", "value": "true", "effect": "NoSchedule"}]))
        env_cfn = dict(env, AWS_ENDPOINT_URL_CLOUDFORMATION=double["url"])
        for name, instance in (("n5", "i-eee"), ("n5", "i-eee"), ("n1", "i-aaa")):
            r = ready(name, ["--stack", "nodes-stack", "--resource", "NodeGroup", "--instance-id", instance], env_cfn)
            if r.returncode != 0:
                fail(f"ready on {name} exited {r.returncode}:\n{r.stderr}")
        signals = [(c["params"]["UniqueId"], c["params"]["Status"])
                   for c in double_calls() if c["action"] == "SignalResource"]
        if signals != [("i-eee", "SUCCESS")]:
            fail(f"expected exactly one SUCCESS for i-eee and nothing for the old node n1, got {signals}")
        annotations = kube.call("GET", "/api/v1/nodes/n5")["metadata"].get("annotations", {})
        if annotations.get("node-lifecycle/signalled-success") != "i-eee":
            fail(f"the signal is not recorded on n5: {annotations}")
        print("ready: signals SUCCESS once per instance (run twice), never for a node that did not boot with the taint")

        # 5. SIGTERM during a drain (a PDB that never allows the eviction): the
        #    message is handed back to the queue at once, not after its
        #    visibility timeout (30 s here), and drain exits 0.
        kube.call("POST", "/api/v1/nodes", node("n4", "i-ddd"))
        kube.call("POST", "/api/v1/namespaces/db/pods", pod("db", "db-0", "n4", "StatefulSet", {"app": "db"}))
        kube.call("POST", "/apis/policy/v1/namespaces/db/poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db", "namespace": "db"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "db"}}}})
        sqs.send_message(QueueUrl=moto["queue_url"], MessageBody=json.dumps({
            "LifecycleHookName": "drain", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
            "AutoScalingGroupName": "nodes", "EC2InstanceId": "i-ddd", "LifecycleActionToken": "tok-ddd"}))
        if not processes.wait_until(lambda: "eviction blocked by a PodDisruptionBudget" in drain_log(), 30, 0.1):
            fail("the blocked drain did not start:\n" + drain_log())
        drain.terminate()
        if drain.wait(timeout=10) != 0:
            fail(f"drain exited {drain.returncode} on SIGTERM")
        attrs = queue_attributes()
        if attrs["ApproximateNumberOfMessages"] != "1":
            fail(f"the message of the interrupted drain is not visible again: {attrs}")
        if "drains in progress handed back to the queue" not in drain_log():
            fail("no shutdown log line")
        print("drain: SIGTERM hands the drain in progress back to the queue at once")

        # 6. aws-node-termination-handler's options, end to end: a shared
        #    queue (--managed-tag cluster=prod read from moto's EC2), an AWS
        #    Health scheduled change naming one of ours and one foreign
        #    instance, a terminate hook for another of ours; labels, the
        #    out-of-service taint and webhooks to a local receiver.
        posts = []

        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                posts.append((self.path, self.headers.get("X-Token"), body.decode()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass
        receiver = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=receiver.serve_forever, daemon=True).start()
        ours, foreign, ours2 = moto["instances"]
        kube.call("POST", "/api/v1/nodes", node("n6", ours))
        kube.call("POST", "/api/v1/nodes", node("n7", foreign))
        kube.call("POST", "/api/v1/nodes", node("n8", ours2))
        for n in ("n6", "n7", "n8"):
            kube.call("POST", "/api/v1/namespaces/shop/pods", pod("shop", "web-" + n, n, "ReplicaSet", {"app": "web-" + n}))
        # The interrupted drain's message (n4, PDB forever) is still on the queue: drop it.
        sqs.purge_queue(QueueUrl=moto["queue_url"])
        sqs.send_message(QueueUrl=moto["queue_url"], MessageBody=json.dumps({
            "version": "0", "id": "health-1", "detail-type": "AWS Health Event", "source": "aws.health",
            "account": "123456789012", "time": "2026-12-06T21:00:00Z", "region": "us-east-1", "resources": [ours, foreign],
            "detail": {"eventArn": "arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/x", "service": "EC2",
                       "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED", "eventTypeCategory": "scheduledChange",
                       "startTime": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 3600)),
                       "eventDescription": [{"language": "en_US", "latestDescription": "retirement"}],
                       "affectedEntities": [{"entityValue": ours}, {"entityValue": foreign}]}}))
        sqs.send_message(QueueUrl=moto["queue_url"], MessageBody=json.dumps({
            "LifecycleHookName": "drain", "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING",
            "AutoScalingGroupName": "nodes", "EC2InstanceId": ours2, "LifecycleActionToken": "tok-ours2"}))
        sqs.send_message(QueueUrl=moto["queue_url"], MessageBody=json.dumps({
            "version": "0", "id": "other", "detail-type": "", "source": "", "detail": {}}))
        env_ec2 = dict(env, AWS_ENDPOINT_URL_EC2=moto["url"])
        open(work + "/drain.log", "w").close()
        drain = processes.spawn_logged([os.path.join(bin_dir, "node-lifecycle"), "drain", *kube_flags, "--token-file", work + "/drain-token",
                                 "--heartbeat-interval", "1s", "--poll-interval", "200ms", "--managed-tag", "cluster=prod",
                                 "--exclude-from-load-balancers", "--out-of-service-taint", "--kube-api-qps", "50",
                                 "--webhook-url", f"http://127.0.0.1:{receiver.server_address[1]}/hook",
                                 "--webhook-headers", '{"Content-Type":"application/json","X-Token":"t0ken"}',
                                 "--webhook-template", '{"instance":"{{ .InstanceID }}","kind":"{{ .Kind }}","node":"{{ .NodeName }}"}'],
                                work + "/drain.log", env_ec2)

        def pods_on(n):
            return [p["metadata"]["name"] for p in kube.call("GET", f"/api/v1/pods?fieldSelector=spec.nodeName%3D{n}")["items"]]

        def nth_done():
            if drain.poll() is not None:
                fail("drain exited early:\n" + drain_log())
            return not pods_on("n6") and not pods_on("n8") and len(posts) >= 2 and \
                any(c["action"] == "CompleteLifecycleAction" and c["params"]["InstanceId"] == ours2 for c in double_calls())
        if not processes.wait_until(nth_done, 60, 0.2):
            fail(f"scheduled change / hook not handled (posts {posts}):\n" + drain_log())
        n6, n7, n8 = (kube.call("GET", f"/api/v1/nodes/{n}") for n in ("n6", "n7", "n8"))
        exclude = "node.kubernetes.io/exclude-from-external-load-balancers"
        for n in (n6, n8):
            if n["metadata"].get("labels", {}).get(exclude) != "true" or not n["spec"].get("unschedulable"):
                fail(f"{n['metadata']['name']} not labelled {exclude} and cordoned: {n['metadata']} {n['spec']}")
        oos = lambda n: [t for t in n["spec"].get("taints", []) if t["key"] == "node.kubernetes.io/out-of-service"]
        if oos(n8) != [{"key": "node.kubernetes.io/out-of-service", "value": "nodeshutdown", "effect": "NoExecute"}]:
            fail(f"n8 (terminating hook) lacks the out-of-service taint: {n8['spec']}")
        if oos(n6):
            fail(f"n6 (scheduled change, not a termination) got the out-of-service taint: {n6['spec']}")
        if n7["spec"].get("unschedulable") or pods_on("n7") != ["web-n7"] or exclude in n7["metadata"].get("labels", {}):
            fail(f"the foreign instance's node n7 was touched: {n7}")
        if any(c["params"].get("InstanceId") == foreign for c in double_calls()):
            fail("Auto Scaling was called for the foreign instance")
        # The health event stays on the queue for the cluster that owns the foreign instance.
        attrs = queue_attributes()
        if int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"]) != 1:
            fail(f"expected only the shared health event left on the queue: {attrs}")
        got = sorted((json.loads(b)["kind"], json.loads(b)["instance"], json.loads(b)["node"], path, token) for path, token, b in posts)
        if got != sorted([("SCHEDULED_EVENT", ours, "n6", "/hook", "t0ken"), ("ASG_LIFECYCLE", ours2, "n8", "/hook", "t0ken")]):
            fail(f"webhook posts: {got}")
        log = drain_log()
        if "is not one node-lifecycle handles" not in log or "does not carry the managed tag" not in log:
            fail("the unknown-source and foreign-instance log lines are missing:\n" + log)
        print("drain: NTH options end to end: scheduled change drained n6 (labelled, no out-of-service taint), "
              "hook drained n8 (out-of-service taint), foreign n7 untouched with --managed-tag (moto EC2 DescribeTags), "
              "2 webhook posts, unknown source deleted")
        receiver.shutdown()
    finally:
        for helper in (moto, double):
            if helper:
                processes.kill_group(helper["pid"])
        processes.stop_process(drain)
        if kube:
            kube.stop()

if __name__ == "__main__":
    main()
