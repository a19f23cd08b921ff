"""Chaos soak: K kube-leader candidates on one lock against kube-apiserver-fake
while faults are injected at random (seeded). Run through scripts/chaos.

Faults: SIGKILL of the leader, SIGTERM of the leader, the leader's child
exiting by itself, API latency spikes longer than the renew deadline, 5xx
bursts, dropped connections, a partition of the leader's token (hang or
reset), a restart of the fake API server with its state kept, the lock
deleted or its holder cleared by another writer (standbys must wait a
lease), and stale watch history (every watch answered 410 Expired; the fake
also keeps only 8 events of history).

With --netns every replica runs in its own network namespace and the fake in
another, joined by a router namespace (netns.py); then real
network faults join in, made by the kernel's own TCP: "cut" (a replica, most
often the leader, silently cut from the API server both ways or one way, by
blackhole routes: lost SYNs, half-open connections, retransmissions) and
"dead-conns" (every established connection of the leader goes silent while
new ones pass, as when the API server behind a ClusterIP dies without a
RST: the leader must NOT lose its lock). Needs root.

Other writers: "other-holder" (another writer hands the lock to a made-up
holder with a 1 s lease) and "short-lease" (the current record's
leaseDurationSeconds lowered to 1 s), as `kubectl edit` or a mutating webhook
would (docs/safety.md, "Other writers").

--faults picks the faults (--list-faults shows them all).

Candidates that exit are restarted after a short delay, as a Deployment would,
each generation with a unique identity NAME.GEN (the worker records that id).
Mutual exclusion is judged by the workers themselves (flock + one monotonic
clock, see worker.py). After the faults stop, a leader's child must be running
again within lease duration + retry period.

Outage mode (--outages N, for --on-loss standby): instead of random faults, the whole API
goes down N times for --outage-seconds (default 30) each, answering 503 or,
every other time, not answering at all (every token's requests hang); a calm
time comes before each. With --on-loss standby (passed to every candidate)
no kube-leader may exit (no restart), every outage must be recovered (a
leader's child running again) within lease + retry of its end, and no two
children may overlap. With --on-loss exit the leaders exit 3 and are
restarted, as a Deployment would (for comparison).

Hand-over mode (--hand-overs N, hand-over when asked): no faults; every few
seconds the lock names a preferred holder, as `kubectl patch lease
... spec.preferredHolder` or `kubectl annotate configmap ...
kube-leader.io/preferred-holder` would (read, change, write with the
resourceVersion read): most often a live standby, sometimes a name no
replica has, sometimes the current leader itself (each at least once when
N >= 3). Checks: no two children overlap; every hand-over to a live standby
completes (the next child to start is the named one's) within the lease
duration of the edit; a name nobody has makes the leader hand over once and
someone leads again within lease + 3 x retry + 2 s; naming the leader
changes nothing; no kube-leader exits. Every candidate runs with
--status-addr and --events, and the hand-overs that happened must be counted
by the replicas' kube_leader_hand_overs_total and by HandedOver Events.

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
import urllib.request

from klharness import cluster, processes, workerlog

FAULTS = ["sigkill", "sigterm", "child-exit", "latency", "5xx", "drop", "partition", "restart",
          "delete", "clear", "stale"]
NETNS_FAULTS = ["cut", "dead-conns"]
PREFERRED_ANNOTATION = "kube-leader.io/preferred-holder"
WRITER_FAULTS = ["other-holder", "short-lease"]
ALL_FAULTS = FAULTS + NETNS_FAULTS + WRITER_FAULTS
FAULT_HELP = {
    "sigkill": "SIGKILL of the leader", "sigterm": "SIGTERM of the leader",
    "child-exit": "the leader's child exits by itself", "latency": "API latency longer than the renew deadline",
    "5xx": "bursts of 500/503/504", "drop": "the fake drops connections", "partition": "the fake black-holes the leader's token (hang or reset)",
    "restart": "restart of the fake (state kept)", "delete": "another writer deletes the lock",
    "clear": "another writer clears the holder", "stale": "every watch answered 410 Expired",
    "cut": "(--netns) a replica cut from the API server by blackhole routes, both ways or one way",
    "dead-conns": "(--netns) every established connection of the leader goes silent; new ones pass; the leader must not lose",
    "other-holder": "another writer hands the lock to a made-up holder with a 1 s lease",
    "short-lease": "another writer lowers the current record's leaseDurationSeconds to 1 s",
}


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
    p.add_argument("--netns", action="store_true",
                   help="each replica in its own network namespace (needs root); adds the faults cut and dead-conns")
    p.add_argument("--faults", default=None, metavar="A,B",
                   help="the faults to inject (default: all; cut and dead-conns only with --netns)")
    p.add_argument("--list-faults", action="store_true", help="list the faults and exit")
    p.add_argument("--on-loss", choices=["exit", "standby"], default=None,
                   help="pass --on-loss to every candidate (default: kube-leader's own default, exit)")
    p.add_argument("--outages", type=int, default=0, metavar="N",
                   help="outage mode: N whole-API outages instead of random faults (--seconds is not used)")
    p.add_argument("--outage-seconds", type=float, default=30.0, metavar="S", help="length of each outage (default 30)")
    p.add_argument("--hand-overs", type=int, default=0, metavar="N",
                   help="hand-over mode: name a preferred holder N times instead of random faults "
                        "(--seconds is not used)")
    p.add_argument("--workdir", default=None, help="where logs go (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (always kept on failure or with --workdir)")
    a = p.parse_args(argv)
    if a.list_faults:
        for f in ALL_FAULTS:
            print("%-13s %s" % (f, FAULT_HELP[f]))
        sys.exit(0)
    if a.faults is None:
        a.faults = FAULTS + WRITER_FAULTS + (NETNS_FAULTS if a.netns else [])
    else:
        a.faults = [f for f in a.faults.split(",") if f]
        unknown = [f for f in a.faults if f not in ALL_FAULTS]
        if unknown or not a.faults:
            p.error("unknown fault(s) %s; see --list-faults" % ", ".join(unknown) if unknown else "--faults is empty")
        if not a.netns and any(f in NETNS_FAULTS for f in a.faults):
            p.error("the faults %s need --netns" % ", ".join(NETNS_FAULTS))
    if a.candidates < 2:
        p.error("--candidates must be at least 2")
    if a.seconds <= 0:
        p.error("--seconds must be positive")
    if a.calm is None:
        a.calm = max(8.0, 2 * (a.lease_duration + a.retry_period))
    if a.outages < 0 or a.outage_seconds <= 0:
        p.error("--outages must be >= 0 and --outage-seconds positive")
    if a.outages and a.split_locks:
        p.error("--outages and --split-locks do not go together")
    if a.hand_overs < 0:
        p.error("--hand-overs must be >= 0")
    if a.hand_overs and (a.outages or a.split_locks or a.netns):
        p.error("--hand-overs goes with none of --outages, --split-locks, --netns")
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
        self.t0 = time.monotonic()
        self.bins = processes.bin_dir()
        self.lock = "chaos-lock"
        self.timing = ["--lease-duration", "%dms" % round(args.lease_duration * 1000),
                       "--renew-deadline", "%dms" % round(args.renew_deadline * 1000),
                       "--retry-period", "%dms" % round(args.retry_period * 1000)]
        # One token per candidate slot, passed with --tokens so a restarted
        # fake still knows them; the first 8 characters name the slot in /fake/stats.
        self.tokens = ["slot%04d-%016x" % (i, self.rng.getrandbits(64)) for i in range(args.candidates)]
        self.workers = os.path.join(self.work, "workers.log")
        self.topo = None
        if args.netns:
            from klharness import netns
            why = netns.available()
            if why:
                raise SystemExit("scripts/chaos: " + why)
            swept = netns.sweep_stale()
            if swept:
                self.note("removed %d namespaces left by an earlier run: %s" % (len(swept), " ".join(swept)))
            self.topo = netns.Topology(args.candidates, log=self.note)
            self.topo.up()
        self.server = cluster.FakeServer(self.bins, os.path.join(self.work, "api"),
                                    extra=["--tokens", ",".join(self.tokens), "--history", "8"],
                                    netns=self.topo.api_ns if self.topo else None,
                                    host="10.200.0.2" if self.topo else None)
        self.replicas = [None] * args.candidates
        self.generation = [0] * args.candidates
        self.restart_at = [0.0] * args.candidates
        self.ended = []            # (slot, ident, exit code, t_observed)
        self.counts = {f: 0 for f in args.faults}
        self.conn_losses = []      # dead-conns faults the leader did not survive
        self.t0 = time.monotonic()
        self.req = {"leader": 0, "standby": 0}
        self.role_time = {"leader": 0.0, "standby": 0.0}
        self.last_stats = None
        self.last_sample = None
        self.restarts = 0
        # Hand-over mode: every candidate also serves /metrics and writes Events.
        self.surfaces = ["--status-addr", "127.0.0.1:0", "--events"] if args.hand_overs else []

    # -- bookkeeping ---------------------------------------------------------

    def note(self, text):
        self.log_file.write("[%7.2f] %s\n" % (time.monotonic() - self.t0, text))
        self.log_file.flush()

    def start(self, slot):
        self.generation[slot] += 1
        ident = "cand-%d.%d" % (slot, self.generation[slot])
        lock = "%s-%d" % (self.lock, slot) if self.a.split_locks else self.lock
        self.replicas[slot] = cluster.Replica(
            self.bins, self.server, ident, lock, self.work, kind=self.a.lock_kind, timing=self.timing,
            token=self.tokens[slot], worker_log=self.workers, worker_lock=os.path.join(self.work, "workers.lock"),
            worker_args=["--exit-file", os.path.join(self.work, "exit-" + ident)],
            extra=(["--on-loss", self.a.on_loss] if self.a.on_loss else []) + self.surfaces,
            prefix=self.topo.exec_prefix(slot) if self.topo else ())
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
        if fault in ("delete", "clear", "other-holder", "short-lease"):
            # Outside the guarantees: a replica that has not seen the current
            # hold (just started, or cut off since it started) cannot know the
            # lease another writer's change ends or shortens (docs/safety.md).
            # The simulation draws these faults under the same condition.
            unseen = self.standbys_without_hold(holder)
            if unseen:
                self.note("%s skipped: %s %s not seen the hold of %r yet (outside the guarantees)"
                          % (fault, ", ".join(unseen), "has" if len(unseen) == 1 else "have", holder))
                self.counts[fault] -= 1
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
                            cluster.LEADER_ANNOTATION] = json.dumps({"holderIdentity": ""})
                    status, _ = self.server.request("PUT", path, obj)
            self.note("%s of the lock (holder %r): HTTP %s" % (fault, holder, status))
            self.wait(a.lease_duration + a.retry_period)
            return
        if fault in ("other-holder", "short-lease"):
            self.other_writer(fault, holder)
            return
        if fault == "cut":
            if slot is None or rng.random() < 0.3:
                slot = rng.randrange(a.candidates)
            direction = rng.choice(["both", "to-api", "from-api"])
            duration = rng.uniform(0.5, 2.5 * a.renew_deadline)
            r = self.replicas[slot]
            self.note("cut %s for %.1fs: %s%s" % (r.name if r else "slot %d" % slot, duration, direction,
                                                  " (the leader)" if r is not None and r.name == holder else ""))
            self.topo.cut(slot, direction)
            self.wait(duration)
            self.topo.heal(slot)
            self.note("cut healed")
            return
        if fault == "dead-conns":
            if slot is None:
                self.note("dead-conns: no live leader (holder %r); skipped" % holder)
                self.counts[fault] -= 1
                return
            self.dead_connections(slot, holder)
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

    def pick_fault(self):
        """A fault from --faults; with --netns the network ones (cut,
        dead-conns) are half of all picks, else they would be rare."""
        net = [f for f in self.a.faults if f in NETNS_FAULTS]
        rest = [f for f in self.a.faults if f not in NETNS_FAULTS]
        if net and (not rest or self.rng.random() < 0.5):
            return self.rng.choice(net)
        return self.rng.choice(rest)

    def standbys_without_hold(self, holder):
        """Live replicas other than `holder` whose last logged view of the
        lock does not name `holder` (they have not read its hold)."""
        unseen = []
        for r in self.replicas:
            if r is None or not r.alive() or r.name == holder:
                continue
            seen = None
            try:
                for line in open(r.log_path, errors="replace"):
                    if "lock is held by another replica" in line or "lock is free" in line:
                        try:
                            seen = json.loads(line).get("lock.holder")
                        except ValueError:
                            pass
            except OSError:
                pass
            if seen != holder:
                unseen.append(r.name)
        return unseen

    def other_writer(self, fault, holder):
        """Another writer edits the lock record (kubectl edit, an operator
        tool, a mutating webhook): a made-up holder with a 1 s lease, or the
        current record's lease lowered to 1 s. A standby must still wait at
        least the lease of the hold it saw before the change (docs/safety.md, "Other writers")."""
        a = self.a
        path = self.server.lock_path(a.lock_kind, self.lock)
        status, obj = self.server.request("GET", path)
        if status != 200 or not isinstance(obj, dict):
            self.note("%s: no lock to edit (HTTP %s); skipped" % (fault, status))
            self.counts[fault] -= 1
            return
        now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + ".000000Z"
        rec = cluster.lock_record(a.lock_kind, obj)
        if fault == "other-holder":
            rec.update({"holderIdentity": "intruder-%d" % self.counts[fault], "leaseDurationSeconds": 1,
                        "acquireTime": now, "renewTime": now})
        else:
            rec["leaseDurationSeconds"] = 1
        if a.lock_kind == "lease":
            spec = obj.setdefault("spec", {})
            for k in ("holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime"):
                if k in rec:
                    spec[k] = rec[k]
        else:
            obj.setdefault("metadata", {}).setdefault("annotations", {})[cluster.LEADER_ANNOTATION] = json.dumps(rec)
        status, _ = self.server.request("PUT", path, obj)
        self.note("%s by another writer (holder was %r): HTTP %s" % (fault, holder, status))
        self.wait(a.lease_duration + a.retry_period)

    def dead_connections(self, slot, holder):
        """The leader's established connections go silent (both ways), new
        ones pass. It must keep its lock: a renew retried on a fresh
        connection lands within the renew deadline."""
        a, rng = self.a, self.rng
        r = self.replicas[slot]
        started_before = self.child_stops(r.name)
        ports = self.topo.kill_connections(slot)
        duration = rng.uniform(a.renew_deadline + a.retry_period, 2.5 * a.renew_deadline + a.retry_period)
        self.note("dead-conns of leader %s for %.1fs: ports %s" % (r.name, duration, ports))
        self.wait(duration)
        self.topo.heal(slot)
        kept = (self.replicas[slot] is r and r.alive() and self.child_stops(r.name) == started_before
                and self.server.holder(a.lock_kind, self.lock) == holder)
        if ports and not kept:
            self.conn_losses.append(r.name)
            self.note("LOST: leader %s lost its lock while only its connections %s were dead" % (r.name, ports))
        else:
            self.note("dead-conns healed; leader %s %s" % (r.name, "kept its lock" if kept else "had no connection"))

    def child_stops(self, ident):
        return sum(1 for k, i, _ in workerlog.read_worker_log(self.workers) if k == "stop" and i == ident)

    # -- the run -------------------------------------------------------------

    def run(self):
        a = self.a
        for slot in range(a.candidates):
            self.start(slot)
        if not a.split_locks:
            processes.wait_until(lambda: self.leader_slot()[0] is not None, 15)
        self.note("first leader: %s" % self.leader_slot()[1])
        end = time.monotonic() + a.seconds
        while time.monotonic() < end:
            self.wait(min(self.rng.uniform(0.5, 2.5), max(0.0, end - time.monotonic())))
            if time.monotonic() >= end:
                break
            self.inject(self.pick_fault())
        self.server.clear_faults()
        if self.topo:
            self.topo.heal_all()
        faults_stopped = time.monotonic()
        self.note("faults stopped; calm for %.1fs" % a.calm)
        self.wait(a.calm)
        finished = time.monotonic()
        return self.figures(faults_stopped, finished)

    # -- outage mode -----------------------------------------------------------

    def run_outages(self):
        """--outages N: the whole API down N times (503, then hanging
        requests, alternately), a calm time before each; the recovery of each
        is the time from its end to the first child start after it."""
        a = self.a
        for slot in range(a.candidates):
            self.start(slot)
        processes.wait_until(lambda: self.leader_slot()[0] is not None, 15)
        self.note("first leader: %s" % self.leader_slot()[1])
        limit = a.lease_duration + a.retry_period
        self.outage_results = []   # (how, leader before, child stops during it, recovery s or None)
        for i in range(a.outages):
            self.wait(a.calm)
            how = "503" if i % 2 == 0 else "hang"
            _, before = self.leader_slot()
            stops_before = sum(1 for k, _, _ in workerlog.read_worker_log(self.workers) if k == "stop")
            if how == "503":
                self.server.set_faults(errorRate=1.0, errorStatus=503, seed=self.rng.randrange(1 << 30))
            else:
                self.server.set_faults(partitionedTokens=list(self.tokens), partitionMode="hang")
            self.note("outage %d (%s) for %.1fs; leader %r" % (i + 1, how, a.outage_seconds, before))
            self.wait(a.outage_seconds)
            self.server.clear_faults()
            ended = time.monotonic()
            entries = workerlog.read_worker_log(self.workers)
            stops = sum(1 for k, _, _ in entries if k == "stop") - stops_before
            self.note("outage %d ended; %d child stop(s) during it" % (i + 1, stops))
            first = [None]

            def recovered():
                starts = [t / 1e9 for k, _, t in workerlog.read_worker_log(self.workers) if k == "start" and t / 1e9 >= ended]
                if starts:
                    first[0] = min(starts)
                return bool(starts)
            end = time.monotonic() + limit + 5
            while time.monotonic() < end and not recovered():
                self.wait(0.05)
            rec = None if first[0] is None else first[0] - ended
            self.note("outage %d recovered %s" % (i + 1, "after %.3fs" % rec if rec is not None else "NOT within %.1fs" % (limit + 5)))
            self.outage_results.append((how, before, stops, rec))
        faults_stopped = time.monotonic()
        self.wait(a.calm)
        return self.outage_figures(faults_stopped, time.monotonic())

    def outage_figures(self, faults_stopped, finished):
        a = self.a
        runs, entries = self.intervals(finished)
        bad = workerlog.overlaps(entries)
        limit = a.lease_duration + a.retry_period
        recs = [r for _, _, _, r in self.outage_results]
        slow = [i + 1 for i, r in enumerate(recs) if r is None or r > limit]
        exits = {}
        for _, _, code, _ in self.ended:
            exits[code] = exits.get(code, 0) + 1
        lost = sum(1 for _, _, stops, _ in self.outage_results if stops > 0)
        # Standing by again, no kube-leader may exit; with exit they do.
        no_exit_needed = a.on_loss == "standby"
        ok = not bad and not slow and (not no_exit_needed or not self.ended)
        fig = [
            ("result", "pass" if ok else "FAIL"), ("mode", "outages"), ("kind", a.lock_kind), ("seed", a.seed),
            ("on_loss", a.on_loss or "exit"), ("candidates", a.candidates),
            ("lease_ms", fmt_ms(a.lease_duration)), ("renew_ms", fmt_ms(a.renew_deadline)),
            ("retry_ms", fmt_ms(a.retry_period)),
            ("outages", len(self.outage_results)), ("outage_s", "%g" % a.outage_seconds),
            ("outages_that_stopped_the_leader", lost),
            ("recovery_max_ms", fmt_ms(max([r for r in recs if r is not None], default=0))),
            ("recovery_limit_ms", fmt_ms(limit)), ("slow_recoveries", len(slow)),
            ("children", len(runs)), ("overlaps", len(bad)),
            ("kube_leader_exits", len(self.ended)),
            ("exits", ",".join("%s:%d" % (c, n) for c, n in sorted(exits.items(), key=lambda kv: str(kv[0]))) or "none"),
        ]
        for b in bad:
            self.note("OVERLAP: %s" % (b,))
        for i in slow:
            self.note("SLOW: outage %d recovered after %s (limit %.3fs)" % (i, recs[i - 1], limit))
        return ok, " ".join("%s=%s" % kv for kv in fig)

    # -- hand-over mode ------------------------------------------------------

    def prefer(self, name):
        """Names `name` as the lock's preferred holder: read, change, write
        with the resourceVersion read (again on a conflict). The HTTP status."""
        path = self.server.lock_path(self.a.lock_kind, self.lock)
        status = None
        for _ in range(20):
            status, obj = self.server.request("GET", path)
            if status != 200 or not isinstance(obj, dict):
                return status
            if self.a.lock_kind == "lease":
                obj.setdefault("spec", {})["preferredHolder"] = name
            else:
                obj.setdefault("metadata", {}).setdefault("annotations", {})[PREFERRED_ANNOTATION] = name
            status, _ = self.server.request("PUT", path, obj)
            if status != 409:
                return status
        return status

    def preferred(self):
        status, obj = self.server.request("GET", self.server.lock_path(self.a.lock_kind, self.lock))
        if status != 200 or not isinstance(obj, dict):
            return None
        if self.a.lock_kind == "lease":
            return (obj.get("spec") or {}).get("preferredHolder")
        return ((obj.get("metadata") or {}).get("annotations") or {}).get(PREFERRED_ANNOTATION)

    def hand_over_targets(self):
        """The kinds of names, in a seeded order: at least one of each when
        N >= 3, the rest mostly live standbys."""
        n = self.a.hand_overs
        kinds = ["standby", "absent", "leader"][:n]
        kinds += [self.rng.choice(["standby"] * 3 + ["absent", "leader"]) for _ in range(n - len(kinds))]
        self.rng.shuffle(kinds)
        return kinds

    def run_hand_overs(self):
        """--hand-overs N: name a preferred holder N times, a few seconds
        apart, and judge each (see the module text)."""
        a = self.a
        for slot in range(a.candidates):
            self.start(slot)
        processes.wait_until(lambda: self.leader_slot()[0] is not None, 15)
        self.note("first leader: %s" % self.leader_slot()[1])
        absent_limit = a.lease_duration + 3 * a.retry_period + 2.0
        self.ho_results = []   # (kind, named, leader before, outcome, seconds or None)
        for i, kind in enumerate(self.hand_over_targets()):
            self.wait(self.rng.uniform(1.0, 3.0))
            end = time.monotonic() + 2 * a.lease_duration + 5
            while self.leader_slot()[0] is None and time.monotonic() < end:
                self.wait(0.05)
            slot, leader = self.leader_slot()
            if slot is None:
                self.note("hand-over %d: no live leader (holder %r)" % (i + 1, leader))
                self.ho_results.append((kind, None, leader, "no-leader", None))
                continue
            if kind == "standby":
                current = self.preferred()
                live = [r.name for r in self.replicas
                        if r is not None and r.alive() and r.name != leader and r.name != current]
                if not live:
                    kind = "absent"
                else:
                    name = self.rng.choice(live)
            if kind == "absent":
                name = "absent-%d" % (i + 1)
            elif kind == "leader":
                name = leader
            stops_before = self.child_stops(leader)
            edited = time.monotonic()
            status = self.prefer(name)
            self.note("hand-over %d: named %s %r (leader %r): HTTP %s" % (i + 1, kind, name, leader, status))
            if status != 200:
                self.ho_results.append((kind, name, leader, "edit-failed", None))
                continue
            if kind == "leader":
                # Long enough for a few renews (each reads the answer).
                self.wait(3 * a.retry_period + 0.5)
                same = self.child_stops(leader) == stops_before and self.leader_slot()[1] == leader
                self.note("hand-over %d: leader named itself: %s" % (i + 1, "nothing moved" if same else "IT MOVED"))
                self.ho_results.append((kind, name, leader, "stayed" if same else "moved", None))
                continue
            limit = a.lease_duration if kind == "standby" else absent_limit
            first = [None]

            def started():
                starts = [(t / 1e9, ident) for k, ident, t in workerlog.read_worker_log(self.workers)
                          if k == "start" and t / 1e9 >= edited]
                if starts:
                    first[0] = min(starts)
                return bool(starts)
            end = edited + limit + 5
            while time.monotonic() < end and not started():
                self.wait(0.05)
            if first[0] is None:
                outcome, took = "no-leader", None
            else:
                took, ident = first[0][0] - edited, first[0][1]
                if kind == "standby":
                    outcome = "completed" if ident == name and took <= limit else ("slow" if ident == name else "wrong:" + ident)
                else:
                    outcome = "recovered" if took <= limit else "slow"
            self.note("hand-over %d: %s after %s" % (i + 1, outcome, "%.3fs" % took if took is not None else "-"))
            self.ho_results.append((kind, name, leader, outcome, took))
        faults_stopped = time.monotonic()
        self.wait(a.calm)
        return self.hand_over_figures(faults_stopped, time.monotonic())

    def counted_hand_overs(self):
        """(sum of kube_leader_hand_overs_total over the live replicas,
        HandedOver Events on the lock)."""
        metric = 0
        for r in self.replicas:
            if r is None or not r.alive():
                continue
            address = r.log_value("status endpoint listening", "status.address")
            try:
                text = urllib.request.urlopen("http://%s/metrics" % address, timeout=5).read().decode()
            except (OSError, ValueError) as e:
                self.note("cannot read /metrics of %s at %s: %s" % (r.name, address, e))
                return None, None
            for line in text.splitlines():
                if line.startswith("kube_leader_hand_overs_total{"):
                    metric += int(float(line.rsplit(" ", 1)[1]))
        status, body = self.server.request("GET", "/api/v1/namespaces/default/events")
        items = (body or {}).get("items", []) if status == 200 and isinstance(body, dict) else []
        return metric, sum(1 for e in items if e.get("reason") == "HandedOver")

    def hand_over_figures(self, faults_stopped, finished):
        a = self.a
        runs, entries = self.intervals(finished)
        bad = workerlog.overlaps(entries)
        res = self.ho_results
        by = lambda kind: [r for r in res if r[0] == kind]
        standby_ok = [r for r in by("standby") if r[3] == "completed"]
        absent_ok = [r for r in by("absent") if r[3] == "recovered"]
        leader_ok = [r for r in by("leader") if r[3] == "stayed"]
        failed = len(res) - len(standby_ok) - len(absent_ok) - len(leader_ok)
        # Hand-overs that happened: one per named standby or absent name that moved the lock.
        happened = sum(1 for r in res if r[0] in ("standby", "absent") and r[4] is not None)
        metric, events = self.counted_hand_overs()
        ok = not bad and not failed and not self.ended and metric == happened and events == happened
        took = [r[4] for r in standby_ok]
        fig = [
            ("result", "pass" if ok else "FAIL"), ("mode", "hand-overs"), ("kind", a.lock_kind), ("seed", a.seed),
            ("candidates", a.candidates),
            ("lease_ms", fmt_ms(a.lease_duration)), ("renew_ms", fmt_ms(a.renew_deadline)),
            ("retry_ms", fmt_ms(a.retry_period)),
            ("named", len(res)), ("to_standby", len(by("standby"))), ("to_absent", len(by("absent"))),
            ("to_leader", len(by("leader"))),
            ("completed", len(standby_ok)), ("hand_over_max_ms", fmt_ms(max(took, default=0))),
            ("hand_over_limit_ms", fmt_ms(a.lease_duration)),
            ("absent_recovered", len(absent_ok)),
            ("absent_recovery_max_ms", fmt_ms(max([r[4] for r in absent_ok], default=0))),
            ("leader_named_stayed", len(leader_ok)), ("failed", failed),
            ("hand_overs_metric", metric if metric is not None else "unread"),
            ("hand_over_events", events if events is not None else "unread"), ("hand_overs_expected", happened),
            ("children", len(runs)), ("overlaps", len(bad)), ("kube_leader_exits", len(self.ended)),
        ]
        for b in bad:
            self.note("OVERLAP: %s" % (b,))
        for r in res:
            if r not in standby_ok + absent_ok + leader_ok:
                self.note("FAILED: named %s %r (leader %r): %s after %s" % r)
        return ok, " ".join("%s=%s" % kv for kv in fig)

    def intervals(self, finished):
        """(start_s, end_s, ident) of every child run, on the monotonic clock.
        A child that recorded no stop (SIGKILLed with its kube-leader) ended
        when its kube-leader was seen to exit. One identity may run several
        children in turn (--on-loss standby leads again in the same process):
        each stop closes that identity's open run."""
        entries = workerlog.read_worker_log(self.workers)
        exited = {ident: t for _, ident, _, t in self.ended}
        out, open_runs = [], {}
        for k, ident, t in sorted(entries, key=lambda e: e[2]):
            if k == "start":
                if ident in open_runs:   # the earlier run recorded no stop (SIGKILLed)
                    out.append((open_runs[ident], t / 1e9, ident))
                open_runs[ident] = t / 1e9
            elif k == "stop" and ident in open_runs:
                out.append((open_runs.pop(ident), t / 1e9, ident))
        for ident, start in open_runs.items():
            out.append((start, exited.get(ident, finished), ident))
        return sorted(out), entries

    def figures(self, faults_stopped, finished):
        a = self.a
        runs, entries = self.intervals(finished)
        bad = workerlog.overlaps(entries)
        gap = longest_gap(runs, faults_stopped, finished)
        limit = a.lease_duration + a.retry_period
        exits = {}
        for _, _, code, _ in self.ended:
            exits[code] = exits.get(code, 0) + 1
        rpm = lambda role: (self.req[role] / (self.role_time[role] / 60.0)) if self.role_time[role] > 0 else 0.0
        ok = not bad and gap <= limit and not self.conn_losses
        fig = [
            ("result", "pass" if ok else "FAIL"), ("kind", a.lock_kind), ("seed", a.seed),
            ("seconds", "%g" % a.seconds), ("candidates", a.candidates),
            ("lease_ms", fmt_ms(a.lease_duration)), ("renew_ms", fmt_ms(a.renew_deadline)),
            ("retry_ms", fmt_ms(a.retry_period)),
            ("netns", 1 if self.topo else 0),
            ("faults", sum(self.counts.values())),
        ] + [(f.replace("-", "_"), n) for f, n in self.counts.items()] + [
            ("children", len(runs)), ("transitions", max(0, len(runs) - 1)), ("overlaps", len(bad)),
            ("leaders_lost_to_dead_conns", len(self.conn_losses)),
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
        if getattr(self, "server", None) is not None:
            self.server.stop()
        if self.topo is not None:
            left = self.topo.down()
            if left:
                sys.stderr.write("scripts/chaos: could not remove network namespaces %s\n" % " ".join(left))


def main(argv):
    a = parse_args(argv)
    # SIGTERM/SIGHUP end the run through the finally below (namespaces removed).
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda n, _f: sys.exit(128 + n))
    c = Chaos.__new__(Chaos)
    c.topo, c.replicas, c.server = None, [], None
    try:
        c.__init__(a)
    except BaseException:
        c.cleanup()
        raise
    ok = False
    keep = a.keep or a.workdir is not None
    try:
        ok, line = c.run_outages() if a.outages else c.run_hand_overs() if a.hand_overs else c.run()
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
