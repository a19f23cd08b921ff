"""kube-leader benchmark: one table of figures, each a median and its spread
(min-max) over repeated measurements, for both lock kinds side by side.
Run through scripts/bench (which builds the static release binaries first).

Every measurement runs real processes on this machine: the stripped static
kube-leader from dist/, kube-apiserver-fake, and worker.py as the child
(it records start/stop on CLOCK_MONOTONIC, so hand-over times are measured
from the old child's last act to the new child's first).

The figures come in measurement families (FAMILIES; --list-families):
size, startup, election, steady, surfaces, scale, hand-over-preferred. Each is one method
(Bench.family_NAME) over its rows (rows()); --families picks some, e.g.
`scripts/bench --quick --families startup`.
"""
import argparse
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from klharness import cluster, processes, procfs, workerlog

KINDS = ["configmap", "lease"]
# The measurement families in the order they run: name, what it measures,
# once per lock kind?, in --footprint? (Bench.family_NAME measures it; rows()
# names each row's family.)
FAMILIES = [
    ("size", "the stripped static binary's size", False, True),
    ("startup", "start-up overhead outside a cluster against /bin/true and tini-static; the test child's own start-up",
     False, False),
    ("election", "start to leader, graceful hand-over (plain and with label and Events), crash failover", True, False),
    ("steady", "steady state with default durations: requests per minute by role, the leader's VmRSS and RssAnon",
     True, True),
    ("surfaces", "steady state with label, Events and status endpoint: requests, memory, /metrics p50 and p99",
     True, True),
    ("scale", "50 candidates on one lock; 200 locks with 2 candidates each", True, False),
    ("hand-over-preferred", "preferredHolder / annotation edit → the named standby's child starts (the leader's watch)",
     True, False),
]
SHORT = ["--lease-duration", "4s", "--renew-deadline", "2s", "--retry-period", "500ms"]
# The surfaces (docs/surfaces.md), all on: the leader label, Events, the status endpoint.
SURFACES = ["--leader-label", "role=leader", "--events", "--status-addr", "127.0.0.1:0"]


def log(text):
    sys.stderr.write("==> %s\n" % text)
    sys.stderr.flush()


class Row:
    def __init__(self, figure, unit, fmt="%.1f", budget=None, check=None, note=""):
        self.figure, self.unit, self.fmt, self.budget, self.check, self.note = figure, unit, fmt, budget, check, note
        self.values = {k: [] for k in KINDS}

    def cell(self, kind):
        v = self.values[kind]
        if not v:
            return "n/a", ""
        med = statistics.median(v)
        spread = "" if len(v) == 1 else "%s–%s" % (self.fmt % min(v), self.fmt % max(v))
        return "%s %s" % (self.fmt % med, self.unit), spread

    def verdict(self):
        if self.check is None:
            return ""
        meds = [statistics.median(v) for v in self.values.values() if v]
        if not meds:
            return "not measured"
        return "ok" if all(self.check(m) for m in meds) else "**over**"


