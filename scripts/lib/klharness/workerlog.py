"""The children's record: scripts/lib/worker.py, kube-leader's test child,
appends `start ID T_NS`, `stop ID T_NS` and `overlap ID T_NS` lines (one
monotonic clock, flock for mutual exclusion). Read it and find overlaps."""


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
