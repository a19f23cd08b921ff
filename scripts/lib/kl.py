"""The Python test harness: kube-apiserver-fake, kube-leader replicas and
the other test processes as real processes on this machine.

Used by scripts/demo, scripts/chaos, scripts/bench, scripts/node-scale and
the checks behind scripts/test.d (hostile.py, container_contract.py,
Tests/NodeLifecycleTests/Support/binary_e2e.py). Only the Python standard
library; talks to the fake over TLS with its CA. docs/test-harness.md.
"""
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import http.client
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORKER = os.path.join(ROOT, "scripts", "lib", "worker.py")
NODE_LIFECYCLE_SUPPORT = os.path.join(ROOT, "Tests", "NodeLifecycleTests", "Support")
LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"


# -- the built binaries and plain processes -----------------------------------

def bin_dir(configuration="debug"):
    """$KL_BIN_DIR, else `swift build -c CONFIGURATION --show-bin-path`."""
    env = os.environ.get("KL_BIN_DIR")
    if env:
        return env
    out = subprocess.run(["swift", "build", "-c", configuration, "--show-bin-path"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def missing_binaries(bins, names):
    """The names in `names` that are not executables in `bins`."""
    return [n for n in names if not os.access(os.path.join(bins, n), os.X_OK)]


def free_port(host="127.0.0.1"):
    """A TCP port nothing listens on right now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_ready(argv, log_path, name=None):
    """Start a server that prints one JSON line when it is ready (its URL and
    files) in its own session, stderr to `log_path`: (process, that line)."""
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("%s did not start; see %s" % (name or os.path.basename(argv[0]), log_path))
    return proc, json.loads(line)


def spawn_logged(argv, log_path, env=None):
    """A process whose stdout and stderr go to `log_path` (appended)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """`sig` to a running process, SIGKILL if it has not exited `timeout` s later."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def kill_group(pid, sig=signal.SIGTERM):
    """`sig` to the process group `pid` leads; gone already is fine."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def proc_status_kib(pid, key):
    """A kB field of /proc/PID/status (VmRSS, RssAnon, ...), None when the
    process or the field is not there."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def wait_until(cond, timeout, interval=0.02):
    """cond()'s first true value within `timeout` s (polled every `interval`),
    else its value at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(interval)
    return cond()


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
        import netns as _netns  # scripts/lib/netns.py; only --netns runs need it
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


# -- node-lifecycle's AWS doubles (Tests/NodeLifecycleTests/Support) ----------

def start_moto(workdir):
    """moto_server's SQS with signature checking (moto_harness.py): its JSON
    (url, pid, access_key, secret_key, queue_url, role_arn). Stop it with
    kill_group(pid)."""
    return json.loads(subprocess.check_output([sys.executable, os.path.join(NODE_LIFECYCLE_SUPPORT, "moto_harness.py"),
                                               "start", workdir]))


def start_query_double(workdir, access_key, secret_key):
    """The Auto Scaling / CloudFormation Query double (query_double.py): its
    JSON (url, pid). Stop it with kill_group(pid)."""
    return json.loads(subprocess.check_output([sys.executable, os.path.join(NODE_LIFECYCLE_SUPPORT, "query_double.py"),
                                               "start", workdir, access_key, secret_key]))


def node_lifecycle_env(moto, auto_scaling_url):
    """The whole environment of a node-lifecycle process against moto's SQS
    and an Auto Scaling endpoint, with moto's credentials."""
    return {"PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": moto["access_key"], "AWS_SECRET_ACCESS_KEY": moto["secret_key"],
            "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_SQS": moto["url"], "AWS_ENDPOINT_URL_AUTO_SCALING": auto_scaling_url,
            "AWS_EC2_METADATA_DISABLED": "true", "NODE_LIFECYCLE_QUEUE_URL": moto["queue_url"]}


# -- worker.py's log ------------------------------------------------------------

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

