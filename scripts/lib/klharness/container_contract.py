#!/usr/bin/env python3
"""The container contract, tested as a container runtime runs kube-leader.

A root file system holding only the static kube-leader, Debian's static
busybox (playing the application of Dockerfile.example's CMD), /proc, and
the service-account files at /var/run/secrets/kubernetes.io/serviceaccount/
{token,ca.crt,namespace} (plus /out, where the application leaves what it
saw). kube-leader runs as PID 1 of a new PID namespace
(`unshare --pid --fork --mount-proc --root ROOT`), configured only by
KUBERNETES_SERVICE_HOST/PORT, POD_NAME and the mounted files (no flags, no
POD_NAMESPACE), against kube-apiserver-fake. The argv is ENTRYPOINT + CMD as
written in Dockerfile.example, for both forms it shows (with "--" and the
original `ENTRYPOINT ["/kube-leader", "LOCK"]`).

For each form:
  exit:  it leads in the namespace from the mounted file; orphans of the
         application are reaped (no zombie is left); the application's exit
         code (42) is kube-leader's; the lock is released.
  term:  SIGTERM sent from outside to PID 1 (as `docker stop` and the kubelet
         do) reaches the application, the lock is released and the
         application's code (7) is returned.

Usage: container_contract.py KUBE_LEADER_STATIC BIN_DIR DOCKERFILE
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from klharness import cluster, processes, procfs

NAMESPACE = "contract-space"
POD = "contract-pod-7f9c"
SA_DIR = "var/run/secrets/kubernetes.io/serviceaccount"
APP_EXIT, APP_TERM = 42, 7

# The application: busybox sh, doing what /app/scenario says. It records PID
# 1's command line, then its own argv and PID (the file the host waits for,
# so written last), waits for the host's go-ahead (the host checks the lock
# in between), then either makes orphans, checks none is left a zombie and
# exits 42, or waits for SIGTERM and exits 7.
APP = r"""#!/bin/busybox sh
B=/bin/busybox
trap 'echo "$$" > /out/term; exit 7' TERM
$B cat /proc/1/cmdline | $B tr '\0' ' ' > /out/pid1
echo "$$ $*" > /out/started
i=0; while [ ! -e /out/go ] && [ $i -lt 600 ]; do $B sleep 0.1; i=$((i+1)); done
case "$($B cat /app/scenario)" in
exit)
  # Two orphans: the inner setsid forks (it leads a process group already)
  # and its parent exits at once, so each sleep becomes a child of PID 1.
  # (No `&`: busybox sh opens /dev/null for background jobs; the root has no /dev.)
  $B setsid $B setsid $B sleep 1
  $B setsid $B setsid $B sleep 1.5
  $B sleep 0.2
  $B ps -o pid,ppid,stat,args > /out/ps-with-orphans
  i=0
  while [ $i -lt 200 ]; do
    left=$($B ps -o stat,args | $B grep -c -e '^Z' -e 'sleep 1')
    [ "$left" = 0 ] && break
    $B sleep 0.1; i=$((i+1))
  done
  $B ps -o pid,ppid,stat,args > /out/ps-after
  zombies=$($B ps -o stat | $B grep -c '^Z')
  echo "$zombies" > /out/zombies
  exit 42
  ;;
term)
  while :; do $B sleep 0.1; done
  ;;
