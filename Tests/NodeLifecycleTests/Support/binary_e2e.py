#!/usr/bin/env python3
"""Black-box run of the node-lifecycle binary with exactly the RBAC of
deploy/node-lifecycle/rbac.yaml (kube-apiserver-fake enforces per-token verb
lists), moto_server (SQS, signature checking on) and the Query double
(Auto Scaling). Used by scripts/test.d/60-node.sh.

  binary_e2e.py BIN_DIR RBAC_YAML
"""
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import boto3
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


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


class Kube:
    def __init__(self, url, ca_file, token):
        self.url, self.token = url, token
        self.ctx = ssl.create_default_context(cafile=ca_file)

    def call(self, method, path, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", "Bearer " + (token or self.token))
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, context=self.ctx, timeout=10) as r:
            return json.loads(r.read() or b"{}")


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
    procs = []
    try:
        # 1. kube-apiserver-fake and tokens with the RBAC verbs of deploy/.
        fake = subprocess.Popen([os.path.join(bin_dir, "kube-apiserver-fake"), "--dir", work + "/fake"],
                                stdout=subprocess.PIPE, stderr=open(work + "/fake.log", "wb"))
        procs.append(fake)
        ready = json.loads(fake.stdout.readline())
        kube = Kube(ready["url"], ready["ca_file"], open(ready["token_file"]).read().strip())
        roles = allow_lists(rbac)
        for role, token in (("node-lifecycle-drain", "drain-token"), ("node-lifecycle-ready", "ready-token")):
            req = urllib.request.Request(ready["url"] + "/fake/tokens", method="POST",
                                         data=json.dumps({"token": token, "user": role, "allow": roles[role]}).encode(),
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, context=kube.ctx, timeout=10).read()
            with open(f"{work}/{token}", "w") as f:
                f.write(token + "\n")
        print("allow lists:", json.dumps(roles))

        kube.call("POST", "/api/v1/nodes", node("n1", "i-aaa"))
        kube.call("POST", "/api/v1/nodes", node("n2", "i-bbb"))
        kube.call("POST", "/api/v1/nodes", node("n3", "i-ccc", [{"key": "node-lifecycle/booting", "value": "true", "effect": "NoSchedule"}]))
        kube.call("POST", "/api/v1/namespaces/shop/pods", pod("shop", "web-1", "n1", "ReplicaSet", {"app": "web"}))
        kube.call("POST", "/api/v1/namespaces/shop/pods", pod("shop", "web-2", "n2", "ReplicaSet", {"app": "web"}))
        kube.call("POST", "/api/v1/namespaces/kube-system/pods", pod("kube-system", "agent-n1", "n1", "DaemonSet"))

        # 2. moto (SQS) and the Query double (Auto Scaling), same credentials.
        moto = json.loads(subprocess.check_output([sys.executable, HERE + "/moto_harness.py", "start", work]))
        procs.append(("moto", moto["pid"]))
        double = json.loads(subprocess.check_output([sys.executable, HERE + "/query_double.py", "start", work,
                                                     moto["access_key"], moto["secret_key"]]))
        procs.append(("double", double["pid"]))
        sqs = boto3.client("sqs", endpoint_url=moto["url"], region_name="us-east-1",
                           aws_access_key_id=moto["access_key"], aws_secret_access_key=moto["secret_key"])
        sqs.send_message(QueueUrl=moto["queue_url"], MessageBody=json.dumps({
            "Origin": "AutoScalingGroup", "LifecycleHookName": "drain", "Destination": "EC2",
            "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "AutoScalingGroupName": "nodes",
            "Service": "AWS Auto Scaling", "EC2InstanceId": "i-aaa", "LifecycleActionToken": "tok-aaa"}))

        # 3. The drain binary.
        env = {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": moto["access_key"], "AWS_SECRET_ACCESS_KEY": moto["secret_key"],
               "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SQS": moto["url"], "AWS_ENDPOINT_URL_AUTO_SCALING": double["url"],
               "AWS_EC2_METADATA_DISABLED": "true", "NODE_LIFECYCLE_QUEUE_URL": moto["queue_url"]}
        kube_flags = ["--api-server", ready["url"], "--ca-file", ready["ca_file"]]
        drain_log = open(work + "/drain.log", "wb")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            metrics_port = s.getsockname()[1]
        drain = subprocess.Popen([os.path.join(bin_dir, "node-lifecycle"), "drain", *kube_flags, "--token-file", work + "/drain-token",
                                  "--heartbeat-interval", "1s", "--poll-interval", "200ms",
                                  "--metrics-addr", f"127.0.0.1:{metrics_port}"],
                                 env=env, stdout=drain_log, stderr=subprocess.STDOUT)
        procs.append(drain)
        deadline = time.time() + 60
        calls = []
        while time.time() < deadline:
            calls = json.loads(urllib.request.urlopen(double["url"] + "/calls", timeout=5).read())
            if any(c["action"] == "CompleteLifecycleAction" for c in calls):
                break
            if drain.poll() is not None:
                fail("drain exited early:\n" + open(work + "/drain.log").read())
            time.sleep(0.2)
        else:
            fail("no CompleteLifecycleAction within 60 s:\n" + open(work + "/drain.log").read())
        completes = [c for c in calls if c["action"] == "CompleteLifecycleAction"]
        if len(completes) != 1 or completes[0]["params"]["LifecycleActionResult"] != "CONTINUE":
            fail(f"expected one CONTINUE, got {completes}")
        n1 = kube.call("GET", "/api/v1/nodes/n1")
        if not n1["spec"].get("unschedulable") or not any(t["key"] == "node-lifecycle/draining" for t in n1["spec"].get("taints", [])):
            fail(f"n1 not cordoned and tainted: {n1['spec']}")
        left = sorted(p["metadata"]["name"] for p in kube.call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1")["items"])
        if left != ["agent-n1"]:
            fail(f"pods left on n1: {left}")
        for _ in range(50):
            attrs = sqs.get_queue_attributes(QueueUrl=moto["queue_url"], AttributeNames=["All"])["Attributes"]
            if attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
                break
            time.sleep(0.1)
        else:
            fail(f"message not deleted: {attrs}")
        log = open(work + "/drain.log").read()
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
        deadline = time.time() + 30
        while time.time() < deadline:
            left = [p["metadata"]["name"] for p in kube.call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dn2")["items"]]
            attrs = sqs.get_queue_attributes(QueueUrl=moto["queue_url"], AttributeNames=["All"])["Attributes"]
            if not left and attrs["ApproximateNumberOfMessages"] == "0" and attrs["ApproximateNumberOfMessagesNotVisible"] == "0":
                break
            time.sleep(0.2)
        else:
            fail(f"spot interruption not handled: pods {left}, queue {attrs}:\n" + open(work + "/drain.log").read())
        calls = json.loads(urllib.request.urlopen(double["url"] + "/calls", timeout=5).read())
        if any(c["params"].get("InstanceId") == "i-bbb" for c in calls):
            fail("a spot interruption has no lifecycle action, yet Auto Scaling was called for i-bbb")
        if not kube.call("GET", "/api/v1/nodes/n2")["spec"].get("unschedulable"):
            fail("n2 not cordoned after its spot interruption warning")
        print("drain: EventBridge spot interruption drained n2 without lifecycle calls, message deleted")

        # 4. The ready binary with the ready role's verbs.
        r = subprocess.run([os.path.join(bin_dir, "node-lifecycle"), "ready", *kube_flags, "--token-file", work + "/ready-token",
                            "--node", "n3", "--timeout", "20s", "--poll-interval", "200ms"],
                           env=env, capture_output=True, text=True, timeout=60)
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
            r = subprocess.run([os.path.join(bin_dir, "node-lifecycle"), "ready", *kube_flags, "--token-file", work + "/ready-token",
                                "--node", name, "--timeout", "20s", "--poll-interval", "200ms", "--stack", "nodes-stack",
                                "--resource", "NodeGroup", "--instance-id", instance],
                               env=env_cfn, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                fail(f"ready on {name} exited {r.returncode}:\n{r.stderr}")
        signals = [(c["params"]["UniqueId"], c["params"]["Status"])
                   for c in json.loads(urllib.request.urlopen(double["url"] + "/calls", timeout=5).read()) if c["action"] == "SignalResource"]
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
        deadline = time.time() + 30
        while "eviction blocked by a PodDisruptionBudget" not in open(work + "/drain.log").read():
            if time.time() > deadline:
                fail("the blocked drain did not start:\n" + open(work + "/drain.log").read())
            time.sleep(0.1)
        drain.terminate()
        if drain.wait(timeout=10) != 0:
            fail(f"drain exited {drain.returncode} on SIGTERM")
        attrs = sqs.get_queue_attributes(QueueUrl=moto["queue_url"], AttributeNames=["All"])["Attributes"]
        if attrs["ApproximateNumberOfMessages"] != "1":
            fail(f"the message of the interrupted drain is not visible again: {attrs}")
        if "drains in progress handed back to the queue" not in open(work + "/drain.log").read():
            fail("no shutdown log line")
        print("drain: SIGTERM hands the drain in progress back to the queue at once")
    finally:
        for p in procs:
            if isinstance(p, tuple):
                script = "moto_harness.py" if p[0] == "moto" else "query_double.py"
                subprocess.run([sys.executable, f"{HERE}/{script}", "stop", str(p[1])])
            elif p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()


if __name__ == "__main__":
    main()
