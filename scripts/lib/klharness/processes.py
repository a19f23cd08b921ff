"""The built binaries and plain processes: where the binaries are, free
ports, servers that announce themselves on one JSON line, stopping, waiting."""
import json
import os
import signal
import socket
import subprocess
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# The test child of kube-leader replicas (run by path: the Swift tests run it too).
WORKER = os.path.join(ROOT, "scripts", "lib", "worker.py")


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