def rows(a):
    """The table's rows in order: key -> (family, Row). Notes name the run's parameters."""
    return {
        "size": ("size", Row("stripped static binary", "bytes", "%.0f", "≤ 12,000,000 bytes", lambda v: v <= 12000000,
                             "dist/kube-leader-linux-%s" % platform.machine())),
        "st_direct": ("startup", Row("outside-cluster start-up overhead vs the command alone", "ms", "%.2f", "≤ 2 ms",
                                     lambda v: v <= 2.0, "`kube-leader L -- /bin/true` − `/bin/true`; %d rounds × %d runs, interleaved; no API, so both kinds alike" % (a.rounds, a.startup_runs))),
        "st_tini": ("startup", Row("outside-cluster start-up overhead vs tini-static", "ms", "%.2f", None, None,
                                   "`kube-leader L -- /bin/true` − `tini-static -s -- /bin/true`")),
        "rss": ("steady", Row("resident memory of a supervising leader (VmRSS)", "MiB", "%.2f", "≤ 10 MiB",
                              lambda v: v <= 10.0, "default durations, after %gs of leading, one sample per window" % a.settle)),
        "anon": ("steady", Row("  of which private (RssAnon: heap, stacks, data)", "MiB", "%.2f", None, None,
                               "the rest of VmRSS is the binary's text mapped from the page cache (clean, shared)")),
        "ho": ("election", Row("graceful hand-over (child exits → next child starts), 3 candidates", "ms", "%.0f", "≤ 250 ms",
                               lambda v: v <= 250, "default durations (15s/10s/2s); %d hand-overs" % a.reps)),
        "fo": ("election", Row("crash failover (SIGKILL of the leader → next child starts)", "s", "%.2f", "≤ lease + 1 s = 5 s",
                               lambda v: v <= 5.0, "short durations: lease 4s, renew 2s, retry 500ms; %d kills" % a.failover_reps)),
        "rpm_l": ("steady", Row("API requests per minute, leader", "/min", "%.1f", "30 at 2 s retry",
                                lambda v: v <= 31.0, "default durations; %d windows of %gs" % (a.windows, a.window))),
        "rpm_s": ("steady", Row("API requests per minute, each standby", "/min", "%.2f", "≤ 2", lambda v: v <= 2.0,
                                "2 standbys × %d windows" % a.windows)),
        "ho_s": ("election", Row("graceful hand-over with `--leader-label` and `--events`, 3 candidates", "ms", "%.0f",
                                 "≤ 250 ms", lambda v: v <= 250, "as above, %d hand-overs; each Pod exists, the label moves" % a.reps)),
        "rpm_ls": ("surfaces", Row("API requests per minute, leader, with label, Events and status endpoint", "/min", "%.1f",
                                   "30 at 2 s retry", lambda v: v <= 31.0,
                                   "`%s`; steady state after the label and the Event are written; %d windows of %gs" % (
                                       " ".join(SURFACES), a.windows, a.window))),
        "rpm_ss": ("surfaces", Row("API requests per minute, each standby, with label, Events and status endpoint", "/min",
                                   "%.2f", "≤ 2", lambda v: v <= 2.0, "2 standbys × %d windows" % a.windows)),
        "m50": ("surfaces", Row("`/metrics` response time while leading, p50", "ms", "%.2f", None, None,
                                "%d sequential GETs, each on a new connection (connect to end of answer), from Python" % a.scrapes)),
        "m99": ("surfaces", Row("`/metrics` response time while leading, p99", "ms", "%.2f", "≤ 5 ms", lambda v: v <= 5.0,
                                "the same %d GETs; the answer is checked (200, master_status 1)" % a.scrapes)),
        "rss_s": ("surfaces", Row("resident memory of a supervising leader with label, Events, status endpoint (VmRSS)", "MiB",
                                  "%.2f", "≤ 10 MiB", lambda v: v <= 10.0, "one sample per window, before the /metrics GETs")),
        "anon_s": ("surfaces", Row("  of which private (RssAnon)", "MiB", "%.2f", None, None, "")),
        "ttl": ("election", Row("start to leader's child running, lock free", "ms", "%.0f", None, None,
                                "process spawn, TLS, GET 404, create, spawn child; %d starts" % a.reps)),
        "py": ("startup", Row("  of which the test child's own start-up (python3 worker.py)", "ms", "%.0f", None, None,
                              "reference: included in the hand-over and start rows")),
        "s50_rpm": ("scale", Row("50 candidates, 1 lock: API requests per minute, all replicas", "/min", "%.0f", None, None,
                                 "default durations; %gs window" % a.scale_window)),
        "s50_sb": ("scale", Row("50 candidates, 1 lock: busiest standby", "/min", "%.2f", "≤ 2", lambda v: v <= 2.0, "")),
        "s50_ho": ("scale", Row("50 candidates, 1 lock: graceful hand-over", "ms", "%.0f", "≤ 250 ms", lambda v: v <= 250,
                                "%d hand-overs; 49 standbys race" % a.scale_handovers)),
        "s200_rpm": ("scale", Row("200 locks × 2 candidates: API requests per minute, all replicas", "/min", "%.0f",
                                  None, None, "default durations; %gs window; 400 kube-leader processes" % a.scale_window)),
        "s200_sb": ("scale", Row("200 locks × 2 candidates: busiest standby", "/min", "%.2f", "≤ 2", lambda v: v <= 2.0, "")),
        "hop": ("hand-over-preferred", Row("preferred holder edited → named standby's child starts, median", "ms", "%.0f",
                                           "≤ child's stop + 250 ms", lambda v: v <= 270,
                                           "default durations (retry 2s), 3 candidates, edit at a random time between "
                                           "renews; %d edits; the test child stops within its 20 ms poll" % max(10, 2 * a.reps))),
        "hop95": ("hand-over-preferred", Row("  same, p95", "ms", "%.0f", "≤ child's stop + 250 ms", lambda v: v <= 270,
                                             "nearest-rank p95 of each run's edits")),
        "hop_s": ("hand-over-preferred", Row("  of which old child's stop record → new child", "ms", "%.0f", None, None,
                                             "release, the named standby's watch, acquire, spawn")),
        "s200_ho": ("scale", Row("200 locks × 2 candidates: graceful hand-over", "ms", "%.0f", "≤ 250 ms",
                                 lambda v: v <= 250, "%d locks, one at a time" % a.scale_handovers)),
    }


