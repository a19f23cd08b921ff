"""kube-apiserver-fake and kube-leader replicas as real processes on this
machine: the fake in a temp dir (restartable with its state kept), a TLS
client for its API and its /fake/ control API, the lock record, and
kube-leader replicas running scripts/lib/worker.py as their child.
Standard library only. docs/test-harness.md.
"""
import http.client
import json
import os
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.parse

from klharness.processes import WORKER, start_ready, stop_process, kill_group

LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


# -- kube-apiserver-fake ------------------------------------------------------

class HTTPError(Exception):
    """An answer of status 400 or more to FakeServer.call."""

    def __init__(self, method, path, code, body):
        super().__init__("%s %s: HTTP %d: %s" % (method, path, code, body))
        self.code, self.body = code, body


def lock_record(kind, obj):
    """The leader record inside a lock object (Lease spec, or the ConfigMap's
    JSON annotation) as a dict ({} when there is none)."""
    if kind == "lease":
        return obj.get("spec") or {}
    raw = (obj.get("metadata", {}).get("annotations") or {}).get(LEADER_ANNOTATION)
    return json.loads(raw) if raw else {}


class _HTTPSConnection(http.client.HTTPSConnection):
    """Connects from inside the network namespace `netns` (None: this one)."""
    netns = None

    def connect(self):
        if not self.netns:
            return super().connect()
        from klharness import netns as _netns  # only --netns runs need it
        with _netns.InNetns(self.netns):
            return super().connect()


class FakeServer:
    """kube-apiserver-fake in a temp dir; restartable with its state kept."""

    def __init__(self, bins, workdir=None, port=0, extra=(), state=True, netns=None, host=None):
        """state=False: no --state-file (no restart with state; saves
        writing the whole store after every change, which matters at scale).
        netns: run it inside that network namespace, listening on `host`
        (scripts/chaos --netns); the harness's own requests are made from
        inside it too."""
        self.bins = bins
        self.netns = netns
        self.host = host
        self.state = state
        self.dir = workdir or tempfile.mkdtemp(prefix="kl-fake-")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port
        self.extra = list(extra)
        self.proc = None
        self.start()

    def start(self):
        argv = ([os.path.join(self.bins, "kube-apiserver-fake"), "--dir", self.dir, "--port", str(self.port)]
                + (["--state-file", os.path.join(self.dir, "state.json")] if self.state else []) + self.extra)
        if self.host:
            argv += ["--host", self.host]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        self.proc, ready = start_ready(argv, os.path.join(self.dir, "fake.log"))
        self.url = ready["url"]
        self.ca_file = ready["ca_file"]
        self.token_file = ready["token_file"]
        self.port = int(self.url.rsplit(":", 1)[1])
        self.token = open(self.token_file).read().strip()
        self._ctx = ssl.create_default_context(cafile=self.ca_file)

    def stop(self, sig=signal.SIGTERM):
        stop_process(self.proc, sig, timeout=5)

    def restart(self):
        self.stop()
        self.start()

    def request(self, method, path, body=None, token=None, timeout=5):
        host = urllib.parse.urlparse(self.url)
        conn = _HTTPSConnection(host.hostname, host.port, context=self._ctx, timeout=timeout)
        conn.netns = self.netns
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

    def call(self, method, path, body=None, token=None, timeout=10):
        """request() for callers that want the JSON body ({} when empty) and
        an exception (HTTPError) for any status of 400 or more."""
        status, obj = self.request(method, path, body, token=token, timeout=timeout)
        if status >= 400:
            raise HTTPError(method, path, status, obj)
        return obj if obj is not None else {}

    def kube_flags(self):
        """The flags that point a companion (node-lifecycle) at this server."""
        return ["--api-server", self.url, "--ca-file", self.ca_file]

    def lock_path(self, kind, name, namespace="default"):
        if kind == "lease":
            return "/apis/coordination.k8s.io/v1/namespaces/%s/leases/%s" % (namespace, name)
        return "/api/v1/namespaces/%s/configmaps/%s" % (namespace, name)

    def record(self, kind, name, namespace="default"):
        """The lock record as a dict, or None."""
        try:
            status, obj = self.request("GET", self.lock_path(kind, name, namespace))
        except OSError:
            return None
        if status != 200 or not isinstance(obj, dict):
            return None
        return lock_record(kind, obj)

    def holder(self, kind, name):
        r = self.record(kind, name)
        return (r or {}).get("holderIdentity") or None

    def set_faults(self, **faults):
        return self.request("POST", "/fake/faults", faults)

    def clear_faults(self):
        return self.request("DELETE", "/fake/faults")

    def register_token(self, token, user="system:serviceaccount:default:kube-leader", allow=None):
        """A bearer token the fake accepts, as `user`; with `allow` (["verb
        resource", ...]) only those verbs, as an RBAC role would grant."""
        body = {"token": token, "user": user}
        if allow is not None:
            body["allow"] = allow
        return self.request("POST", "/fake/tokens", body)

    def write_token(self, path, token, user, allow=None):
        """register_token(), then the token written to `path` (with a newline,
        as a mounted service-account token): the path."""
        status, body = self.register_token(token, user, allow)
        if status >= 400:
            raise HTTPError("POST", "/fake/tokens", status, body)
        with open(path, "w") as f:
            f.write(token + "\n")
        return path

    def stats(self):
        return self.request("GET", "/fake/stats")[1]

    def reset_stats(self):
        return self.request("POST", "/fake/stats/reset")


class Replica:
    """One kube-leader process running the worker as its child."""

    def __init__(self, bins, server, name, lock, workdir, kind="configmap", timing=(), token=None,
                 worker_args=(), log_format="json", log_level="info", worker_log=None, worker_lock=None, child=None,
                 extra=(), prefix=()):
        """prefix: argv run before kube-leader (`ip netns exec NS`: it
        execs, so the pid is kube-leader's)."""
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
        args = list(prefix) + [os.path.join(bins, "kube-leader"), "--lock-kind", kind] + list(timing) + list(extra) + [lock, "--"] + child
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
        pid = self.log_value("started child", "child.pid")
        return int(pid) if pid is not None else None

    def stop(self):
        if self.alive():
            kill_group(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()
