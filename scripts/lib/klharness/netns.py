"""Network namespaces for scripts/chaos --netns: each kube-leader replica in
its own namespace, the fake API server in another, a router namespace
between them, and silent cuts made with blackhole routes in the router.

    replica ns (klc-TAG-PID-rN)             router ns (klc-TAG-PID-rt)        api ns (klc-TAG-PID-api)
    kcTAGrN 10.200.N.2/30  <--veth-->  kcTAGrNx 10.200.N.1/30
                                          kcTAGax 10.200.0.1/30   <--veth-->  kcTAGa 10.200.0.2/30
                                                                             kube-apiserver-fake on 10.200.0.2

The router forwards (its own net.ipv4.ip_forward; the root namespace's is
never touched). Nothing is created in the root namespace: each veth is made
with both ends already in their namespaces, so deleting our namespaces
removes every interface, address, route and rule the run made. Addresses are
10.200.0.0/16, only inside our own namespaces (each run has its own router,
so two runs at once do not collide).

Cuts, all silent (no RST, no ICMP; the real TCP stacks see lost packets):
  - "from-api": `blackhole 10.200.N.2/32` in the router: the API server's
    packets to replica N are dropped (its requests arrive and may be
    applied; the answers never come back: half-open connections);
  - "to-api": a rule `iif kcTAGrNx lookup T` with `blackhole default` in T:
    everything replica N sends is dropped (lost SYNs, unacknowledged data);
  - "both": both of the above;
  - dead connections: rules on the TCP ports of the replica's established
    connections (`ipproto tcp sport P` from the replica, `dport P` towards
    it) into T: those connections go silent both ways while new ones pass
    (an API server that died behind a ClusterIP).
Needs root (CI runs as root) and iproute2. Standard library only.
"""
import ctypes
import os
import random
import re
import subprocess

from klharness import procfs

PREFIX = "klc-"
RUN_DIR = "/run/netns"
API_IP = "10.200.0.2"
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def ip(*args, check=True):
    """Runs `ip ARGS`; raises with its stderr when it fails and `check`."""
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError("ip %s failed: %s" % (" ".join(args), r.stderr.strip()))
    return r


def available():
    """None when network namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "--netns needs root (ip netns, veth)"
    if subprocess.run(["sh", "-c", "command -v ip"], capture_output=True).returncode != 0:
        return "--netns needs iproute2 (the ip command)"
    return None


class InNetns:
    """`with InNetns(name):` the calling thread is in namespace `name`;
    sockets created inside stay there (the harness talks to the fake)."""

    def __init__(self, name):
        self.name = name

    def __enter__(self):
        if not self.name:
            return self
        self.own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(os.path.join(RUN_DIR, self.name), os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                os.close(self.own)
                raise OSError(e, "setns into %s: %s" % (self.name, os.strerror(e)))
        finally:
            os.close(target)
        return self

    def __exit__(self, *exc):
        if not self.name:
            return False
        try:
            if _libc.setns(self.own, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original network namespace")
        finally:
            os.close(self.own)
        return False


def our_namespaces():
    """[(name, tag, pid)] of every namespace named by this module."""
    out = []
    try:
        names = os.listdir(RUN_DIR)
    except OSError:
        return out
    for n in names:
        m = re.match(r"^klc-([0-9a-f]{4})-(\d+)-", n)
        if m:
            out.append((n, m.group(1), int(m.group(2))))
    return out


def delete_namespace(name):
    """Kills what still runs in it, then deletes it (its veths and routes go with it)."""
    r = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True)
    for p in r.stdout.split():
        try:
            os.kill(int(p), 9)
        except (ValueError, OSError):
            pass
    ip("netns", "del", name, check=False)


def stale_namespaces():
    """The names of our namespaces whose run's process is gone."""
    return [n for n, _, pid in our_namespaces() if not procfs.exists(pid)]


def sweep_stale():
    """Deletes namespaces left by runs whose process is gone (a SIGKILLed
    run cannot clean up after itself): the names carry the run's pid."""
    gone = stale_namespaces()
    for n in gone:
        delete_namespace(n)
    return gone


