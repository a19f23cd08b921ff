"""Checks of scripts/lib/netns.py on the real kernel (needs root): the
topology carries TCP, each cut drops exactly what it claims and silently
(the client sees no RST and no error, only silence), dead connections go
silent while new ones pass, and every namespace is gone afterwards. Plus the
pure parts (stale-namespace sweep by pid). Run by scripts/test.d/70-chaos.sh.
Standard library only."""
import os
import socket
import tempfile
import threading
import time
import unittest

from klharness import netns


class SweepTests(unittest.TestCase):
    def test_onlyNamespacesOfDeadRunsAreSwept(self):
        d = tempfile.mkdtemp()
        dead = 4194303  # above the default pid_max: no such process
        for n in ("klc-00aa-%d-api" % os.getpid(), "klc-00bb-%d-rt" % dead, "other-ns", "klc-zz-1-api"):
            open(os.path.join(d, n), "w").close()
        swept = []
        saved = netns.RUN_DIR, netns.delete_namespace
        netns.RUN_DIR, netns.delete_namespace = d, swept.append
        try:
            self.assertEqual(sorted(n for n, _, _ in netns.our_namespaces()),
                             ["klc-00aa-%d-api" % os.getpid(), "klc-00bb-%d-rt" % dead])
            self.assertEqual(netns.sweep_stale(), ["klc-00bb-%d-rt" % dead])
            self.assertEqual(swept, ["klc-00bb-%d-rt" % dead])
        finally:
            netns.RUN_DIR, netns.delete_namespace = saved


class Server:
    """A TCP server on the API address inside the api namespace: echoes
    each received chunk back prefixed with 'ok:', and counts what it got."""

    def __init__(self, topo):
        with netns.InNetns(topo.api_ns):
            self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((netns.API_IP, 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.received = []
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    def echo(self, c):
        with c:
            self._echo(c)

    def _echo(self, c):
        while True:
            try:
                data = c.recv(4096)
            except OSError:
                return
            if not data:
                return
            self.received.append(data)
            try:
                c.sendall(b"ok:" + data)
            except OSError:
                return


class TopologyTests(unittest.TestCase):
    """Real namespaces (root; without it these fail, they are never skipped)."""

    @classmethod
    def setUpClass(cls):
        cls.topo = netns.Topology(2)
        cls.topo.up()
        cls.server = Server(cls.topo)

    @classmethod
    def tearDownClass(cls):
        cls.server.sock.close()
        left = cls.topo.down()
        assert not left, left
        mine = [n for n, tag, pid in netns.our_namespaces() if tag == cls.topo.tag]
        assert not mine, "namespaces left behind: %s" % mine

    def connect(self, slot, timeout=1.0):
        with netns.InNetns(self.topo.replica_ns(slot)):
            s = socket.socket()
        s.settimeout(timeout)
        s.connect((netns.API_IP, self.server.port))
        return s

    def ask(self, s, text):
        s.sendall(text)
        return s.recv(4096)

    def unanswered(self, s, text):
        """Sends text on s; no answer comes within the socket's timeout."""
        s.sendall(text)
        with self.assertRaises(socket.timeout):
            s.recv(4096)

    def tearDown(self):
        self.topo.heal_all()

    def test_aReplicaReachesTheAPIThroughTheRouter(self):
        s = self.connect(0)
        self.assertEqual(self.ask(s, b"hello"), b"ok:hello")
        s.close()

    def test_cutBoth_losesTheSYN_silently(self):
        self.topo.cut(0, "both")
        t = time.monotonic()
        with self.assertRaises(socket.timeout):  # not refused, not unreachable: silence
            self.connect(0, timeout=0.7)
        self.assertGreaterEqual(time.monotonic() - t, 0.6)
        # The other replica is not cut.
        s = self.connect(1)
        self.assertEqual(self.ask(s, b"x"), b"ok:x")
        s.close()
        self.topo.heal(0)
        s = self.connect(0)
        self.assertEqual(self.ask(s, b"back"), b"ok:back")
        s.close()

    def answered_then_cut(self, direction, text):
        """A connection of replica 0 that got one answer; then the cut, and
        `text` sent on it goes unanswered. Returns the connection."""
        s = self.connect(0)
        self.assertEqual(self.ask(s, b"one"), b"ok:one")
        self.topo.cut(0, direction)
        self.unanswered(s, text)
        return s

    def test_cutFromAPI_isHalfOpen_theRequestArrivesTheAnswerDoesNot(self):
        s = self.answered_then_cut("from-api", b"two")
        self.assertTrue(any(b"two" in r for r in self.server.received), "the request did not arrive")
        self.topo.heal(0)
        # TCP retransmits the answer once the path is back.
        s.settimeout(5.0)
        self.assertEqual(s.recv(4096), b"ok:two")
        s.close()

    def test_cutToAPI_losesTheRequest(self):
        s = self.answered_then_cut("to-api", b"lost-request")
        self.assertFalse(any(b"lost-request" in r for r in self.server.received))
        s.close()

    def test_deadConnections_goSilent_newOnesPass(self):
        old = self.connect(1)
        self.assertEqual(self.ask(old, b"a"), b"ok:a")
        ports = self.topo.kill_connections(1)
        self.assertIn(old.getsockname()[1], ports)
        old.sendall(b"on-the-dead-one")
        with self.assertRaises(socket.timeout):
            old.recv(4096)
        self.assertFalse(any(b"on-the-dead-one" in r for r in self.server.received))
        new = self.connect(1)
        self.assertEqual(self.ask(new, b"fresh"), b"ok:fresh")
        new.close()
        old.close()


if __name__ == "__main__":
    unittest.main(verbosity=1)
