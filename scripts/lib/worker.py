#!/usr/bin/env python3
"""A child for kube-leader's tests, demo and chaos runs.

Proves mutual exclusion with the kernel's help: at start it takes an
exclusive flock on LOCKFILE without waiting. If another worker still holds it
(even one that was SIGKILLed a moment ago and whose kernel lock is not yet
gone), that is an overlap: it appends "overlap" and exits 99. Otherwise it
appends "start ID T" and, when it ends, "stop ID T" (T: CLOCK_MONOTONIC ns,
one clock for every process on the machine).

Usage: worker.py LOG LOCKFILE ID [--exit-after SECONDS] [--exit-code N]
       [--signals FILE] [--zombie] [--say TEXT] [--exit-file PATH] [--poll SECONDS]
       [--ignore-term]
--signals FILE: append the name of each signal received (SIGTERM ends it).
--ignore-term: SIGTERM does not end it (only SIGKILL does; no stop is logged).
--exit-file PATH: exit by itself (code --exit-code) once PATH exists.
--poll SECONDS: how often it checks for the end (default 0.02; larger for
  hundreds of idle workers).
--zombie: start a grandchild that outlives its parent (an orphan to reap).
--say TEXT: print TEXT at start, with $VARIABLES expanded (the demo prints
  $KUBE_LEADER_FENCING_TOKEN).
"""
import fcntl, os, signal, sys, time

def main():
    log, lockfile, ident = sys.argv[1:4]
    opts = sys.argv[4:]
    def opt(name, default=None):
        return opts[opts.index(name) + 1] if name in opts else default
    exit_after = float(opt("--exit-after", "1e9"))
    exit_code = int(opt("--exit-code", "0"))
    signals_file = opt("--signals")
    say = opt("--say")
    exit_file = opt("--exit-file")
    poll = float(opt("--poll", "0.02"))

    def append(path, line):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, (line + "\n").encode())
        os.close(fd)

    lock_fd = os.open(lockfile, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        append(log, "overlap %s %d" % (ident, time.monotonic_ns()))
        sys.exit(99)
    append(log, "start %s %d" % (ident, time.monotonic_ns()))
    if say:
        print(os.path.expandvars(say), flush=True)

    stopping = {"sig": None}
    def on_signal(num, frame):
        name = signal.Signals(num).name
        if signals_file:
            append(signals_file, name)
        if num == signal.SIGTERM and "--ignore-term" in opts:
            return
        if num in (signal.SIGTERM, signal.SIGINT):
            stopping["sig"] = num
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH):
        signal.signal(s, on_signal)

    if "--zombie" in opts:
        # A grandchild whose parent (a short-lived shell) exits at once: an orphan.
        os.system("sh -c 'sleep 0.2 &' ")

    deadline = time.monotonic() + exit_after
    while stopping["sig"] is None and time.monotonic() < deadline:
        if exit_file and os.path.exists(exit_file):
            break
        time.sleep(poll)
    append(log, "stop %s %d" % (ident, time.monotonic_ns()))
    if stopping["sig"] is not None:
        signal.signal(stopping["sig"], signal.SIG_DFL)
        os.kill(os.getpid(), stopping["sig"])
    sys.exit(exit_code)

main()
