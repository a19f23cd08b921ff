"""Chaos soak: K kube-leader candidates on one lock against kube-apiserver-fake
while faults are injected at random (seeded). Run through scripts/chaos.

Faults: SIGKILL of the leader, SIGTERM of the leader, the leader's child
exiting by itself, API latency spikes longer than the renew deadline, 5xx
bursts, dropped connections, a partition of the leader's token (hang or
reset), a restart of the fake API server with its state kept, the lock
deleted or its holder cleared by another writer (standbys must wait a
lease), and stale watch history (every watch answered 410 Expired; the fake
also keeps only 8 events of history).

Candidates that exit are restarted after a short delay, as a Deployment would,
each generation with a unique identity NAME.GEN (the worker records that id).
Mutual exclusion is judged by the workers themselves (flock + one monotonic
clock, see worker.py). After the faults stop, a leader's child must be running
again within lease duration + retry period.

Prints ONE line of key=value figures on stdout; details go to DIR/chaos.log.
Exit 0 on success, 1 on any overlap or a too long leaderless gap.
"""
import argparse
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import kl  # noqa: E402

FAULTS = ["sigkill", "sigterm", "child-exit", "latency", "5xx", "drop", "partition", "restart",
          "delete", "clear", "stale"]


def parse_duration(text):
    """'500ms', '4s', '1m' -> seconds (float)."""
    units = [("ms", 0.001), ("s", 1.0), ("m", 60.0)]
    for suffix, scale in units:
        if text.endswith(suffix) and text[:-len(suffix)].replace(".", "", 1).isdigit():
            return float(text[:-len(suffix)]) * scale
    raise argparse.ArgumentTypeError("not a duration (like 500ms, 4s): %r" % text)


def parse_args(argv):
    p = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120, help="how long faults are injected (default 120)")
    p.add_argument("--candidates", type=int, default=5, help="kube-leader replicas on the lock (default 5)")
    p.add_argument("--seed", type=int, default=1, help="random seed for the fault schedule (default 1)")
    p.add_argument("--lock-kind", choices=["configmap", "lease"], default="configmap")
    p.add_argument("--lease-duration", type=parse_duration, default=4.0, metavar="D", help="default 4s")
    p.add_argument("--renew-deadline", type=parse_duration, default=2.0, metavar="D", help="default 2s")
    p.add_argument("--retry-period", type=parse_duration, default=0.5, metavar="D", help="default 500ms")
    p.add_argument("--calm", type=float, default=None,
                   help="seconds observed after the faults stop (default 2 x (lease + retry), at least 8)")
    p.add_argument("--split-locks", action="store_true",
                   help="self-check of the detector: every candidate gets its own lock, so their children "
                        "overlap and the run must FAIL")
    p.add_argument("--workdir", default=None, help="where logs go (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (always kept on failure or with --workdir)")
    a = p.parse_args(argv)
    if a.candidates < 2:
        p.error("--candidates must be at least 2")
    if a.seconds <= 0:
        p.error("--seconds must be positive")
    if a.calm is None:
        a.calm = max(8.0, 2 * (a.lease_duration + a.retry_period))
    return a


def longest_gap(runs, since, until):
    """Longest time in [since, until] covered by no run; runs are
    (start, end, ident) sorted by start."""
    gap, cursor = 0.0, since
    for s, e, _ in runs:
        if e <= cursor:
            continue
        if s > cursor:
            gap = max(gap, min(s, until) - cursor)
        cursor = max(cursor, e)
        if cursor >= until:
            return gap
    return max(gap, until - cursor)


def fmt_ms(seconds):
    return "%d" % round(seconds * 1000)


