"""The demo: three kube-leader replicas on one lock, hand-over and failover.

Run through scripts/demo (which builds the binaries first).
"""
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kl  # noqa: E402

LOCK = "demo-lock"
TIMING = ["--lease-duration", "4s", "--renew-deadline", "2s", "--retry-period", "500ms"]
T0 = time.monotonic()


def say(text):
    print("[%5.1fs] %s" % (time.monotonic() - T0, text), flush=True)


def main():
    bins = kl.bin_dir()
    work = tempfile.mkdtemp(prefix="kube-leader-demo-")
    server = kl.FakeServer(bins, os.path.join(work, "api"))
    say("kube-apiserver-fake is up at %s (CA %s)" % (server.url, server.ca_file))
    workers = os.path.join(work, "workers.log")
    replicas = {}
    generation = {}

    def start(name):
        generation[name] = generation.get(name, 0) + 1
        ident = "%s" % name
        replicas[name] = kl.Replica(bins, server, ident, LOCK, work, timing=TIMING, log_format="text",
                                    worker_log=workers, worker_lock=os.path.join(work, "workers.lock"),
                                    worker_args=["--say", "hello from the child of %s" % name])

    def leader():
        return kl.wait_until(lambda: server.holder("configmap", LOCK), 10)

    try:
        for name in ("replica-a", "replica-b", "replica-c"):
            start(name)
        say("started 3 replicas of: kube-leader %s %s -- worker.py" % (" ".join(TIMING), LOCK))
        first = leader()
        kl.wait_until(lambda: len([e for e in kl.read_worker_log(workers) if e[0] == "start"]) >= 1, 10)
        say("leader: %s (its child runs; the other two watch the lock)" % first)
        time.sleep(2)
        running = [e for e in kl.read_worker_log(workers) if e[0] == "start"]
        say("children running after 2s: %d (exactly one)" % len(running))

        # 1. The leader's child exits: the lock is released, a standby takes over at once.
        child = replicas[first].child_pid()
        say("ending the leader's child (pid %s) with SIGTERM ..." % child)
        ended = time.monotonic()
        os.kill(child, signal.SIGTERM)
        second = kl.wait_until(lambda: (lambda h: h if h and h != first else None)(server.holder("configmap", LOCK)), 10)
        kl.wait_until(lambda: len([e for e in kl.read_worker_log(workers) if e[0] == "start"]) >= 2, 10)
        say("hand-over: %s leads after %.0f ms (released lock, no lease to wait out); %s exited with %s"
            % (second, (time.monotonic() - ended) * 1000, first, replicas[first].proc.wait(5)))
        start(first)
        say("%s restarted (as a Deployment would) and stands by" % first)
        time.sleep(1)

        # 2. The leader dies hard: SIGKILL, no release. Failover after the lease.
        say("killing the leader %s with SIGKILL ..." % second)
        killed = time.monotonic()
        replicas[second].signal(signal.SIGKILL)
        third = kl.wait_until(lambda: (lambda h: h if h and h != second else None)(server.holder("configmap", LOCK)), 15)
        kl.wait_until(lambda: len([e for e in kl.read_worker_log(workers) if e[0] == "start"]) >= 3, 10)
        say("failover: %s leads after %.1f s (lease 4s, judged by each standby's own clock)"
            % (third, time.monotonic() - killed))

        entries = kl.read_worker_log(workers)
        bad = kl.overlaps(entries)
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