class Topology:
    def __init__(self, slots, log=lambda s: None):
        self.slots = slots
        self.log = log
        self.tag = "%04x" % random.randrange(1 << 16)
        self.base = "%s%s-%d-" % (PREFIX, self.tag, os.getpid())
        self.api_ns = self.base + "api"
        self.rt_ns = self.base + "rt"
        self.made = []
        self.cuts = {}          # slot -> direction
        self.dead_ports = {}    # slot -> [port]

    def replica_ns(self, slot):
        return "%sr%d" % (self.base, slot + 1)

    def dev(self, what):
        return "kc%s%s" % (self.tag, what)

    def replica_ip(self, slot):
        return "10.200.%d.2" % (slot + 1)

    def _ns(self, name):
        ip("netns", "add", name)
        self.made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _veth(self, ns_a, dev_a, addr_a, ns_b, dev_b, addr_b):
        ip("link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b)
        for ns, dev, addr in ((ns_a, dev_a, addr_a), (ns_b, dev_b, addr_b)):
            ip("-n", ns, "addr", "add", addr + "/30", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")

    def up(self):
        if self.slots > 250:
            raise ValueError("--netns supports at most 250 candidates")
        self._ns(self.rt_ns)
        # /proc/sys/net shows the writer's own namespace: the root's stays as it is.
        subprocess.run(["ip", "netns", "exec", self.rt_ns, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"], check=True)
        self._ns(self.api_ns)
        self._veth(self.api_ns, self.dev("a"), API_IP, self.rt_ns, self.dev("ax"), "10.200.0.1")
        ip("-n", self.api_ns, "route", "add", "default", "via", "10.200.0.1")
        for slot in range(self.slots):
            ns = self.replica_ns(slot)
            self._ns(ns)
            n = slot + 1
            self._veth(ns, self.dev("r%d" % n), "10.200.%d.2" % n, self.rt_ns, self.dev("r%dx" % n), "10.200.%d.1" % n)
            ip("-n", ns, "route", "add", "default", "via", "10.200.%d.1" % n)
            # Packets from this replica that a cut drops: table 100+N.
            ip("-n", self.rt_ns, "route", "add", "blackhole", "default", "table", str(100 + n))
        self.log("netns: namespaces %s{api,rt,r1..r%d} up" % (self.base, self.slots))

    def exec_prefix(self, slot=None):
        """argv prefix that runs a command in the replica's (or the api's) namespace."""
        return ["ip", "netns", "exec", self.api_ns if slot is None else self.replica_ns(slot)]

    # -- cuts ------------------------------------------------------------------

    def cut(self, slot, direction):
        """Silently cuts replica `slot` from the API server: "both", "to-api" or "from-api"."""
        self.heal(slot)
        n = slot + 1
        if direction in ("both", "from-api"):
            ip("-n", self.rt_ns, "route", "add", "blackhole", self.replica_ip(slot) + "/32")
        if direction in ("both", "to-api"):
            ip("-n", self.rt_ns, "rule", "add", "iif", self.dev("r%dx" % n), "lookup", str(100 + n), "pref", str(1000 + n))
        self.cuts[slot] = direction

    def established_ports(self, slot):
        """Local ports of the replica's established connections to the API server."""
        r = subprocess.run(self.exec_prefix(slot) + ["ss", "-tnH", "state", "established", "dst", API_IP],
                           capture_output=True, text=True)
        ports = []
        for line in r.stdout.splitlines():
            parts = line.split()
            # Recv-Q Send-Q Local:Port Peer:Port
            for p in parts:
                if p.startswith(self.replica_ip(slot) + ":"):
                    ports.append(int(p.rsplit(":", 1)[1]))
        return sorted(set(ports))

    def kill_connections(self, slot):
        """Every established connection of the replica goes silent both ways;
        new connections pass. Returns the ports."""
        n = slot + 1
        ports = self.established_ports(slot)
        for i, port in enumerate(ports):
            pref = str(2000 + n * 64 + (i % 64))
            ip("-n", self.rt_ns, "rule", "add", "iif", self.dev("r%dx" % n), "ipproto", "tcp", "sport", str(port),
               "lookup", str(100 + n), "pref", pref)
            ip("-n", self.rt_ns, "rule", "add", "iif", self.dev("ax"), "ipproto", "tcp", "dport", str(port),
               "to", self.replica_ip(slot), "lookup", str(100 + n), "pref", pref)
        self.dead_ports[slot] = ports
        return ports

    def heal(self, slot):
        n = slot + 1
        direction = self.cuts.pop(slot, None)
        if direction in ("both", "from-api"):
            ip("-n", self.rt_ns, "route", "del", "blackhole", self.replica_ip(slot) + "/32", check=False)
        if direction in ("both", "to-api"):
            ip("-n", self.rt_ns, "rule", "del", "pref", str(1000 + n), check=False)
        for i, _ in enumerate(self.dead_ports.pop(slot, [])):
            pref = str(2000 + n * 64 + (i % 64))
            ip("-n", self.rt_ns, "rule", "del", "pref", pref, check=False)
            ip("-n", self.rt_ns, "rule", "del", "pref", pref, check=False)

    def heal_all(self):
        for slot in list(self.cuts) + list(self.dead_ports):
            self.heal(slot)

    def down(self):
        """Deletes every namespace this run made (and with them every veth,
        address, route and rule). Safe to call twice."""
        for name in reversed(self.made):
            delete_namespace(name)
        self.made = []
        left = [n for n, tag, pid in our_namespaces() if tag == self.tag and pid == os.getpid()]
        for n in left:
            delete_namespace(n)
        return [n for n, tag, pid in our_namespaces() if tag == self.tag and pid == os.getpid()]
