"""Runs the built kube-leader against hostile_server.py, one case per mode.

Each case starts a fresh server (its own process) and one kube-leader
replica (lease 5s, renew deadline 3s, retry period 1s) whose child writes a
marker file, watches both for a few seconds, and asserts:
  - exit: the exit code (and a message on stderr) when the case must exit,
    otherwise that kube-leader is still running;
  - lock: the child never ran without kube-leader holding the lock (by the
    server's record of applied writes), and a leader's child was dead before
    its lease, counted from its last applied renew, ran out;
  - child: whether the child had to start (control cases) or must never;
  - rate: per retry period at most one read, one watch and one write, no burst
    (and, in cases marked watch_gap, no two watches within a retry period);
  - cpu: kube-leader's CPU time near zero while it waits;
  - crash: no death by SIGILL/SIGSEGV/SIGTRAP/SIGABRT/SIGBUS;
  - rss: bounded resident memory.
Usage: python3 -m klharness.hostile [--only NAME,...] [--jobs N] [--list] [--markdown]
Needs KL_BIN_DIR (or builds' --show-bin-path). Standard library only.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from klharness import hostile_server, processes, procfs

# Short, within the validation: a ConfigMap lock needs renew-deadline >
# retry-period + 1s (whole-second record times); kill-grace defaults to
# lease - renew - 1s = 1s.
LEASE, RENEW, RETRY = 5.0, 3.0, 1.0
CASE_SECONDS = 12.0
CPU_MAX = 0.15          # fraction of one core while waiting (a busy loop is ~1.0)
RSS_MAX_MIB = 96        # caps are 8 MiB per body and 4 MiB per watch line
BURST_MAX = 8           # requests in any 1 s (hot loops sent thousands)
# What kube-leader assumes of the API server's watch bookmarks (kube-apiserver's
# watch cache sends one about every minute); a standby whose watch sends
# nothing at all, not even a bookmark, must notice within about two intervals.
BOOKMARK_INTERVAL = 60.0
CRASH_SIGNALS = {signal.SIGILL, signal.SIGSEGV, signal.SIGTRAP, signal.SIGABRT, signal.SIGBUS, signal.SIGFPE}


class Case:
    def __init__(self, name, mode, kind="configmap", child="never", exit=None, message=None,
                 token_text="tok-1\n", extra_args=(), lost=False, rate=True, dns=None, api_path="", cpu=True,
                 watch_gap=False, keeps=False, log_has=None, report_min=None, seconds=None, child_by=None):
        self.name = name
        self.mode = mode
        self.kind = kind
        self.child = child        # "starts", "never", or "any"
        self.exit = exit          # None: must still run at the end; int: that exit code; set: one of them
        self.message = message    # substring of stderr when it exits
        self.token_text = token_text
        self.extra_args = list(extra_args)
        self.lost = lost          # leader loses the lock: child dead before last applied renew + lease
        self.rate = rate
        self.cpu = cpu            # False: kube-leader must read a flood until a deadline (renew-trickle/endless)
        self.dns = dns            # IP of the case's own DNS server: kube-leader reaches the API by name
        self.api_path = api_path  # appended to the API URL (a wrong path prefix)
        self.watch_gap = watch_gap  # no two watch requests within a retry period, from the start
        self.keeps = keeps        # a leader that must keep its lock: the child, once started, runs to the end
        self.log_has = log_has    # text kube-leader's log must contain (a warning it must give)
        self.report_min = dict(report_min or {})  # server report fields proving the fault happened
        self.seconds = seconds or CASE_SECONDS    # how long the case runs
        self.child_by = child_by  # the child must have started within this many seconds of the start


def cases():
    out = [
        Case("control-configmap", "normal", child="starts"),
        Case("control-lease", "normal", kind="lease", child="starts"),
        Case("token-crlf", "token-crlf", child="starts", token_text="tok-1\r\n"),
        Case("token-injected", "normal", token_text="tok-1\r\nGET /injected HTTP/1.1\r\nX: y\r\n", exit=2,
             message="token file"),
        Case("retry-1ns", "normal", extra_args=["--retry-period", "1ns"], exit=2, message="retry"),
        Case("namespace-typo", "normal", extra_args=["--namespace", "Bad_Namespace"], exit=2, message="Bad_Namespace"),
        Case("create-other-holder", "create-other-holder"),
        Case("create-other-holder-lease", "create-other-holder", kind="lease"),
        Case("wrong-path-prefix", "normal", api_path="/wrong/prefix", exit={None, 2}, message="404"),
        Case("create-404", "create-404", exit={None, 2}, message="namespace"),
        Case("create-500", "create-500"),
        Case("get-404-create-409", "get-404-create-409"),
        Case("get-500", "get-500"),
        Case("update-409", "update-409"),
        Case("update-409-lease", "update-409", kind="lease"),
        Case("update-404", "update-404"),
        Case("update-500", "update-500"),
        Case("body-not-json", "body-not-json"),
        Case("body-truncated", "body-truncated"),
        Case("body-array", "body-array"),
        Case("get-trickle", "get-trickle"),
        Case("get-endless", "get-endless"),
        Case("annotation-not-string", "annotation-not-string"),
        Case("record-not-json", "record-not-json"),
        Case("lease-spec-not-object", "lease-spec-not-object", kind="lease"),
        Case("lease-spec-array", "lease-spec-array", kind="lease"),
    ]
    for kind in ("configmap", "lease"):
        for m in ("record-transitions-huge", "record-transitions-int64-overflow", "record-lease-9223372036",
                  "record-lease-9300000000", "record-lease-int64-max", "record-lease-huge-string",
                  "record-lease-zero", "record-lease-negative", "record-holder-not-string"):
            out.append(Case("%s-%s" % (m, kind), m, kind=kind))
    for m in ("watch-blank-lines", "watch-unknown-type", "watch-410", "watch-http-410", "watch-200-empty",
              "watch-deleted-no-metadata", "watch-other-objects", "watch-line-never-ends"):
        out.append(Case(m, m))
    for m in ("watch-410", "watch-200-empty"):
        out.append(Case(m + "-lease", m, kind="lease"))
    for kind in ("configmap", "lease"):
        out.append(Case("watch-open-late-" + kind, "watch-open-late", kind=kind, watch_gap=True))
        out.append(Case("read-retry-watch-" + kind, "read-retry-watch", kind=kind, watch_gap=True))
    for m in ("renew-409", "renew-404", "renew-500", "renew-trickle", "renew-endless"):
        # A renew answered by a flood is read until its deadline: CPU then is
        # the price of the bounded read, not a busy wait.
        out.append(Case(m + "-configmap", m, child="starts", exit=3, message="", lost=True,
                        cpu=m not in ("renew-trickle", "renew-endless")))
    for m in ("renew-409", "renew-404"):
        out.append(Case(m + "-lease", m, kind="lease", child="starts", exit=3, message="", lost=True))
    for kind in ("configmap", "lease"):
        # A leader keeps its renew-deadline rule under 403 (docs/safety.md, "Authorization outages"):
        # it retries until the deadline, then loses; it does not exit 2.
        out.append(Case("renew-403-" + kind, "renew-403", kind=kind, child="starts", exit=3, message="", lost=True))
        # Row 4: the renew's kept-alive connection goes silent; a second
        # attempt on a fresh connection renews in time and the child runs on.
        out.append(Case("silent-keepalive-" + kind, "silent-keepalive", kind=kind, child="starts", keeps=True,
                        report_min={"silenced": 0.0}))
        # Row 5: a short authorization outage after reads worked: the standby
        # retries with a warning, recovers and acquires once the holder is
        # gone; as leader one renew answered 403 costs it nothing.
        out.append(Case("authz-outage-" + kind, "authz-outage", kind=kind, child="starts", keeps=True, log_has="Forbidden",
                        report_min={"outage_answers": 2, "leader_denied": 1}, seconds=16.0))
        # Row 4, standby side: a watch that sends nothing, not even bookmarks,
        # is noticed within about two bookmark intervals; the release it hid
        # is then read and the lock taken.
        out.append(Case("watch-silent-" + kind, "watch-silent", kind=kind, child="starts", keeps=True,
                        report_min={"released_at": 0.0}, seconds=3.0 + 2 * BOOKMARK_INTERVAL + 10.0,
                        child_by=3.0 + 2 * BOOKMARK_INTERVAL + 6.0))
    out.append(Case("renew-trickle-lease", "renew-trickle", kind="lease", child="starts", exit=3, message="", lost=True,
                    cpu=False))
    out.append(Case("dns-down", "dns-down", child="starts", exit=3, message="resolving", lost=True, dns="127.0.77.53"))
    return out


def markdown_table():
    """The cases table of docs/hostile-server.md."""
    rows = ["| case | lock | mode | expected |", "|---|---|---|---|"]
    for c in cases():
        exp = [{"starts": "child starts", "never": "no child", "any": "child may start"}[c.child]]
        named = " naming %r" % c.message if c.message else ""
        if isinstance(c.exit, set):
            exp.append("runs on, or exits " + "/".join(str(x) for x in sorted(x for x in c.exit if x is not None)) + named)
        elif c.exit is None:
            exp.append("runs on")
        else:
            exp.append("exits %d%s" % (c.exit, named))
        if c.lost:
            exp.append("child dead before last applied renew + lease")
        extra = "; API URL ending in `%s`" % c.api_path if c.api_path else ""
        if c.token_text != "tok-1\n":
            extra = "; token file %s" % repr(c.token_text).replace("|", "\\|")
        if c.extra_args:
            extra += "; flags `%s`" % " ".join(c.extra_args)
        rows.append("| `%s` | %s | %s%s | %s |" % (c.name, c.kind, hostile_server.MODES[c.mode].doc, extra, "; ".join(exp)))
    return "\n".join(rows)


class Observed:
    """What one run showed: exit, child, server report, CPU and memory samples."""

    def __init__(self, rc=None, stderr="", child_pid=None, child_seen=None, child_dead=None, start=0.0, end=12.0,
                 report=None, cpu=(None, None, None, None), rss_max=0.0):
        self.rc, self.stderr = rc, stderr
        self.child_pid, self.child_seen, self.child_dead = child_pid, child_seen, child_dead
        self.start, self.end = start, end
        self.report = report if report is not None else {"requests": []}
        self.cpu = cpu
        self.rss_max = rss_max


def judge(case, obs):
    """The failures of one case (empty when it passed). Pure: tested by test_hostile.py."""
    rc, stderr, child_pid, child_seen, child_dead = obs.rc, obs.stderr, obs.child_pid, obs.child_seen, obs.child_dead
    start, end, report, rss_max = obs.start, obs.end, obs.report, obs.rss_max
    cpu0, t_cpu0, cpu_last, t_cpu_last = obs.cpu
    failures = []
    # exit and crash
    if rc is not None and rc < 0 and -rc in CRASH_SIGNALS:
        failures.append("crash: died of signal %d" % -rc)
    allowed = case.exit if isinstance(case.exit, set) else {case.exit}
    if rc not in allowed:
        failures.append("exit: %s, expected %s" % ("still running" if rc is None else rc,
                                                   " or ".join("still running" if a is None else str(a) for a in sorted(allowed, key=str))))
    if rc is not None and case.message and case.message not in stderr:
        failures.append("message: stderr does not mention %r" % case.message)
    # the child and the lock
    if case.child == "starts" and child_pid is None:
        failures.append("child: never started (control case)")
    if case.child == "never" and child_pid is not None:
        failures.append("lock: the child started although another replica holds the lock (or nobody granted it)")
    if child_seen is not None and report.get("kl_acquires", 0) == 0:
        failures.append("lock: the child started but the server never applied a write making kube-leader the holder")
    if case.lost and child_pid is not None:
        last = report.get("kl_last_applied")
        if last is not None:
            dead_by = last + LEASE
            if child_dead is None or child_dead > dead_by:
                failures.append("lock: the child was still alive %.2fs after the last applied renew (lease %.0fs)"
                                % ((child_dead or end) - last, LEASE))
    if case.keeps and child_pid is not None and child_dead is not None and child_dead < end:
        # (a child that dies once the runner stops kube-leader at the end is fine)
        failures.append("lock: the leader's child died %.2fs into the case (the leader lost its lock)" % (child_dead - start))
    if case.child_by is not None and child_pid is not None and child_seen is not None and child_seen - start > case.child_by:
        failures.append("child: started %.1fs into the case (must be within %.0fs)" % (child_seen - start, case.child_by))
    if case.log_has and case.log_has not in stderr:
        failures.append("log: kube-leader's log does not mention %r" % case.log_has)
    for key, least in sorted(case.report_min.items()):
        value = report.get(key)
        if value is None or value < least:
            failures.append("harness: the fault did not happen (server report %s=%r, at least %r)" % (key, value, least))
    if report.get("after_silence_bytes"):
        failures.append("reuse: kube-leader sent %d bytes on the connection after it went silent"
                        % report["after_silence_bytes"])
    if report.get("injected"):
        failures.append("injection: the server saw %r" % report["injected"][:3])
    if case.mode == "token-crlf" and report.get("bad_auth"):
        failures.append("token: %d requests carried a wrong Authorization header" % report["bad_auth"])
    # request rate: after start-up, per retry period at most one read (GET or
    # LIST), one watch and one write (+2 each over the run), never a burst
    counted = [(t, v) for t, v in report.get("requests", []) if start + 2.0 <= t <= end]
    times = sorted(t for t, _ in counted)
    if case.rate and times:
        window = max(1.0, end - (start + 2.0))
        per_class = window / RETRY + 2
        for cls, verbs in (("reads", ("get", "list")), ("watches", ("watch",)), ("writes", ("create", "update", "delete"))):
            n = sum(1 for _, v in counted if v in verbs)
            if n > per_class:
                failures.append("rate: %d %s in %.1fs (budget %d: one per retry period)" % (n, cls, window, per_class))
        budget = 3 * per_class
        burst, j = 0, 0
        for i, t in enumerate(times):  # the most requests within any one second
            while times[j] <= t - 1.0:
                j += 1
            burst = max(burst, i - j + 1)
        if len(times) > budget or burst > BURST_MAX:
            failures.append("rate: %d requests in %.1fs (budget %d), %d within one second (max %d)"
                            % (len(times), window, budget, burst, BURST_MAX))
    if case.watch_gap:
        watches = sorted(t for t, v in report.get("requests", []) if v == "watch")
        for a, b in zip(watches, watches[1:]):
            if b - a < RETRY - 0.05:
                failures.append("rate: two watches %.2fs apart (retry period %.0fs)" % (b - a, RETRY))
                break
    # CPU while waiting and memory
    if case.cpu and cpu0 is not None and t_cpu_last is not None and t_cpu_last - t_cpu0 >= 2.0:
        share = (cpu_last - cpu0) / (t_cpu_last - t_cpu0)
        if share > CPU_MAX:
            failures.append("cpu: %.0f%% of a core while waiting (max %.0f%%)" % (share * 100, CPU_MAX * 100))
    if rss_max > RSS_MAX_MIB:
        failures.append("rss: %.0f MiB (max %d MiB)" % (rss_max, RSS_MAX_MIB))
    return failures


def run_case(case, kube_leader, workdir):
    if case.dns:
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, text=True)
        if probe.returncode != 0:
            return (["harness: this case needs `unshare -m` (root with CAP_SYS_ADMIN) to give kube-leader its own "
                     "/etc/resolv.conf; it failed: %s" % probe.stderr.strip()], "not run", "")
    d = os.path.join(workdir, case.name)
    os.makedirs(d)
    token = os.path.join(d, "token")
    with open(token, "w", newline="") as f:
        f.write(case.token_text)
    marker = os.path.join(d, "child.pid")
    server, ready = processes.start_ready([sys.executable, "-m", "klharness.hostile_server", "--mode", case.mode, "--kind", case.kind, "--token", "tok-1"]
                                   + (["--dns", case.dns] if case.dns else []),
                                   os.path.join(d, "server.log"), "hostile_server.py")
    url = ready["url"]
    api = url + case.api_path
    prefix = []
    if case.dns:
        # kube-leader reaches the API by a name that only our DNS server knows:
        # a private mount namespace with its own /etc/resolv.conf.
        resolv = os.path.join(d, "resolv.conf")
        with open(resolv, "w") as f:
            f.write("nameserver %s\n" % case.dns)
        api = url.replace("127.0.0.1", "api.hostile.test")
        prefix = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv]
    args = prefix + [kube_leader, "--api-server", api, "--namespace", "hostile", "--identity", "kl-1", "--lock-kind", case.kind,
            "--lease-duration", "%gs" % LEASE, "--renew-deadline", "%gs" % RENEW, "--retry-period", "%gs" % RETRY,
            "--token-file", token]
    args += case.extra_args
    args += ["lock", "--", "/bin/sh", "-c", 'echo $$ > "$0.tmp" && mv "$0.tmp" "$0"; exec sleep 600', marker]
    stderr_path = os.path.join(d, "kube-leader.log")
    start = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(stderr_path, "wb"), start_new_session=True)
    child_pid = child_seen = child_dead = None
    cpu0 = t_cpu0 = None
    cpu_last = t_cpu_last = None
    rss_max = 0.0
    while time.monotonic() - start < case.seconds:
        t = time.monotonic()
        if child_pid is None and os.path.exists(marker):
            try:
                child_pid = int(open(marker).read().strip())
                child_seen = t
            except ValueError:
                pass
        if child_pid is not None and child_dead is None and not procfs.running(child_pid):
            child_dead = t
        if proc.poll() is not None:
            break
        cpu = procfs.cpu_seconds(proc.pid)
        if cpu is not None:
            if t - start >= 3.0 and cpu0 is None:
                cpu0, t_cpu0 = cpu, t
            cpu_last, t_cpu_last = cpu, t
        rss = procfs.rss_mib(proc.pid)
        if rss:
            rss_max = max(rss_max, rss)
        time.sleep(0.05)
    end = time.monotonic()
    rc = proc.poll()
    processes.stop_process(proc)
    if child_pid is not None and child_dead is None and not procfs.running(child_pid):
        child_dead = time.monotonic()
    try:
        report = json.load(urllib.request.urlopen(url + "/_hostile/report", timeout=10))
    except Exception as e:  # noqa: BLE001 - reported as a failure below
        report = {"error": str(e), "requests": []}
    processes.kill_group(server.pid)
    server.wait()
    if child_pid is not None and procfs.running(child_pid):
        try:
            os.kill(child_pid, signal.SIGKILL)
        except OSError:
            pass
    stderr = open(stderr_path, errors="replace").read()

    obs = Observed(rc=rc, stderr=stderr, child_pid=child_pid, child_seen=child_seen, child_dead=child_dead,
                   start=start, end=end, report=report, cpu=(cpu0, t_cpu0, cpu_last, t_cpu_last), rss_max=rss_max)
    failures = judge(case, obs)
    share = ((cpu_last - cpu0) / (t_cpu_last - t_cpu0)) if cpu0 is not None and t_cpu_last - t_cpu0 > 0 else 0.0
    summary = "exit=%s child=%s requests=%d rss=%.0fMiB cpu=%.0f%%" % (
        "running" if rc is None else rc, "started" if child_pid else "no", len(report.get("requests", [])), rss_max,
        share * 100)
    return failures, summary, stderr


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="comma-separated case names (default: all)")
    p.add_argument("--jobs", type=int, default=8, help="cases run at once (default 8)")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--markdown", action="store_true", help="print the cases table of docs/hostile-server.md")
    args = p.parse_args()
    if args.markdown:
        print(markdown_table())
        return 0
    all_cases = cases()
    if args.list:
        for c in all_cases:
            print("%-42s mode=%s kind=%s child=%s exit=%s%s" % (c.name, c.mode, c.kind, c.child, c.exit, ""))
        return 0
    chosen = sorted(all_cases, key=lambda c: -c.seconds)  # long ones first
    if args.only:
        names = set(args.only.split(","))
        chosen = sorted((c for c in all_cases if c.name in names), key=lambda c: -c.seconds)
        missing = names - {c.name for c in chosen}
        if missing:
            print("unknown case(s): %s (see --list)" % ", ".join(sorted(missing)), file=sys.stderr)
            return 2
    kube_leader = os.path.join(processes.bin_dir(), "kube-leader")
    if not os.access(kube_leader, os.X_OK):
        print("no kube-leader binary at %s: build first (swift build)" % kube_leader, file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix="kl-hostile-")
    results = {}
    queue = list(chosen)
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                case = queue.pop(0)
            try:
                results[case.name] = run_case(case, kube_leader, workdir)
            except Exception as e:  # noqa: BLE001 - a harness failure fails the case
                results[case.name] = (["harness: %r" % e], "", "")
            failures, summary, _ = results[case.name]
            print("%s %-42s %s%s" % ("FAIL" if failures else "ok  ", case.name, summary,
                                     "".join("\n       " + f for f in failures)), flush=True)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(max(1, args.jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failed = [c.name for c in chosen if results[c.name][0]]
    print("hostile: %d cases, %d failed in %.0fs%s" % (len(chosen), len(failed), time.monotonic() - started,
                                                     (": " + ", ".join(failed)) if failed else ""))
    if failed:
        for name in failed[:5]:
            print("--- last log lines of %s:" % name)
            print("\n".join(results[name][2].splitlines()[-5:]))
        print("logs: %s" % workdir)
    elif not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
