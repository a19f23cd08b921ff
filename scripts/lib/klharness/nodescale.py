"""Black-box scale-in of N nodes through the built node-lifecycle binary.

  scripts/node-scale [--nodes N] [--concurrency C] [--heartbeat-timeout S]
                     [--drain-seconds D] [--seed S] [--survivors K]
                     [--pods-per-node P] [--replicas R]

What runs (all real processes and sockets):
- kube-apiserver-fake with N terminating nodes plus K surviving ones, P pods
  per node (Deployments of R replicas spread at random, each under a
  PodDisruptionBudget minAvailable R-1) and a DaemonSet pod on every node;
- a ReplicaSet "controller" (this script): an evicted pod is replaced on a
  random schedulable node and becomes Ready D seconds later;
- moto_server's SQS with signature checking; the scale-in puts one
  autoscaling:EC2_INSTANCE_TERMINATING message per node on the queue at once;
- a lifecycle-action double (Auto Scaling's RecordLifecycleActionHeartbeat
  and CompleteLifecycleAction, signatures checked with botocore) that
  enforces HeartbeatTimeout S and DefaultResult CONTINUE: an action not
  heartbeated within S seconds of its start or its last heartbeat is
  terminated undrained. On CompleteLifecycleAction it looks at the node: any
  pod left but DaemonSet ones makes it an undrained termination too. Then the
  "instance" terminates: the node and its pods are deleted;
- node-lifecycle drain --concurrency C --heartbeat-interval S/3, with the
  RBAC of deploy/node-lifecycle/rbac.yaml.

An availability monitor samples every Deployment: a Ready count below its
PDB's minAvailable is a PDB violation; max_unavailable_seen is the largest
R - Ready seen. The last line is key=value; exit 1 unless
undrained_terminations=0 and pdb_violations=0 (and every action finished).

--mix turns the scale-in into aws-node-termination-handler's event mix on a
queue shared with another cluster: of the N terminating nodes, about 10 %
get an EC2 Spot interruption warning (the instance goes 120 s later), 10 %
an AWS Health scheduled change (two instances per event, start 600 s
ahead), 5 % an EC2 state change `stopping` (stopped 300 s later), the rest
the terminate hook, 10 % of those after a rebalance recommendation. Every
instance is an EC2 instance in moto tagged cluster=prod; --foreign F more,
tagged cluster=other and not in this cluster, get hooks, spot warnings and
scheduled changes on the same queue. node-lifecycle runs with --managed-tag
cluster=prod, --metrics-addr (sampled every second for the Kubernetes
request rate) and --webhook-url to a local receiver that refuses every tenth
post. A non-hook event is undrained when its deadline passes with pods on
the node. Also reported: foreign_touched (Auto Scaling calls for, or
deletions of, foreign messages), kube_rps_peak_1s / _10s against
--kube-api-qps, webhook_sent / webhook_failed (from /metrics, checked
against the receiver's count).
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from klharness import aws, cluster, processes


def log(msg):
    print(f"==> node-scale: {msg}", file=sys.stderr, flush=True)


class Lifecycle(BaseHTTPRequestHandler):
    """Auto Scaling's lifecycle-action calls, with HeartbeatTimeout enforced."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        from query_double import verify, xml_error
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        params = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
        problem = verify(self, body, self.server.keys)
        if problem:
            return self.answer(*xml_error("SignatureDoesNotMatch", problem, 403))
        action, token = params.get("Action"), params.get("LifecycleActionToken")
        sim = self.server.sim
        if params.get("InstanceId") in sim.foreign:
            with sim.lock:
                sim.foreign_touched += 1
            log(f"foreign instance touched: {action} {params.get('InstanceId')}")
        if action not in ("RecordLifecycleActionHeartbeat", "CompleteLifecycleAction"):
            return self.answer(*xml_error("InvalidAction", f"Could not find operation {action}", 400))
        with sim.lock:
            a = sim.actions.get(token)
            active = a is not None and a["state"] == "pending"
            if active and action == "RecordLifecycleActionHeartbeat":
                a["last"] = time.monotonic()
                a["heartbeats"] += 1
            if active and action == "CompleteLifecycleAction":
                a["state"] = "completing"
        if not active:
            return self.answer(*xml_error("ValidationError",
                                          f"No active Lifecycle Action found with instance ID {params.get('InstanceId')}", 400))
        if action == "CompleteLifecycleAction":
            # What is left on the node when CONTINUE arrives (the instance goes now).
            left = sim.evictable_pods(a["node"])
            sim.finish(token, "completed", left)
        self.answer(200, f"<{action}Response><{action}Result/><ResponseMetadata><RequestId>r</RequestId>"
                         f"</ResponseMetadata></{action}Response>")


