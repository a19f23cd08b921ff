"""The demo: three kube-leader replicas on one lock, hand-over and failover.

Each replica runs with --leader-label role=leader, --events and
--status-addr: the label follows the leader (what a Service would select),
each child prints its fencing token, and the leader's /leader and /metrics
are shown once.

Run through scripts/demo (which builds the binaries first).
"""
import json
import os
import signal
import sys
import tempfile
import time
import urllib.request

from klharness import cluster, processes, workerlog

LOCK = "demo-lock"
TIMING = ["--lease-duration", "4s", "--renew-deadline", "2s", "--retry-period", "500ms"]
SURFACES = ["--leader-label", "role=leader", "--events", "--status-addr", "127.0.0.1:0"]
T0 = time.monotonic()


def say(text):
    print("[%5.1fs] %s" % (time.monotonic() - T0, text), flush=True)


def main():
    bins = processes.bin_dir()
    work = tempfile.mkdtemp(prefix="kube-leader-demo-")
    server = cluster.FakeServer(bins, os.path.join(work, "api"))
    say("kube-apiserver-fake is up at %s (CA %s)" % (server.url, server.ca_file))
    workers = os.path.join(work, "workers.log")
    replicas = {}
    generation = {}

    def start(name):
        generation[name] = generation.get(name, 0) + 1
        ident = "%s" % name
        replicas[name] = cluster.Replica(bins, server, ident, LOCK, work, timing=TIMING, log_format="text",
                                    worker_log=workers, worker_lock=os.path.join(work, "workers.lock"),
                                    worker_args=["--say", "child of %s (run %d): KUBE_LEADER_FENCING_TOKEN=$KUBE_LEADER_FENCING_TOKEN"
                                                 % (name, generation[name])],
                                    extra=SURFACES)

    def labelled():
        _, pods = server.request("GET", "/api/v1/namespaces/default/pods?labelSelector=role%3Dleader")
        return sorted(p["metadata"]["name"] for p in (pods or {}).get("items", []))

    def show_label(holder):
        processes.wait_until(lambda: labelled() == [holder], 10)
        say("Pods with role=leader (a Service selecting it reaches only these): %s" % ", ".join(labelled()))

    tokens = []

    def show_token(name):
        # The line of the child running now: a restarted replica's log may
        # still hold an earlier run's child and its (older, smaller) token.
        # It must be the token the leader's /leader reports, and larger than
        # every token shown before: a fencing token never goes backwards.
        mine = "child of %s (run %d):" % (name, generation[name])
        line = processes.wait_until(lambda: next((l for l in open(replicas[name].log_path, errors="replace")
                                                  if l.startswith(mine)), None), 10)
        say("the child printed: %s" % (line or "").strip())
        token = (line or "").strip().rpartition("KUBE_LEADER_FENCING_TOKEN=")[2]
        reported = json.loads(status(name, "/leader")).get("fencing_token")
        if not token.isdigit() or token != reported or (tokens and int(token) <= tokens[-1]):
            raise SystemExit("demo: FAILED: %s's child printed token %r, its /leader says %r, earlier tokens %s"
                             % (name, token, reported, tokens))
        tokens.append(int(token))

    def status(name, path):
        address = processes.wait_until(lambda: replicas[name].log_value("status endpoint listening", "status.address"), 10)
        with urllib.request.urlopen("http://%s%s" % (address, path), timeout=5) as r:
            return r.read().decode()

    def leader():
        return processes.wait_until(lambda: server.holder("configmap", LOCK), 10)

    def next_leader(old, timeout):
        return processes.wait_until(lambda: (lambda h: h if h and h != old else None)(server.holder("configmap", LOCK)), timeout)

    def starts():
        return [e for e in workerlog.read_worker_log(workers) if e[0] == "start"]

    try:
        for name in ("replica-a", "replica-b", "replica-c"):
            server.request("POST", "/api/v1/namespaces/default/pods", {
                "metadata": {"name": name, "labels": {"app": "demo"}},
                "spec": {"containers": [{"name": "app", "image": "demo"}]}})
            start(name)
        say("started 3 replicas of: kube-leader %s %s %s -- worker.py" % (" ".join(TIMING), " ".join(SURFACES), LOCK))
        first = leader()
        processes.wait_until(lambda: len(starts()) >= 1, 10)
        say("leader: %s (its child runs; the other two watch the lock)" % first)
        time.sleep(2)
        running = starts()
        say("children running after 2s: %d (exactly one)" % len(running))
        show_token(first)
        show_label(first)
        say("GET /leader on %s: %s" % (first, status(first, "/leader").strip()))
        metrics = [l for l in status(first, "/metrics").splitlines() if l and not l.startswith("#") and "_bucket" not in l]
        say("GET /metrics on %s (histogram buckets left out):" % first)
        for line in metrics:
            print("          " + line)

        # 1. The leader's child exits: the lock is released, a standby takes over at once.
        child = replicas[first].child_pid()
        say("ending the leader's child (pid %s) with SIGTERM ..." % child)
        ended = time.monotonic()
        os.kill(child, signal.SIGTERM)
        second = next_leader(first, 10)
        processes.wait_until(lambda: len(starts()) >= 2, 10)
        say("hand-over: %s leads after %.0f ms (released lock, no lease to wait out); %s exited with %s"
            % (second, (time.monotonic() - ended) * 1000, first, replicas[first].proc.wait(5)))
        show_token(second)
        show_label(second)
        start(first)
        say("%s restarted (as a Deployment would) and stands by" % first)
        time.sleep(1)

        # 2. The leader dies hard: SIGKILL, no release. Failover after the lease.
        say("killing the leader %s with SIGKILL ..." % second)
        killed = time.monotonic()
        replicas[second].signal(signal.SIGKILL)
        third = next_leader(second, 15)
        processes.wait_until(lambda: len(starts()) >= 3, 10)
        say("failover: %s leads after %.1f s (lease 4s, judged by each standby's own clock)"
            % (third, time.monotonic() - killed))
        show_token(third)
        show_label(third)
        say("(%s died with the label on; %s removed it)" % (second, third))
        _, events = server.request("GET", "/api/v1/namespaces/default/events")
        say("Events on the lock (what kubectl get events lists): %s"
            % "; ".join(e["message"] for e in (events or {}).get("items", [])))

        entries = workerlog.read_worker_log(workers)
        bad = workerlog.overlaps(entries)
        say("children started: %d, overlaps: %d" % (len([e for e in entries if e[0] == "start"]), len(bad)))
        print("\nLog of the current leader (%s), text format:" % third)
        for line in open(replicas[third].log_path, errors="replace").read().splitlines()[-6:]:
            print("  " + line)
        print("\nAll logs: %s" % work)
        return 1 if bad else 0
    finally:
        for r in replicas.values():
            r.stop()
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
