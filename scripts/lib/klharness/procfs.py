"""What /proc says: one process's memory, CPU time, state and children, and
the machine's CPU model and memory. Every reader answers None (or a default)
when the process or the field is gone, never raises for that."""
import os


def status_kib(pid, key):
    """A kB field of /proc/PID/status (VmRSS, RssAnon, ...), None when the
    process or the field is not there."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mib(pid):
    """VmRSS in MiB, None when the process is gone."""
    kib = status_kib(pid, "VmRSS")
    return kib / 1024.0 if kib is not None else None


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name (state first), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid):
    """User + system CPU time of the process in seconds, None when it is gone."""
    fields = _stat_fields(pid)
    try:
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (TypeError, IndexError, ValueError):
        return None


def running(pid):
    """True while the process exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z"


def exists(pid):
    """True while a process with this pid exists (zombies too; another
    user's process counts)."""
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def children(pid):
    """The pids of the main thread's children (/proc/PID/task/PID/children)."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def cpu_model():
    """The first "model name" of /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def mem_total_gib():
    """MemTotal of /proc/meminfo in GiB (0 when unreadable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1048576
    except (OSError, ValueError):
        pass
    return 0