class Bench:
    def __init__(self, args, bins, work, families):
        self.a, self.bins, self.work = args, bins, work
        self.server = cluster.FakeServer(bins, os.path.join(work, "api"), state=False)
        # Only the rows of the families that run.
        self.r = {k: row for k, (family, row) in rows(args).items() if family in families}
        self.n = 0
        self.overlaps = 0

    # -- helpers -------------------------------------------------------------

    def token(self):
        self.n += 1
        tok = "bm%06d-%s" % (self.n, os.urandom(8).hex())
        status, body = self.server.register_token(tok)
        if status not in (200, 201):
            raise RuntimeError("registering a token failed: %s %s" % (status, body))
        return tok

    def replica(self, ident, lock, kind, group, timing=(), token=None, poll="0.02", extra=()):
        """A kube-leader whose worker writes to GROUP's log and flock file.
        With extra options (the surfaces), its Pod is created first: the
        leader label is put on the Pod named like the replica (POD_NAME)."""
        if extra:
            self.pod(ident)
        return cluster.Replica(self.bins, self.server, ident, lock, self.work, kind=kind, timing=list(timing), token=token,
                          extra=list(extra),
                          worker_log=os.path.join(self.work, group + ".workers"),
                          worker_lock=os.path.join(self.work, group + ".lock"),
                          worker_args=["--exit-file", os.path.join(self.work, "exit-" + ident), "--poll", poll])

    def pod(self, name):
        status, body = self.server.request("POST", "/api/v1/namespaces/default/pods", {
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, timeout=30)
        if status not in (201, 409):
            raise RuntimeError("creating Pod %s failed: %s %s" % (name, status, body))

    def pod_role(self, name):
        status, body = self.server.request("GET", "/api/v1/namespaces/default/pods/" + name, timeout=30)
        if status != 200 or not isinstance(body, dict):
            return "?"
        return (body.get("metadata", {}).get("labels") or {}).get("role")

    def entries(self, group):
        return workerlog.read_worker_log(os.path.join(self.work, group + ".workers"))

    def wait_start(self, group, after_ns, not_ident=None, timeout=30):
        """(ident, t_ns) of the first child start after after_ns."""
        def found():
            for k, i, t in self.entries(group):
                if k == "start" and t > after_ns and i != not_ident:
                    return i, t
            return None
        got = processes.wait_until(found, timeout, 0.005)
        if not got:
            raise RuntimeError("no child started in %s within %ss" % (group, timeout))
        return got

    def wait_stop(self, group, ident, timeout=10):
        def found():
            for k, i, t in self.entries(group):
                if k == "stop" and i == ident:
                    return t
            return None
        return processes.wait_until(found, timeout, 0.005)

    def check_overlaps(self, group):
        bad = workerlog.overlaps(self.entries(group))
        if bad:
            log("OVERLAP in %s: %s" % (group, bad))
        self.overlaps += len(bad)

    def stop_all(self, replicas):
        for r in replicas:
            r.signal(signal.SIGTERM)
        for r in replicas:
            try:
                r.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
            r.stop()

    # -- figures -------------------------------------------------------------

    def size(self, row):
        path = os.path.join(self.bins, "kube-leader")
        size = os.path.getsize(os.path.realpath(path))
        row.note += " (%.2f MiB); `scripts/test` fails above 12,000,000 bytes" % (size / 1048576)
        for k in KINDS:
            row.values[k].append(size)

    def startup(self, row_direct, row_tini):
        """Wall time of spawn + wait for three commands, interleaved in random
        order so that load from other processes on the machine hits all three
        alike: per round the median of each; overhead = difference of medians.
        (Interleaving matters on a shared machine; hyperfine runs each
        command as one block.)"""
        kube_leader = os.path.realpath(os.path.join(self.bins, "kube-leader"))
        cmds = [["/bin/true"], [kube_leader, "my-lock", "--", "/bin/true"],
                ["/usr/bin/tini-static", "-s", "--", "/bin/true"]]
        env = {"PATH": "/usr/bin:/bin"}
        devnull = os.open(os.devnull, os.O_WRONLY)
        fa = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
        rng = random.Random(1)

        def once(argv):
            t0 = time.perf_counter_ns()
            pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
            _, status = os.waitpid(pid, 0)
            t = time.perf_counter_ns() - t0
            if status != 0:
                raise RuntimeError("%s exited with status %d" % (" ".join(argv), status))
            return t / 1e6

        for _ in range(20):
            for c in cmds:
                once(c)
        for _ in range(self.a.rounds):
            times = [[], [], []]
            for _ in range(self.a.startup_runs):
                order = [0, 1, 2]
                rng.shuffle(order)
                for i in order:
                    times[i].append(once(cmds[i]))
            direct, kl_, tini = (statistics.median(t) for t in times)
            for k in KINDS:
                row_direct.values[k].append(kl_ - direct)
                row_tini.values[k].append(kl_ - tini)
        os.close(devnull)

    def python_start(self, row):
        """The test child's own start-up (python3 worker.py), included in the
        hand-over and start-to-leader figures."""
        group = "py"
        for i in range(self.a.reps):
            t0 = time.monotonic_ns()
            p = subprocess.Popen(["python3", processes.WORKER, os.path.join(self.work, group + ".workers"),
                                  os.path.join(self.work, group + ".lock"), "py%d" % i, "--exit-after", "0"])
            _, t = self.wait_start(group, t0)
            p.wait()
            for k in KINDS:
                row.values[k].append((t - t0) / 1e6)

    def start_to_leader(self, kind, row):
        for i in range(self.a.reps):
            group = "free-%s-%d" % (kind, i)
            t0 = time.monotonic_ns()
            r = self.replica("free-%s-%d" % (kind, i), group, kind, group)
            _, t = self.wait_start(group, t0)
            row.values[kind].append((t - t0) / 1e6)
            self.stop_all([r])

    def handover(self, kind, row, candidates, timing=(), reps=None, group=None, poll="0.02", settle=1.0, extra=()):
        """Graceful: the leader's child exits by itself; time from its stop
        record to the next child's start record."""
        group = group or "handover-%s-%d" % (kind, candidates)
        reps = reps or self.a.reps
        gen = {}
        replicas = {}

        def start(name):
            gen[name] = gen.get(name, 0) + 1
            ident = "%s.%d" % (name, gen[name])
            replicas[name] = self.replica(ident, group, kind, group, timing=timing, poll=poll, extra=extra)

        names = ["%s-c%d" % (group, i) for i in range(candidates)]
        for name in names:
            start(name)
        leader, _ = self.wait_start(group, 0, timeout=60)
        time.sleep(settle)
        for _ in range(reps):
            open(os.path.join(self.work, "exit-" + leader), "w").close()
            stopped = self.wait_stop(group, leader)
            new, t = self.wait_start(group, stopped, not_ident=leader)
            row.values[kind].append((t - stopped) / 1e6)
            name = leader.rsplit(".", 1)[0]
            replicas[name].proc.wait(10)
            replicas[name].stop()
            start(name)
            leader = new
            time.sleep(settle)
        self.check_overlaps(group)
        return replicas

    def failover(self, kind, row):
        """SIGKILL of the leading kube-leader (its child dies with it):
        time from the kill to the next child's start record (short durations)."""
        group = "failover-%s" % kind
        gen, replicas = {}, {}

        def start(name):
            gen[name] = gen.get(name, 0) + 1
            replicas[name] = self.replica("%s.%d" % (name, gen[name]), group, kind, group, timing=SHORT)

        for name in ("%s-a" % group, "%s-b" % group, "%s-c" % group):
            start(name)
        leader, _ = self.wait_start(group, 0)
        time.sleep(1.0)
        for _ in range(self.a.failover_reps):
            name = leader.rsplit(".", 1)[0]
            t0 = time.monotonic_ns()
            replicas[name].signal(signal.SIGKILL)
            new, t = self.wait_start(group, t0, not_ident=leader)
            row.values[kind].append((t - t0) / 1e9)
            replicas[name].stop()
            start(name)
            leader = new
            time.sleep(1.0)
        self.check_overlaps(group)
        self.stop_all(replicas.values())

    def steady(self, kind, rss_row, anon_row, leader_row, standby_row, extra=(), group=None):
        """3 replicas (own tokens), default durations: requests per minute by
        role over windows of steady state; the leader's VmRSS at each window.
        Returns the replicas, still running, and the group."""
        group = group or "steady-%s" % kind
        toks = [self.token() for _ in range(3)]
        replicas = [self.replica("%s-%d" % (group, i), group, kind, group, token=toks[i], extra=extra)
                    for i in range(3)]
        self.wait_start(group, 0)
        time.sleep(self.a.settle)
        by_ident = {r.name: (r, tok) for r, tok in zip(replicas, toks)}
        prev = self.server.stats()["byToken"]
        for _ in range(self.a.windows):
            time.sleep(self.a.window)
            cur = self.server.stats()["byToken"]
            holder = self.server.holder(kind, group)
            for ident, (r, tok) in by_ident.items():
                n = sum(cur.get(tok[:8], {}).values()) - sum(prev.get(tok[:8], {}).values())
                rpm = n * 60.0 / self.a.window
                (leader_row if ident == holder else standby_row).values[kind].append(rpm)
                if ident == holder:
                    rss_row.values[kind].append(vm(r.pid, "VmRSS") / 1024.0)
                    anon_row.values[kind].append(vm(r.pid, "RssAnon") / 1024.0)
            prev = cur
        self.check_overlaps(group)
        return replicas, group

    def surfaces(self, kind, rss_row, anon_row, leader_row, standby_row, p50_row, p99_row):
        """steady() with the leader label, Events and the status endpoint on;
        then the leader's /metrics scraped self.a.scrapes times, one plain
        HTTP/1.1 GET per connection (connect to end of answer)."""
        replicas, group = self.steady(kind, rss_row, anon_row, leader_row, standby_row, extra=SURFACES,
                                      group="surfaces-%s" % kind)
        holder = self.server.holder(kind, group)
        roles = {r.name: self.pod_role(r.name) for r in replicas}
        if roles.get(holder) != "leader" or any(v for n, v in roles.items() if n != holder):
            raise RuntimeError("leader label not where it belongs (holder %s): %s" % (holder, roles))
        leader = next(r for r in replicas if r.name == holder)
        addr = processes.wait_until(lambda: leader.log_value("status endpoint listening", "status.address"), 10)
        if not addr:
            raise RuntimeError("no 'status endpoint listening' in %s" % leader.log_path)
        host, port = addr.rsplit(":", 1)
        host = host.strip("[]")
        want = 'leader_election_master_status{name="%s"} 1' % group
        request = b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
        times = []
        for i in range(self.a.scrapes + 20):
            t0 = time.perf_counter_ns()
            with socket.create_connection((host, int(port)), timeout=10) as s:
                s.sendall(request)
                chunks = []
                while True:
                    c = s.recv(65536)
                    if not c:
                        break
                    chunks.append(c)
            t = time.perf_counter_ns() - t0
            body = b"".join(chunks).decode(errors="replace")
            if not body.startswith("HTTP/1.1 200") or want not in body:
                raise RuntimeError("/metrics of the leader %s: unexpected answer %r" % (holder, body[:300]))
            if i >= 20:  # the first 20 warm up
                times.append(t / 1e6)
        times.sort()
        p50_row.values[kind].append(statistics.median(times))
        p99_row.values[kind].append(times[min(len(times) - 1, int(len(times) * 0.99))])
        self.stop_all(replicas)

    def fresh_server(self, name):
        """A new, empty kube-apiserver-fake for a scale run (the shared one
        keeps the objects of earlier runs)."""
        self.server.stop()
        self.server = cluster.FakeServer(self.bins, os.path.join(self.work, name), state=False)

    def scale(self, kind, locks, per_lock, rpm_row, standby_row, handover_row, handover_locks):
        """`locks` locks with `per_lock` candidates each, default durations:
        total requests per minute of all replicas, the busiest standby, and
        graceful hand-overs on a few of the locks."""
        self.fresh_server("api-%s-%dx%d" % (kind, locks, per_lock))
        poll = "0.25"
        toks, replicas = {}, {}
        for l in range(locks):
            group = "scale-%s-%dx%d-%d" % (kind, locks, per_lock, l)
            for c in range(per_lock):
                ident = "%s-c%d.1" % (group, c)
                toks[ident] = self.token()
                replicas[ident] = self.replica(ident, group, kind, group, token=toks[ident], poll=poll)
        groups = sorted({i.rsplit("-c", 1)[0] for i in replicas})
        deadline = time.monotonic() + 120
        for g in groups:
            self.wait_start(g, 0, timeout=max(1, deadline - time.monotonic()))
        time.sleep(self.a.settle)
        prev = self.server.stats()["byToken"]
        time.sleep(self.a.scale_window)
        cur = self.server.stats()["byToken"]
        holders = self.holders(kind)
        total, standby = 0, []
        for ident, tok in toks.items():
            n = sum(cur.get(tok[:8], {}).values()) - sum(prev.get(tok[:8], {}).values())
            total += n
            if holders.get(ident.rsplit("-c", 1)[0]) != ident:
                standby.append(n * 60.0 / self.a.scale_window)
        rpm_row.values[kind].append(total * 60.0 / self.a.scale_window)
        standby_row.values[kind].append(max(standby) if standby else 0.0)
        # Graceful hand-overs on the first few locks, one at a time.
        for g in groups[:handover_locks]:
            leader = holders.get(g)
            if not leader:
                continue
            open(os.path.join(self.work, "exit-" + leader), "w").close()
            stopped = self.wait_stop(g, leader)
            _, t = self.wait_start(g, stopped, not_ident=leader)
            handover_row.values[kind].append((t - stopped) / 1e6)
        for g in groups:
            self.check_overlaps(g)
        self.stop_all(replicas.values())

    def holders(self, kind):
        path = ("/apis/coordination.k8s.io/v1/namespaces/default/leases" if kind == "lease"
                else "/api/v1/namespaces/default/configmaps")
        status, body = self.server.request("GET", path, timeout=30)
        out = {}
        for item in (body or {}).get("items", []):
            out[item["metadata"]["name"]] = cluster.lock_record(kind, item).get("holderIdentity")
        return out

    # -- the families ----------------------------------------------------------
    # Each family measures a few rows (defined in rows()); one method per
    # family, called once or once per lock kind (FAMILIES).

    def family_size(self):
        self.size(self.r["size"])

    def family_startup(self):
        self.startup(self.r["st_direct"], self.r["st_tini"])
        self.python_start(self.r["py"])

    def family_election(self, kind):
        r = self.r
        log("%s: start to leader" % kind)
        self.start_to_leader(kind, r["ttl"])
        log("%s: graceful hand-over" % kind)
        self.stop_all(self.handover(kind, r["ho"], 3).values())
        log("%s: crash failover" % kind)
        self.failover(kind, r["fo"])
        log("%s: graceful hand-over with leader label and Events" % kind)
        self.stop_all(self.handover(kind, r["ho_s"], 3, group="surfaces-handover-%s" % kind, extra=SURFACES[:3])
                      .values())

    def family_steady(self, kind):
        r = self.r
        self.stop_all(self.steady(kind, r["rss"], r["anon"], r["rpm_l"], r["rpm_s"])[0])

    def family_surfaces(self, kind):
        r = self.r
        self.surfaces(kind, r["rss_s"], r["anon_s"], r["rpm_ls"], r["rpm_ss"], r["m50"], r["m99"])

    def family_scale(self, kind):
        r = self.r
        log("%s: 50 candidates on one lock" % kind)
        self.scale50(kind, r["s50_rpm"], r["s50_sb"], r["s50_ho"])
        log("%s: 200 locks x 2 candidates" % kind)
        self.scale(kind, 200, 2, r["s200_rpm"], r["s200_sb"], r["s200_ho"], self.a.scale_handovers)

    def family_hand_over_preferred(self, kind):
        r = self.r
        self.handover_preferred(kind, r["hop"], r["hop95"], r["hop_s"])

    def prefer(self, kind, lock, name):
        """`kubectl annotate` / `kubectl patch`: read, name NAME as preferred
        holder, write with the version read (again on a conflict)."""
        path = ("/api/v1/namespaces/default/configmaps/" if kind == "configmap"
                else "/apis/coordination.k8s.io/v1/namespaces/default/leases/") + lock
        for _ in range(20):
            status, body = self.server.request("GET", path, timeout=30)
            if status != 200 or not isinstance(body, dict):
                raise RuntimeError("GET %s answered %s" % (path, status))
            if kind == "configmap":
                body.setdefault("metadata", {}).setdefault("annotations", {})["kube-leader.io/preferred-holder"] = name
            else:
                body.setdefault("spec", {})["preferredHolder"] = name
            status, _ = self.server.request("PUT", path, body, timeout=30)
            if status == 200:
                return
            if status != 409:
                raise RuntimeError("PUT %s answered %s" % (path, status))
        raise RuntimeError("the lock kept conflicting")

    def handover_preferred(self, kind, row, row95, row_stop):
        """Hand-over when asked: the owner names a standby as preferred holder at
        a random time between the leader's renews (retry 2 s); time from the
        edit to the named standby's child start, and from the old child's
        stop record to it. The old kube-leader stands by again."""
        group = "preferred-%s" % kind
        names = ["%s-c%d" % (group, i) for i in range(3)]
        replicas = [self.replica(n, group, kind, group) for n in names]
        leader, _ = self.wait_start(group, 0, timeout=60)
        time.sleep(self.a.settle)
        rng = random.Random(22)
        took = []
        for _ in range(max(10, 2 * self.a.reps)):
            target = rng.choice([n for n in names if n != leader])
            time.sleep(rng.uniform(0.0, 2.0))
            t0 = time.monotonic_ns()
            self.prefer(kind, group, target)
            new, t = self.wait_start(group, t0, timeout=30)
            stops = [ts for k, i, ts in self.entries(group) if k == "stop" and i == leader and ts > t0]
            if new != target:
                log("the named standby %s did not lead next (%s did)" % (target, new))
            took.append((t - t0) / 1e6)
            row.values[kind].append((t - t0) / 1e6)
            if stops:
                row_stop.values[kind].append((t - stops[0]) / 1e6)
            leader = new
            time.sleep(1.0)
        took.sort()
        row95.values[kind].append(took[max(0, -(-len(took) * 95 // 100) - 1)])
        self.check_overlaps(group)
        self.stop_all(replicas)

    def run(self, families):
        for name, what, per_kind, _ in FAMILIES:
            if name not in families:
                continue
            method = getattr(self, "family_" + name.replace("-", "_"))
            for kind in (KINDS if per_kind else [None]):
                log("%s%s (%s)" % (name, ": " + kind if kind else "", what))
                method(kind) if kind else method()

    def scale50(self, kind, rpm_row, standby_row, handover_row):
        """50 candidates on one lock: requests per minute over a window, then
        repeated hand-overs with 49 standbys racing."""
        group = "scale50-%s" % kind
        self.fresh_server("api-" + group)
        toks = {}
        replicas = []
        for c in range(50):
            ident = "%s-c%d.1" % (group, c)
            toks[ident] = self.token()
            replicas.append(self.replica(ident, group, kind, group, token=toks[ident], poll="0.25"))
        self.wait_start(group, 0, timeout=60)
        time.sleep(self.a.settle)
        prev = self.server.stats()["byToken"]
        time.sleep(self.a.scale_window)
        cur = self.server.stats()["byToken"]
        holder = self.server.holder(kind, group)
        total, standby = 0, []
        for ident, tok in toks.items():
            n = sum(cur.get(tok[:8], {}).values()) - sum(prev.get(tok[:8], {}).values())
            total += n
            if ident != holder:
                standby.append(n * 60.0 / self.a.scale_window)
        rpm_row.values[kind].append(total * 60.0 / self.a.scale_window)
        standby_row.values[kind].append(max(standby))
        leader = holder
        for _ in range(self.a.scale_handovers):
            open(os.path.join(self.work, "exit-" + leader), "w").close()
            stopped = self.wait_stop(group, leader)
            new, t = self.wait_start(group, stopped, not_ident=leader)
            handover_row.values[kind].append((t - stopped) / 1e6)
            leader = new
            time.sleep(1.0)
        self.check_overlaps(group)
        self.stop_all(replicas)

    def table(self):
        lines = ["| figure | configmap median | spread | lease median | spread | budget | verdict | how |",
                 "|---|---|---|---|---|---|---|---|"]
        for r in self.r.values():
            c, cs = r.cell("configmap")
            l, ls = r.cell("lease")
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r.figure, c, cs, l, ls, r.budget or "", r.verdict(), r.note))
        return "\n".join(lines)


def vm(pid, key):
    return procfs.status_kib(pid, key) or 0


def machine():
    return "%d CPUs (`nproc`), %s, %.0f GiB RAM, Linux %s, %s" % (
        os.cpu_count(), procfs.cpu_model(), procfs.mem_total_gib(), platform.release(),
        platform.freedesktop_os_release().get("PRETTY_NAME", "") if hasattr(platform, "freedesktop_os_release") else "")


def main(argv):
    p = argparse.ArgumentParser(prog="scripts/bench")
    p.add_argument("--reps", type=int, default=10, help="hand-overs and starts per lock kind (default 10)")
    p.add_argument("--failover-reps", type=int, default=5)
    p.add_argument("--rounds", type=int, default=5, help="start-up timing rounds (default 5)")
    p.add_argument("--startup-runs", type=int, default=300, help="runs per command per start-up round")
    p.add_argument("--windows", type=int, default=3, help="steady-state windows (default 3)")
    p.add_argument("--window", type=float, default=20.0, help="seconds per steady-state window (default 20)")
    p.add_argument("--settle", type=float, default=5.0, help="seconds of leading before measuring (default 5)")
    p.add_argument("--scale-window", type=float, default=30.0, help="seconds measured in the scale runs")
    p.add_argument("--scale-handovers", type=int, default=5)
    p.add_argument("--scrapes", type=int, default=1000, help="GET /metrics per lock kind for the p50/p99 rows")
    p.add_argument("--families", metavar="A,B", help="only these measurement families (default: all; --list-families)")
    p.add_argument("--list-families", action="store_true", help="list the measurement families and exit")
    p.add_argument("--no-scale", action="store_true", help="skip the scale family (50 candidates, 200 locks)")
    p.add_argument("--quick", action="store_true", help="few repetitions, short windows (for checking the script)")
    p.add_argument("--footprint", action="store_true",
                   help="only the families size, steady and surfaces (VmRSS, RssAnon, requests, /metrics): "
                        "about 3 minutes; for comparing builds")
    p.add_argument("--binary", metavar="FILE",
                   help="measure this kube-leader instead of building one (scripts/bench; e.g. an older build)")
    p.add_argument("--write", metavar="FILE", help="also write the table and the machine into FILE (Markdown)")
    a = p.parse_args(argv)
    if a.list_families:
        for name, what, per_kind, footprint in FAMILIES:
            print("%-9s %s%s%s" % (name, what, " (per lock kind)" if per_kind else "", "; in --footprint" if footprint else ""))
        return 0
    names = [f[0] for f in FAMILIES]
    if a.families:
        families = [f for f in a.families.split(",") if f]
        unknown = [f for f in families if f not in names]
        if unknown or not families:
            p.error("unknown families %s; see --list-families" % ", ".join(unknown) if unknown else "--families is empty")
    elif a.footprint:
        families = [f[0] for f in FAMILIES if f[3]]
    else:
        families = [n for n in names if not (a.no_scale and n == "scale")]
    if a.quick:
        a.reps, a.failover_reps, a.rounds, a.startup_runs = 3, 2, 2, 50
        a.windows, a.window, a.settle, a.scale_window, a.scale_handovers, a.scrapes = 1, 10.0, 2.0, 10.0, 2, 200
    bins = processes.bin_dir()
    work = tempfile.mkdtemp(prefix="kube-leader-bench-")
    started = time.monotonic()
    load_before = os.getloadavg()
    b = Bench(a, bins, work, families)
    try:
        b.run(families)
    finally:
        b.server.stop()
    took = time.monotonic() - started
    load_after = os.getloadavg()
    changed, skip = [], False
    for x in argv:
        if skip or x.startswith("--write="):
            skip = False
            continue
        skip = x == "--write"
        if not skip:
            changed.append(x)
    head = ("Measured on: %s. `scripts/bench` took %.0f s; child-overlap checks during the bench: %d overlaps. "
            "Load average (1/5/15 min) at the start %.2f/%.2f/%.2f, at the end %.2f/%.2f/%.2f, on %d CPUs "
            "(other work was running on the machine).%s" % (
                machine(), took, b.overlaps, *load_before, *load_after, os.cpu_count(),
                " Options other than the defaults: `%s`." % " ".join(changed) if changed else ""))
    table = b.table()
    print(table)
    print()
    print(head)
    if a.write:
        with open(a.write, "w") as f:
            f.write(DOC_HEAD)
            f.write(table + "\n\n" + head + "\n")
            f.write(DOC_TAIL)
    log("work dir: %s" % work)
    return 1 if b.overlaps else 0


DOC_HEAD = """## Performance

`scripts/bench` measures everything below in one run, on this machine, with
real processes: the stripped static `kube-leader` from `scripts/build-static`,
`kube-apiserver-fake` over TLS, and a small Python child (`scripts/lib/worker.py`)
that records its start and stop on `CLOCK_MONOTONIC`. Each figure is the
median of repeated measurements; *spread* is min–max. Budgets are those of
the kube-leader issue and of its surfaces. The binary's size is in bytes, memory in MiB (2^20 bytes).

"""
DOC_TAIL = """
Notes:

- Hand-over and start-up figures include the test child's own start-up
  (Python), listed separately for reference; with a static binary as the
  child they are shorter by about that much.
- Crash failover uses short durations (lease 4 s) to keep the run short; it
  scales with `--lease-duration` (≤ lease + 1 s). All other rows use the
  defaults (lease 15 s, renew deadline 10 s, retry period 2 s).
- Standbys make no requests at steady state: they hold one watch each (300 s
  server-side timeout) and learn of every renew and release from it.
- The rows "with label, Events and status endpoint" run the replicas with
  `--leader-label role=leader --events --status-addr 127.0.0.1:0` ([surfaces.md](surfaces.md)),
  each replica's Pod created in the fake first. The label and the Events are
  written only when leadership changes (2 requests per acquisition, +1 per
  stale label, 1 per release; 1 per Event), so at steady state neither the
  leader nor the standbys pay anything for them; the hand-over row includes
  them. The bench also checks that the label sits on the holder's Pod only.
- `/metrics` is timed from Python: connect, send one `GET /metrics` with
  `Connection: close`, read to end of file; so the figure includes Python's
  own socket overhead and the TCP handshake, not only kube-leader's answer.
- Size: kube-leader's modules are built without the implicit
  `_StringProcessing` and `_Concurrency` imports (see `lean` in
  Package.swift); what remains is mostly the Swift runtime (about 5 MB),
  OpenSSL's libcrypto (2.9 MB) and glibc (0.9 MB); kube-leader's own code is
  under 0.5 MB. `scripts/test` fails above 12,000,000 bytes. The
  release build uses `-Osize`, lld with `--icf=all` and no reflection
  metadata in kube-leader's modules (docs/release.md, "Size flags"); compare
  two builds with `scripts/bench --footprint --binary FILE` (size and the
  steady-state rows only, about 4 minutes each).
- Resident memory: only about 0.75 MiB of VmRSS is private (RssAnon: heap,
  stacks, data). The rest is the binary's own code and read-only data mapped
  from the page cache; this kernel maps file pages in large folios, so most
  of the text segment counts once a few functions in it run. Those pages are
  clean, shared by every process running the same file, and reclaimable.
- The machine is shared; start-up overheads in particular vary with load.
  Re-run with `scripts/bench --write docs/bench.md`.
"""

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