class Sim:
    def __init__(self, args, kube):
        self.args, self.kube = args, kube
        self.lock = threading.Lock()
        self.actions = {}          # token -> {node, instance, start, last, state, heartbeats}
        self.results = []          # (token, how, pods left)
        self.terminated = set()    # node names gone
        self.ready_at = {}         # pod key -> monotonic time it becomes Ready
        self.apps = {}             # app -> replicas
        self.violations = 0
        self.in_violation = set()
        self.max_unavailable = 0
        self.counter = 0
        self.stop = threading.Event()
        self.rng = random.Random(args.seed)
        self.errors = []
        self.foreign = set()       # instance ids of the other cluster
        self.foreign_touched = 0

    # --- Kubernetes helpers -------------------------------------------------
    def pods(self):
        return self.kube.call("GET", "/api/v1/pods")["items"]

    def evictable_pods(self, node):
        q = urllib.parse.quote(f"spec.nodeName={node}")
        items = self.kube.call("GET", f"/api/v1/pods?fieldSelector={q}")["items"]
        return sorted(p["metadata"]["namespace"] + "/" + p["metadata"]["name"] for p in items
                      if not any(o.get("kind") == "DaemonSet" for o in p["metadata"].get("ownerReferences", [])))

    def finish(self, token, how, left):
        with self.lock:
            a = self.actions[token]
            if a["state"] in ("completed", "timed_out"):
                return
            a["state"] = how
            a["end"] = time.monotonic()
            self.results.append((token, how, left))
            node = a["node"]
        # The instance terminates: the node and everything on it are gone.
        for p in self.kube.call("GET", "/api/v1/pods?fieldSelector=" + urllib.parse.quote(f"spec.nodeName={node}"))["items"]:
            try:
                self.kube.call("DELETE", f"/api/v1/namespaces/{p['metadata']['namespace']}/pods/{p['metadata']['name']}")
            except Exception:
                pass
        self.kube.call("DELETE", f"/api/v1/nodes/{node}")
        with self.lock:
            self.terminated.add(node)

    # --- loops -----------------------------------------------------------------
    def event_deadlines(self):
        """EC2 events without a hook: the instance goes when its node is
        drained (cordoned, nothing but DaemonSet pods left) or at the
        event's deadline, drained or not."""
        while not self.stop.is_set():
            now = time.monotonic()
            with self.lock:
                todo = [(t, a) for t, a in self.actions.items() if a["state"] == "pending" and a.get("deadline")]
            for token, a in todo:
                try:
                    n = self.kube.call("GET", f"/api/v1/nodes/{a['node']}")
                    left = self.evictable_pods(a["node"])
                except Exception:
                    continue
                if n["spec"].get("unschedulable") and not left:
                    self.finish(token, "completed", [])
                elif now >= a["deadline"]:
                    log(f"{a['kind']} deadline: {a['node']} goes with {len(left)} pods on it")
                    self.finish(token, "timed_out", left)
            time.sleep(0.2)

    def heartbeat_timeouts(self):
        """DefaultResult CONTINUE for actions not heartbeated in time."""
        while not self.stop.is_set():
            now = time.monotonic()
            due = []
            with self.lock:
                for token, a in self.actions.items():
                    if a["state"] == "pending" and not a.get("deadline") and now - a["last"] > self.args.heartbeat_timeout:
                        a["state"] = "timing_out"
                        due.append((token, a["node"]))
            for token, node in due:
                left = self.evictable_pods(node)
                log(f"HeartbeatTimeout: {node} terminated by DefaultResult CONTINUE with {len(left)} pods on it")
                self.finish(token, "timed_out", left)
            time.sleep(0.05)

    def controller(self):
        """ReplicaSets (replace evicted pods; Ready after D seconds) and the
        availability monitor."""
        while not self.stop.is_set():
            try:
                self.reconcile()
            except cluster.HTTPError as e:
                if e.code not in (404, 409):   # a pod evicted or changed meanwhile: next round
                    self.errors.append(repr(e))
            except Exception as e:  # keep going; report at the end
                self.errors.append(repr(e))
            time.sleep(0.1)

    def reconcile(self):
        now = time.monotonic()
        pods = [p for p in self.pods() if p["metadata"].get("labels", {}).get("app", "").startswith("app-")]
        by_app = {app: [] for app in self.apps}
        for p in pods:
            by_app.setdefault(p["metadata"]["labels"]["app"], []).append(p)
        nodes = self.kube.call("GET", "/api/v1/nodes")["items"]
        schedulable = sorted(n["metadata"]["name"] for n in nodes
                             if not n["spec"].get("unschedulable") and n["metadata"]["name"] not in self.terminated)
        for app, replicas in self.apps.items():
            have = by_app.get(app, [])
            ready = 0
            for p in have:
                key = "shop/" + p["metadata"]["name"]
                is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
                if not is_ready and now >= self.ready_at.get(key, now + 1):
                    p["status"]["conditions"] = [{"type": "Ready", "status": "True"}]
                    self.kube.call("PUT", f"/api/v1/namespaces/shop/pods/{p['metadata']['name']}/status", p)
                    is_ready = True
                if is_ready and not p["metadata"].get("deletionTimestamp"):
                    ready += 1
            unavailable = replicas - ready
            self.max_unavailable = max(self.max_unavailable, unavailable)
            if ready < replicas - 1:
                if app not in self.in_violation:
                    self.in_violation.add(app)
                    self.violations += 1
                    log(f"PDB violation: {app} has {ready} Ready of {replicas} (minAvailable {replicas - 1})")
            else:
                self.in_violation.discard(app)
            for _ in range(replicas - len(have)):
                if not schedulable:
                    break
                self.counter += 1
                name = f"{app}-r{self.counter}"
                node = self.rng.choice(schedulable)
                # The scheduler's view is fresh to a few ms: re-read the node.
                if self.kube.call("GET", f"/api/v1/nodes/{node}")["spec"].get("unschedulable"):
                    schedulable.remove(node)
                    continue
                self.ready_at["shop/" + name] = now + self.args.drain_seconds
                self.kube.call("POST", "/api/v1/namespaces/shop/pods", app_pod(name, app, node, ready=False))