esac
exit 99
"""


def dockerfile_forms(path):
    """[(ENTRYPOINT argv, CMD argv)] in the order Dockerfile.example shows them,
    comments included (the original form is shown as a comment)."""
    found = []
    for line in open(path):
        m = re.match(r"^\s*#?\s*(ENTRYPOINT|CMD)\s+(\[.*\])\s*$", line)
        if m:
            found.append((m.group(1), json.loads(m.group(2))))
    pairs = []
    for i in range(0, len(found) - 1):
        if found[i][0] == "ENTRYPOINT" and found[i + 1][0] == "CMD":
            pairs.append((found[i][1], found[i + 1][1]))
    return pairs


def fail(msg):
    sys.stderr.write("container contract: FAIL: " + msg + "\n")
    sys.exit(1)


def make_root(kube_leader, server, cmd):
    root = tempfile.mkdtemp(prefix="kl-container-root-")
    shutil.copy2(kube_leader, os.path.join(root, "kube-leader"))
    os.makedirs(os.path.join(root, "bin"))
    shutil.copy2("/bin/busybox", os.path.join(root, "bin", "busybox"))
    os.makedirs(os.path.join(root, "proc"))
    sa = os.path.join(root, SA_DIR)
    os.makedirs(sa)
    shutil.copy2(server.token_file, os.path.join(sa, "token"))
    shutil.copy2(server.ca_file, os.path.join(sa, "ca.crt"))
    with open(os.path.join(sa, "namespace"), "w") as f:
        f.write(NAMESPACE)  # no newline, as the kubelet writes it
    app = os.path.join(root, cmd[0].lstrip("/"))
    os.makedirs(os.path.dirname(app), exist_ok=True)
    with open(app, "w") as f:
        f.write(APP)
    os.chmod(app, 0o755)
    os.makedirs(os.path.join(root, "out"))
    return root


def lock(server, name):
    return server.record("configmap", name, NAMESPACE)


def wait_for(cond, timeout, what):
    return processes.wait_until(cond, timeout, 0.05) or fail("timed out after %ds waiting for %s" % (timeout, what))


def run(root, server, argv, scenario, lock_name, label):
    out = os.path.join(root, "out")
    for f in os.listdir(out):
        os.remove(os.path.join(out, f))
    with open(os.path.join(root, "app", "scenario"), "w") as f:
        f.write(scenario)
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(server.port), "POD_NAME": POD}
    logf = tempfile.TemporaryFile("w+")  # kube-leader's log, shown on failure
    proc = subprocess.Popen(["unshare", "--pid", "--fork", "--mount-proc", "--root", root] + argv,
                            env=env, stdout=logf, stderr=subprocess.STDOUT)

    def log_text():
        logf.flush()
        logf.seek(0)
        return logf.read()
    try:
        started = wait_for(lambda: os.path.exists(os.path.join(out, "started")) and open(os.path.join(out, "started")).read().strip(),
                           60, "%s %s: the application to start (kube-leader log:\n%s)" % (label, scenario, log_text()))
        pid1 = open(os.path.join(out, "pid1")).read().split()
        if not pid1 or pid1[0] != "/kube-leader":
            fail("%s: PID 1 in the container is %r, not /kube-leader" % (label, pid1))
        want_args = " ".join(argv[argv.index("/app/worker") + 1:])
        if started.split(" ", 1)[1:] != [want_args]:
            fail("%s: the application got %r, want args %r" % (label, started, want_args))
        rec = lock(server, lock_name)
        if not rec or rec.get("holderIdentity") != POD:
            fail("%s: no lock %s/%s held by %s while the application runs: %r" % (label, NAMESPACE, lock_name, POD, rec))
        if scenario == "term":
            children = procfs.children(proc.pid)
            if len(children) != 1:
                fail("%s: unshare has children %r, want one (PID 1 of the container)" % (label, children))
            pid1_host = children[0]
            open(os.path.join(out, "go"), "w").close()
            time.sleep(0.3)  # the application is in its wait loop; not needed for correctness
            os.kill(pid1_host, signal.SIGTERM)
        else:
            open(os.path.join(out, "go"), "w").close()
        try:
            rc = proc.wait(60)
        except subprocess.TimeoutExpired:
            fail("%s %s: kube-leader did not exit within 60 s; log:\n%s" % (label, scenario, log_text()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    want = APP_EXIT if scenario == "exit" else APP_TERM
    if rc != want:
        fail("%s %s: kube-leader exited %d, want the application's %d; log:\n%s" % (label, scenario, rc, want, log_text()))
    rec = lock(server, lock_name)
    if rec is None or rec.get("holderIdentity"):
        fail("%s %s: the lock is not released after exit: %r" % (label, scenario, rec))
    if scenario == "exit":
        zombies = open(os.path.join(out, "zombies")).read().strip()
        orphans = open(os.path.join(out, "ps-with-orphans")).read()
        if orphans.count("sleep 1") < 2:
            fail("%s: the orphans were not running as expected:\n%s" % (label, orphans))
        if not re.search(r"^\s*\d+\s+1\s+\S+\s+/bin/busybox sleep 1", orphans, re.M):
            fail("%s: the orphans were not reparented to PID 1:\n%s" % (label, orphans))
        if zombies != "0":
            fail("%s: %s zombie(s) left after the orphans exited:\n%s" % (label, zombies, open(os.path.join(out, "ps-after")).read()))
        print("ok: %s: PID 1 led %s/%s, reaped 2 orphans (no zombies), exited %d, released the lock" % (label, NAMESPACE, lock_name, rc))
    else:
        if not os.path.exists(os.path.join(out, "term")):
            fail("%s: SIGTERM did not reach the application" % label)
        print("ok: %s: SIGTERM to PID 1 reached the application, lock released, exited %d" % (label, rc))


def main(argv):
    if len(argv) != 3:
        sys.stderr.write(__doc__)
        return 2
    kube_leader, bins, dockerfile = argv
    forms = dockerfile_forms(dockerfile)
    if len(forms) < 2:
        fail("%s shows %d ENTRYPOINT+CMD pairs, want the prefix form and the original form" % (dockerfile, len(forms)))
    with_dashes = [f for f in forms if "--" in f[0]]
    original = [f for f in forms if "--" not in f[0] and "--" not in f[1]]
    if not with_dashes or not original:
        fail("%s: want one form with \"--\" and the original form without: %r" % (dockerfile, forms))
    server = cluster.FakeServer(bins, state=False)
    roots = []
    try:
        for label, (entrypoint, cmd) in (("ENTRYPOINT %s + CMD %s" % (json.dumps(with_dashes[0][0]), json.dumps(with_dashes[0][1])), with_dashes[0]),
                                         ("ENTRYPOINT %s + CMD %s" % (json.dumps(original[0][0]), json.dumps(original[0][1])), original[0])):
            if entrypoint[0] != "/kube-leader" or cmd[0] != "/app/worker":
                fail("%s: expected /kube-leader and the /app/worker application" % label)
            argv = entrypoint + cmd
            lock_name = entrypoint[1]
            root = make_root(kube_leader, server, cmd)
            roots.append(root)
            for scenario in ("exit", "term"):
                run(root, server, argv, scenario, lock_name, label)
    finally:
        server.stop()
        for r in roots:
            shutil.rmtree(r, ignore_errors=True)
        shutil.rmtree(server.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