class Chaos:
    def __init__(self, args):
        self.a = args
        self.rng = random.Random(args.seed)
        self.work = args.workdir or tempfile.mkdtemp(prefix="kube-leader-chaos-")
        os.makedirs(self.work, exist_ok=True)
        self.log_file = open(os.path.join(self.work, "chaos.log"), "a")
        self.bins = kl.bin_dir()
        self.lock = "chaos-lock"
        self.timing = ["--lease-duration", "%dms" % round(args.lease_duration * 1000),
                       "--renew-deadline", "%dms" % round(args.renew_deadline * 1000),
                       "--retry-period", "%dms" % round(args.retry_period * 1000)]
        # One token per candidate slot, passed with --tokens so a restarted
        # fake still knows them; the first 8 characters name the slot in /fake/stats.
        self.tokens = ["slot%04d-%016x" % (i, self.rng.getrandbits(64)) for i in range(args.candidates)]
        self.workers = os.path.join(self.work, "workers.log")
        self.server = kl.FakeServer(self.bins, os.path.join(self.work, "api"),
                                    extra=["--tokens", ",".join(self.tokens), "--history", "8"])
        self.replicas = [None] * args.candidates
        self.generation = [0] * args.candidates
        self.restart_at = [0.0] * args.candidates
        self.ended = []            # (slot, ident, exit code, t_observed)
        self.counts = {f: 0 for f in FAULTS}
        self.t0 = time.monotonic()
        self.req = {"leader": 0, "standby": 0}
        self.role_time = {"leader": 0.0, "standby": 0.0}
        self.last_stats = None
        self.last_sample = None
        self.restarts = 0

    # -- bookkeeping ---------------------------------------------------------

    def note(self, text):
        self.log_file.write("[%7.2f] %s\n" % (time.monotonic() - self.t0, text))
        self.log_file.flush()

    def start(self, slot):
        self.generation[slot] += 1
        ident = "cand-%d.%d" % (slot, self.generation[slot])
        lock = "%s-%d" % (self.lock, slot) if self.a.split_locks else self.lock
        self.replicas[slot] = kl.Replica(
            self.bins, self.server, ident, lock, self.work, kind=self.a.lock_kind, timing=self.timing,
            token=self.tokens[slot], worker_log=self.workers, worker_lock=os.path.join(self.work, "workers.lock"),
            worker_args=["--exit-file", os.path.join(self.work, "exit-" + ident)])
        self.note("started %s (pid %d)" % (ident, self.replicas[slot].pid))

    def tend(self):
        """Restart candidates that exited, after a Deployment-like delay."""
        now = time.monotonic()
        for slot, r in enumerate(self.replicas):
            if r is not None and not r.alive():
                code = r.proc.returncode
                self.ended.append((slot, r.name, code, now))
                self.note("%s exited with %s" % (r.name, code))
                r.log.close()
                self.replicas[slot] = None
                self.restart_at[slot] = now + 0.3
            if self.replicas[slot] is None and now >= self.restart_at[slot]:
                self.start(slot)

    def leader_slot(self):
        h = self.server.holder(self.a.lock_kind, self.lock)
        if not h or not h.startswith("cand-"):
            return None, h
        slot = int(h[5:].split(".")[0])
        r = self.replicas[slot]
        return (slot if r is not None and r.name == h and r.alive() else None), h

    def sample(self):
        """Attribute API requests since the last sample to leader or standby."""
        try:
            stats = self.server.stats()
        except OSError:
            return
        slot, _ = self.leader_slot()
        now = time.monotonic()
        if self.last_stats is not None and isinstance(stats, dict):
            dt = now - self.last_sample
            by, last = stats.get("byToken", {}), self.last_stats.get("byToken", {})
            for i, tok in enumerate(self.tokens):
                cur = sum(by.get(tok[:8], {}).values())
                before = sum(last.get(tok[:8], {}).values())
                delta = cur - before if cur >= before else cur   # the fake restarted: counters from zero
                role = "leader" if i == slot else "standby"
                self.req[role] += delta
                if self.replicas[i] is not None:
                    self.role_time[role] += dt
        self.last_stats, self.last_sample = stats, now

    def wait(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.tend()
            if self.last_sample is None or time.monotonic() - self.last_sample >= 1.0:
                self.sample()
            time.sleep(min(0.05, max(0.0, end - time.monotonic())))

    # -- faults --------------------------------------------------------------

    def inject(self, fault):
        a, rng = self.a, self.rng
        slot, holder = self.leader_slot()
        self.counts[fault] += 1
        if fault in ("sigkill", "sigterm", "child-exit"):
            if slot is None:
                self.note("%s: no live leader (holder %r); skipped" % (fault, holder))
                self.counts[fault] -= 1
                return
            r = self.replicas[slot]
            if fault == "sigkill":
                self.note("SIGKILL leader %s" % r.name)
                r.signal(signal.SIGKILL)
            elif fault == "sigterm":
                self.note("SIGTERM leader %s" % r.name)
                r.signal(signal.SIGTERM)
            else:
                self.note("child of %s exits by itself" % r.name)
                open(os.path.join(self.work, "exit-" + r.name), "w").close()
            return
        if fault == "restart":
            self.note("restarting kube-apiserver-fake (state kept)")
            self.server.restart()
            self.restarts += 1
            return
        if fault in ("delete", "clear"):
            # Another writer: `kubectl delete` of the lock, or its holder
            # cleared by hand (not a release record). Standbys that saw it held
            # wait a lease; the old leader stops at its next renew.
            path = self.server.lock_path(a.lock_kind, self.lock)
            if fault == "delete":
                status, _ = self.server.request("DELETE", path)
            else:
                status, obj = self.server.request("GET", path)
                if status == 200 and isinstance(obj, dict):
                    if a.lock_kind == "lease":
                        obj.setdefault("spec", {})["holderIdentity"] = ""
                    else:
                        obj.setdefault("metadata", {}).setdefault("annotations", {})[
                            kl.LEADER_ANNOTATION] = json.dumps({"holderIdentity": ""})
                    status, _ = self.server.request("PUT", path, obj)
            self.note("%s of the lock (holder %r): HTTP %s" % (fault, holder, status))
            self.wait(a.lease_duration + a.retry_period)
            return
        if fault == "stale":
            # A watch cache whose window is always too short: every watch from
            # a resourceVersion gets 410 Expired; re-reads must stay paced.
            duration = rng.uniform(1.0, 3.0 * a.renew_deadline)
            self.note("stale history for %.1fs: every watch expires" % duration)
            self.server.set_faults(expireWatches=True)
            self.wait(duration)
            self.server.clear_faults()
            self.note("faults cleared")
            return
        duration = rng.uniform(0.5, 2.5 * a.renew_deadline)
        if fault == "latency":
            faults = {"latencyMs": int((a.renew_deadline + rng.uniform(0.2, 1.5)) * 1000)}
        elif fault == "5xx":
            faults = {"errorRate": rng.choice([0.5, 0.9, 1.0]), "errorStatus": rng.choice([500, 503, 504])}
        elif fault == "drop":
            faults = {"dropRate": rng.choice([0.3, 0.7, 1.0])}
        else:
            if slot is None:
                self.note("partition: no live leader (holder %r); skipped" % holder)
                self.counts[fault] -= 1
                return
            faults = {"partitionedTokens": [self.tokens[slot]], "partitionMode": rng.choice(["hang", "reset"])}
        faults["seed"] = rng.randrange(1 << 30)
        self.note("%s for %.1fs: %s%s" % (fault, duration, json.dumps(faults),
                                          " (leader %s)" % holder if fault == "partition" else ""))
        self.server.set_faults(**faults)
        self.wait(duration)
        self.server.clear_faults()
        self.note("faults cleared")

    # -- the run -------------------------------------------------------------

    def run(self):
        a = self.a
        for slot in range(a.candidates):
            self.start(slot)
        if not a.split_locks:
            kl.wait_until(lambda: self.leader_slot()[0] is not None, 15)
        self.note("first leader: %s" % self.leader_slot()[1])
        end = time.monotonic() + a.seconds
        while time.monotonic() < end:
            self.wait(min(self.rng.uniform(0.5, 2.5), max(0.0, end - time.monotonic())))
            if time.monotonic() >= end:
                break
            self.inject(self.rng.choice(FAULTS))
        self.server.clear_faults()
        faults_stopped = time.monotonic()
        self.note("faults stopped; calm for %.1fs" % a.calm)
        self.wait(a.calm)
        finished = time.monotonic()
        return self.figures(faults_stopped, finished)

    def intervals(self, finished):
        """(start_s, end_s, ident) of every child run, on the monotonic clock.
        A child that recorded no stop (SIGKILLed with its kube-leader) ended
        when its kube-leader was seen to exit."""
        entries = kl.read_worker_log(self.workers)
        starts = {i: t / 1e9 for k, i, t in entries if k == "start"}
        stops = {i: t / 1e9 for k, i, t in entries if k == "stop"}
        exited = {ident: t for _, ident, _, t in self.ended}
        out = []
        for ident, s in starts.items():
            e = stops.get(ident, exited.get(ident, finished))
            out.append((s, e, ident))
        return sorted(out), entries

    def figures(self, faults_stopped, finished):
        a = self.a
        runs, entries = self.intervals(finished)
        bad = kl.overlaps(entries)
        gap = longest_gap(runs, faults_stopped, finished)
        limit = a.lease_duration + a.retry_period
        exits = {}
        for _, _, code, _ in self.ended:
            exits[code] = exits.get(code, 0) + 1
        rpm = lambda role: (self.req[role] / (self.role_time[role] / 60.0)) if self.role_time[role] > 0 else 0.0
        ok = not bad and gap <= limit
        fig = [
            ("result", "pass" if ok else "FAIL"), ("kind", a.lock_kind), ("seed", a.seed),
            ("seconds", "%g" % a.seconds), ("candidates", a.candidates),
            ("lease_ms", fmt_ms(a.lease_duration)), ("renew_ms", fmt_ms(a.renew_deadline)),
            ("retry_ms", fmt_ms(a.retry_period)),
            ("faults", sum(self.counts.values())),
        ] + [(f.replace("-", "_"), n) for f, n in self.counts.items()] + [
            ("children", len(runs)), ("transitions", max(0, len(runs) - 1)), ("overlaps", len(bad)),
            ("gap_after_faults_ms", fmt_ms(gap)), ("gap_limit_ms", fmt_ms(limit)),
            ("exits", ",".join("%s:%d" % (c, n) for c, n in sorted(exits.items(), key=lambda kv: str(kv[0]))) or "none"),
            ("rpm_leader", "%.1f" % rpm("leader")), ("rpm_standby", "%.2f" % rpm("standby")),
            ("requests", self.req["leader"] + self.req["standby"]),
        ]
        for b in bad:
            self.note("OVERLAP: %s" % (b,))
        self.note("gap after faults stopped: %.3fs (limit %.3fs)" % (gap, limit))
        return ok, " ".join("%s=%s" % kv for kv in fig)

    def cleanup(self):
        for r in self.replicas:
            if r is not None:
                r.stop()
        self.server.stop()


def main(argv):
    a = parse_args(argv)
    c = Chaos(a)
    ok = False
    keep = a.keep or a.workdir is not None
    try:
        ok, line = c.run()
        print(line + (" dir=" + c.work if keep or not ok else ""), flush=True)
    finally:
        c.cleanup()
    if not ok:
        sys.stderr.write("chaos run FAILED; logs: %s (chaos.log, workers.log, cand-*.log)\n" % c.work)
    elif not keep:
        shutil.rmtree(c.work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