def app_pod(name, app, node, ready):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "shop", "labels": {"app": app},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": app, "uid": "u-" + app,
                                              "controller": True}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], "terminationGracePeriodSeconds": 1},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


def main():
    ap = argparse.ArgumentParser(prog="scripts/node-scale", description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=20, help="nodes scaled in (terminating)")
    ap.add_argument("--concurrency", type=int, default=2, help="node-lifecycle --concurrency")
    ap.add_argument("--heartbeat-timeout", type=float, default=6, help="the hook's HeartbeatTimeout, seconds")
    ap.add_argument("--drain-seconds", type=float, default=2, help="seconds a replacement pod takes to become Ready")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--survivors", type=int, default=3, help="nodes that stay")
    ap.add_argument("--pods-per-node", type=int, default=3)
    ap.add_argument("--replicas", type=int, default=3, help="replicas per Deployment (PDB minAvailable replicas-1)")
    ap.add_argument("--deadline", type=float, default=0, help="give up after this many seconds (default: generous)")
    ap.add_argument("--mix", action="store_true", help="aws-node-termination-handler's event mix on a shared queue (see above)")
    ap.add_argument("--foreign", type=int, default=-1, help="with --mix: instances of another cluster on the queue (default N/10, at least 2)")
    ap.add_argument("--kube-api-qps", type=float, default=20, help="node-lifecycle --kube-api-qps")
    ap.add_argument("--kube-api-burst", type=int, default=40, help="node-lifecycle --kube-api-burst")
    ap.add_argument("--extra-args", default="", help="more node-lifecycle drain flags, last wins "
                    "(e.g. '--heartbeat-interval 30s' shows what a missing heartbeat does)")
    args = ap.parse_args()
    # SIGTERM (timeout, a CI cancel): clean up the servers like on any exit.
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.nodes < 1 or args.concurrency < 1 or args.heartbeat_timeout < 1.5 or args.drain_seconds < 0 \
            or args.survivors < 1 or args.replicas < 2 or args.pods_per_node < 1:
        ap.error("need --nodes>=1 --concurrency>=1 --heartbeat-timeout>=1.5 --drain-seconds>=0 --survivors>=1 --replicas>=2 --pods-per-node>=1")
    from binary_e2e import allow_lists, node as node_object
    from moto_harness import sqs_client

    bin_dir = processes.bin_dir()
    missing = processes.missing_binaries(bin_dir, ("node-lifecycle", "kube-apiserver-fake"))
    if missing:
        sys.exit(f"node-scale: {bin_dir}/{missing[0]} is not built; run swift build first (or set KL_BIN_DIR)")
    work = tempfile.mkdtemp(prefix="node-scale-")
    kube, moto, drain = None, None, None
    clean = False
    sim = None
    try:
        kube = cluster.FakeServer(bin_dir, work + "/fake", state=False)
        roles = allow_lists(os.path.join(processes.ROOT, "deploy/node-lifecycle/rbac.yaml"))
        kube.write_token(work + "/drain-token", "drain-token", "node-lifecycle-drain", roles["node-lifecycle-drain"])

        # Cluster: N terminating + K surviving nodes, Deployments spread at random.
        sim = Sim(args, kube)
        rng = sim.rng
        terminating = [f"node-{i:03d}" for i in range(args.nodes)]
        survivors = [f"keep-{i:02d}" for i in range(args.survivors)]
        instance = {n: f"i-{i:017x}" for i, n in enumerate(terminating + survivors, start=0x1000)}
        moto = aws.start_moto(work)
        foreign = []
        if args.mix:
            # Real EC2 instances in moto, tagged: ours cluster=prod, the other cluster's cluster=other.
            import boto3
            ec2 = boto3.client("ec2", endpoint_url=moto["url"], region_name="us-east-1",
                               aws_access_key_id=moto["access_key"], aws_secret_access_key=moto["secret_key"])
            nf = args.foreign if args.foreign >= 0 else max(2, args.nodes // 10)

            def launch(count, cluster):
                ids = []
                while len(ids) < count:
                    got = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=min(100, count - len(ids)))
                    ids += [i["InstanceId"] for i in got["Instances"]]
                for k in range(0, len(ids), 100):
                    ec2.create_tags(Resources=ids[k:k + 100], Tags=[{"Key": "cluster", "Value": cluster}])
                return ids
            ours = launch(len(terminating) + len(survivors), "prod")
            instance = dict(zip(terminating + survivors, ours))
            foreign = launch(nf, "other")
            sim.foreign = set(foreign)
        for n in terminating + survivors:
            kube.call("POST", "/api/v1/nodes", node_object(n, instance[n]))
            kube.call("POST", "/api/v1/namespaces/kube-system/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": f"agent-{n}", "namespace": "kube-system",
                             "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": "ds", "controller": True}]},
                "spec": {"nodeName": n, "containers": [{"name": "c", "image": "busybox"}]},
                "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}})
        all_nodes = terminating + survivors
        total = len(all_nodes) * args.pods_per_node
        apps = (total + args.replicas - 1) // args.replicas
        slots = [n for n in all_nodes for _ in range(args.pods_per_node)]
        rng.shuffle(slots)
        for a in range(apps):
            app = f"app-{a:03d}"
            sim.apps[app] = args.replicas
            kube.call("POST", "/apis/policy/v1/namespaces/shop/poddisruptionbudgets", {
                "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
                "metadata": {"name": app, "namespace": "shop",
                             "annotations": {"fake.kube-leader.dev/expected-pods": str(args.replicas)}},
                "spec": {"minAvailable": args.replicas - 1, "selector": {"matchLabels": {"app": app}}}})
            for r in range(args.replicas):
                node = slots.pop() if slots else rng.choice(all_nodes)
                kube.call("POST", "/api/v1/namespaces/shop/pods", app_pod(f"{app}-{r}", app, node, ready=True))
        log(f"{len(all_nodes)} nodes ({args.nodes} terminating), {apps} Deployments of {args.replicas} under PDBs "
            f"(minAvailable {args.replicas - 1}), replacements Ready after {args.drain_seconds:g} s")

        # AWS: moto's SQS (signatures checked) and the lifecycle double.
        server = ThreadingHTTPServer(("127.0.0.1", 0), Lifecycle)
        server.daemon_threads = True
        server.keys = {moto["access_key"]: moto["secret_key"]}
        server.sim = sim
        threading.Thread(target=server.serve_forever, daemon=True).start()
        lifecycle_url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=sim.controller, daemon=True).start()

        # The webhook receiver: refuses every tenth post (counted as failed).
        posts = {"ok": 0, "refused": 0}

        class Receiver(BaseHTTPRequestHandler):
            def log_message(self, fmt, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sim.lock:
                    refuse = (posts["ok"] + posts["refused"]) % 10 == 9
                    posts["refused" if refuse else "ok"] += 1
                self.send_response(500 if refuse else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()
        mix_flags = []
        metrics_port = None
        if args.mix:
            receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
            receiver.daemon_threads = True
            threading.Thread(target=receiver.serve_forever, daemon=True).start()
            metrics_port = processes.free_port()
            mix_flags = ["--managed-tag", "cluster=prod", "--metrics-addr", f"127.0.0.1:{metrics_port}",
                         "--webhook-url", f"http://127.0.0.1:{receiver.server_address[1]}/hook"]
        hb_interval = max(0.5, args.heartbeat_timeout / 3)
        drain_timeout = max(120, int(args.nodes * (args.drain_seconds + 10) * 2))
        drain = processes.spawn_logged([os.path.join(bin_dir, "node-lifecycle"), "drain", *kube.kube_flags(),
                                 "--token-file", work + "/drain-token",
                                 "--concurrency", str(args.concurrency), "--heartbeat-interval", f"{int(hb_interval * 1000)}ms",
                                 "--poll-interval", "200ms", "--eviction-retry", "500ms", "--drain-timeout", f"{drain_timeout}s",
                                 "--kube-api-qps", f"{args.kube_api_qps:g}", "--kube-api-burst", str(args.kube_api_burst),
                                 *mix_flags, *args.extra_args.split()],
                                work + "/drain.log", dict(aws.node_lifecycle_env(moto, lifecycle_url), AWS_ENDPOINT_URL_EC2=moto["url"]))

        # Scale-in: every action starts now; the hook puts all messages on the queue.
        sqs = sqs_client(moto)
        kinds = {n: "hook" for n in terminating}
        if args.mix:
            order = list(terminating)
            rng.shuffle(order)
            k = max(1, args.nodes // 10)
            for n in order[:k]:
                kinds[n] = "spot"
            for n in order[k:2 * k]:
                kinds[n] = "scheduled"
            for n in order[2 * k:2 * k + max(1, args.nodes // 20)]:
                kinds[n] = "stopping"
        rebalance = [n for n in terminating if kinds[n] == "hook"][:max(1, args.nodes // 10)] if args.mix else []
        deadlines = {"spot": 120, "scheduled": 600, "stopping": 300}
        start = time.monotonic()
        with sim.lock:
            for n in terminating:
                a = {"node": n, "instance": instance[n], "start": start, "last": start, "state": "pending", "heartbeats": 0,
                     "kind": kinds[n]}
                if kinds[n] != "hook":
                    a["deadline"] = start + deadlines[kinds[n]]
                sim.actions[f"tok-{n}"] = a
        sent = {"foreign": 0}
        batch = []

        def send(body):
            batch.append({"Id": str(len(batch)), "MessageBody": json.dumps(body)})
            if len(batch) == 10:
                flush()

        def flush():
            if batch:
                sqs.send_message_batch(QueueUrl=moto["queue_url"], Entries=list(batch))
                batch.clear()

        def event(source, detail_type, detail):
            return {"version": "0", "id": f"ev-{rng.getrandbits(32):08x}", "detail-type": detail_type, "source": source,
                    "account": "123456789012", "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "region": "us-east-1", "resources": [], "detail": detail}

        def hook(inst, token):
            return {"Origin": "AutoScalingGroup", "LifecycleHookName": "drain", "Destination": "EC2", "Service": "AWS Auto Scaling",
                    "LifecycleTransition": "autoscaling:EC2_INSTANCE_TERMINATING", "AutoScalingGroupName": "nodes",
                    "EC2InstanceId": inst, "LifecycleActionToken": token}

        def health(insts):
            return event("aws.health", "AWS Health Event", {
                "eventArn": "arn:aws:health:us-east-1::event/EC2/AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED/x", "service": "EC2",
                "eventTypeCode": "AWS_EC2_INSTANCE_RETIREMENT_SCHEDULED", "eventTypeCategory": "scheduledChange",
                "startTime": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + deadlines["scheduled"])),
                "eventDescription": [{"language": "en_US", "latestDescription": "retirement"}],
                "affectedEntities": [{"entityValue": i} for i in insts]})
        # Events without a hook first (they are first in line), then rebalance
        # recommendations, then the hooks; the other cluster's in between.
        for n in terminating:
            if kinds[n] == "spot":
                send(event("aws.ec2", "EC2 Spot Instance Interruption Warning", {"instance-id": instance[n], "instance-action": "terminate"}))
            elif kinds[n] == "stopping":
                send(event("aws.ec2", "EC2 Instance State-change Notification", {"instance-id": instance[n], "state": "stopping"}))
        scheduled = [instance[n] for n in terminating if kinds[n] == "scheduled"]
        for i in range(0, len(scheduled), 2):
            send(health(scheduled[i:i + 2]))
        for n in rebalance:
            send(event("aws.ec2", "EC2 Instance Rebalance Recommendation", {"instance-id": instance[n]}))
        for j, f in enumerate(foreign):
            sent["foreign"] += 1
            if j % 3 == 0:
                send(event("aws.ec2", "EC2 Spot Instance Interruption Warning", {"instance-id": f, "instance-action": "terminate"}))
            elif j % 3 == 1:
                send(health([f]))
            else:
                send(hook(f, f"tok-foreign-{j}"))
        for n in terminating:
            if kinds[n] == "hook":
                send(hook(instance[n], f"tok-{n}"))
        flush()
        threading.Thread(target=sim.heartbeat_timeouts, daemon=True).start()
        threading.Thread(target=sim.event_deadlines, daemon=True).start()
        rates = []   # (t, kube requests total)

        def sample_metrics():
            while not sim.stop.is_set():
                try:
                    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).read().decode()
                    for line in text.splitlines():
                        if line.startswith("node_lifecycle_kube_requests_total "):
                            rates.append((time.monotonic(), float(line.split()[1])))
                except Exception:
                    pass
                time.sleep(1)
        if metrics_port:
            threading.Thread(target=sample_metrics, daemon=True).start()
        log(f"scale-in of {args.nodes} nodes; HeartbeatTimeout {args.heartbeat_timeout:g} s, "
            f"node-lifecycle --concurrency {args.concurrency} --heartbeat-interval {hb_interval:g}s")

        deadline = start + (args.deadline or max(60, args.nodes * (args.drain_seconds + 8) * 3 / args.concurrency))
        while time.monotonic() < deadline:
            with sim.lock:
                if all(a["state"] in ("completed", "timed_out") for a in sim.actions.values()):
                    break
            if drain.poll() is not None:
                log("node-lifecycle exited early; log follows")
                sys.stderr.write(open(work + "/drain.log").read()[-4000:])
                break
            time.sleep(0.1)
        end = time.monotonic()
        time.sleep(max(0.3, args.drain_seconds + 0.3))   # let the monitor see the last terminations settle
        sim.stop.set()

        with sim.lock:
            states = [a["state"] for a in sim.actions.values()]
            results = list(sim.results)
        completed = sum(1 for _, how, _ in results if how == "completed")
        drained = sum(1 for _, how, left in results if how == "completed" and not left)
        undrained = sum(1 for _, how, left in results if how == "timed_out" or left)
        unfinished = sum(1 for s in states if s not in ("completed", "timed_out"))
        for token, how, left in results:
            if how == "timed_out" or left:
                log(f"undrained termination: {token} ({how}), pods left: {left}")
        if unfinished:
            log(f"{unfinished} actions unfinished at the deadline (counted as undrained terminations)")
        if sim.errors:
            log(f"controller errors: {sim.errors[:3]}")
        heartbeats = sorted(a["heartbeats"] for a in sim.actions.values())
        undrained += unfinished
        ok = undrained == 0 and sim.violations == 0 and completed == args.nodes
        waited = max(a["end"] - a["start"] for a in sim.actions.values() if "end" in a) if results else 0
        extra = ""
        if args.mix:
            import urllib.request as ur
            text = ur.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).read().decode()
            metric = {}
            for line in text.splitlines():
                if line and not line.startswith("#"):
                    name, value = line.rsplit(" ", 1)
                    metric[name] = float(value)
            wsent = int(metric.get('node_lifecycle_webhooks_total{outcome="sent"}', 0))
            wfailed = int(metric.get('node_lifecycle_webhooks_total{outcome="failed"}', 0))
            if (wsent, wfailed) != (posts["ok"], posts["refused"]):
                log(f"webhook counts differ: metrics sent={wsent} failed={wfailed}, receiver ok={posts['ok']} refused={posts['refused']}")
                ok = False

            def peak(window):
                best = 0.0
                for i, (t0, c0) in enumerate(rates):
                    for t1, c1 in rates[i + 1:]:
                        if t1 - t0 >= window - 0.05:
                            best = max(best, (c1 - c0) / (t1 - t0))
                            break
                return best
            p1, p10 = peak(1), peak(10)
            # The foreign messages stay on the queue for their cluster.
            attrs = sqs.get_queue_attributes(QueueUrl=moto["queue_url"], AttributeNames=["All"])["Attributes"]
            queued = int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])
            if queued != sent["foreign"]:
                log(f"{queued} messages on the queue, expected the {sent['foreign']} foreign ones")
                sim.foreign_touched += abs(sent["foreign"] - queued)
            counts = {k: sum(1 for n in terminating if kinds[n] == k) for k in ("hook", "spot", "scheduled", "stopping")}
            log("event mix: " + ", ".join(f"{v} {k}" for k, v in counts.items()) +
                f", {len(rebalance)} rebalance, {len(foreign)} foreign (cluster=other)")
            if sim.foreign_touched or p10 > args.kube_api_qps + args.kube_api_burst / 10 + 0.5:
                ok = False
            extra = (f" foreign_instances={len(foreign)} foreign_touched={sim.foreign_touched}"
                     f" kube_rps_peak_1s={p1:.1f} kube_rps_peak_10s={p10:.1f} kube_api_qps={args.kube_api_qps:g}"
                     f" kube_requests={int(metric.get('node_lifecycle_kube_requests_total', 0))}"
                     f" webhook_sent={wsent} webhook_failed={wfailed}")
        log(f"heartbeats per action: min {heartbeats[0]}, max {heartbeats[-1]}; longest action {waited:.1f} s "
            f"= {waited / args.heartbeat_timeout:.1f} x HeartbeatTimeout" + ("" if ok else f"; logs kept in {work}"))
        print(f"nodes={args.nodes} completed={completed} drained_before_continue={drained} undrained_terminations={undrained} "
              f"pdb_violations={sim.violations} max_unavailable_seen={sim.max_unavailable} duration_s={end - start:.1f}{extra}", flush=True)
        clean = ok
        return 0 if ok else 1
    finally:
        if sim:
            sim.stop.set()
        processes.stop_process(drain)
        if moto:
            processes.kill_group(moto["pid"])
        if kube:
            kube.stop()
        if clean:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
