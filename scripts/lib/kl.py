"""Orchestration shared by scripts/demo, scripts/chaos and scripts/bench:
kube-apiserver-fake and kube-leader replicas as real processes on this machine.

Only the Python standard library; talks to the fake over TLS with its CA.
"""
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import http.client
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "scripts", "lib", "worker.py")


def bin_dir(configuration="debug"):
    env = os.environ.get("KL_BIN_DIR")
    if env:
        return env
    out = subprocess.run(["swift", "build", "-c", configuration, "--show-bin-path"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def monotonic_ns():
    return time.monotonic_ns()


class FakeServer:
    """kube-apiserver-fake in a temp dir; restartable with its state kept."""

    def __init__(self, bins, workdir=None, port=0, extra=(), state=True):
        """state=False: no --state-file (no restart with state; saves
        writing the whole store after every change, which matters at scale)."""
        self.bins = bins
        self.state = state
        self.dir = workdir or tempfile.mkdtemp(prefix="kl-fake-")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port
        self.extra = list(extra)
        self.proc = None
        self.start()

    def start(self):
        log = open(os.path.join(self.dir, "fake.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(self.bins, "kube-apiserver-fake"), "--dir", self.dir, "--port", str(self.port)]
            + (["--state-file", os.path.join(self.dir, "state.json")] if self.state else []) + self.extra,
            stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("kube-apiserver-fake did not start; see %s/fake.log" % self.dir)
        ready = json.loads(line)
        self.url = ready["url"]
        self.ca_file = ready["ca_file"]
        self.token_file = ready["token_file"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.token = open(self.token_file).read().strip()
        ctx = ssl.create_default_context(cafile=self.ca_file)
        self._ctx = ctx

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def restart(self):
        self.stop()
        self.start()

    def request(self, method, path, body=None, token=None, timeout=5):
        host = urllib.parse.urlparse(self.url)
        conn = http.client.HTTPSConnection(host.hostname, host.port, context=self._ctx, timeout=timeout)
        headers = {"Accept": "application/json"}
        if not path.startswith("/fake/"):
            headers["Authorization"] = "Bearer " + (token or self.token)
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                return resp.status, json.loads(raw) if raw else None
            except ValueError:
                return resp.status, raw.decode(errors="replace")
        finally:
            conn.close()

    def lock_path(self, kind, name, namespace="default"):
        if kind == "lease":
            return "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s" % (namespace, name)
        return "/api/v1/namespaces/%s/configmaps/%s" % (namespace, name)

    def record(self, kind, name):
        """The lock record as a dict, or None."""
        try:
            status, obj = self.request("GET", self.lock_path(kind, name))
        except OSError:
            return None
        if status != 200 or not isinstance(obj, dict):
            return None
        if kind == "lease":
            return obj.get("spec") or {}
        raw = (obj.get("metadata", {}).get("annotations") or {}).get("control-plane.alpha.kubernetes.io/leader")
        return json.loads(raw) if raw else {}

    def holder(self, kind, name):
        r = self.record(kind, name)
        return (r or {}).get("holderIdentity") or None

    def set_faults(self, **faults):
        return self.request("POST", "/fake/faults", faults)

    def clear_faults(self):
        return self.request("DELETE", "/fake/faults")

    def register_token(self, token, user="system:serviceaccount:default:kube-leader"):
        return self.request("POST", "/fake/tokens", {"token": token, "user": user})

    def stats(self):
        return self.request("GET", "/fake/stats")[1]

    def reset_stats(self):
        return self.request("POST", "/fake/stats/reset")


class Replica:
    """One kube-leader process running the worker as its child."""

    def __init__(self, bins, server, name, lock, workdir, kind="configmap", timing=(), token=None,
                 worker_args=(), log_format="json", log_level="info", worker_log=None, worker_lock=None, child=None,
                 extra=()):
        self.name = name
        self.log_path = os.path.join(workdir, "%s.log" % name)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "POD_NAME": name, "POD_NAMESPACE": "default",
            "KUBE_LEADER_API_SERVER": server.url, "KUBE_LEADER_CA_FILE": server.ca_file,
            "KUBE_LEADER_TOKEN_FILE": server.token_file, "KUBE_LEADER_LOG_FORMAT": log_format,
            "KUBE_LEADER_LOG_LEVEL": log_level,
        }
        if token:
            path = os.path.join(workdir, "token-%s" % name)
            with open(path, "w") as f:
                f.write(token)
            env["KUBE_LEADER_TOKEN_FILE"] = path
        if child is None:
            child = ["python3", WORKER, worker_log or os.path.join(workdir, "workers.log"),
                     worker_lock or os.path.join(workdir, "workers.lock"), name] + list(worker_args)
        args = [os.path.join(bins, "kube-leader"), "--lock-kind", kind] + list(timing) + list(extra) + [lock, "--"] + child
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=self.log, start_new_session=True)
        self.started = time.monotonic()

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            try:
                os.kill(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def log_value(self, message, key):
        """The value of `key` in the last log line with `message` (either format)."""
        value = None
        try:
            for line in open(self.log_path, errors="replace"):
                if message not in line:
                    continue
                try:
                    value = json.loads(line).get(key)
                except ValueError:
                    for part in line.split():
                        if part.startswith(key + "="):
                            value = part.split("=", 1)[1].strip('"')
        except OSError:
            pass
        return value

    def child_pid(self):
        """The pid of the child it started, from its log (None if none)."""
        pid = None
        try:
            for line in open(self.log_path, errors="replace"):
                if '"started child"' in line or "started child" in line:
                    try:
                        pid = int(json.loads(line).get("child.pid"))
                    except ValueError:
                        for part in line.split():
                            if part.startswith("child.pid="):
                                pid = int(part.split("=", 1)[1])
        except OSError:
            pass
        return pid

    def stop(self):
        if self.alive():
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()


def read_worker_log(path):
    """[(kind, id, t_ns)] from worker.py's log."""
    out = []
    try:
        for line in open(path):
            parts = line.split()
            if len(parts) == 3:
                out.append((parts[0], parts[1], int(parts[2])))
    except OSError:
        pass
    return out


def overlaps(entries):
    """Worker runs that overlapped: flock conflicts, and starts inside a run
    that later recorded its stop (a SIGKILLed worker records none; flock covers it)."""
    found = [e for e in entries if e[0] == "overlap"]
    stopped = {e[1] for e in entries if e[0] == "stop"}
    running = None
    for kind, ident, t in sorted(entries, key=lambda e: e[2]):
        if kind == "start":
            if running is not None and running in stopped:
                found.append(("start-during-run", ident, t))
            running = ident
        elif kind == "stop" and ident == running:
            running = None
    return found


def wait_until(cond, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    return cond()
