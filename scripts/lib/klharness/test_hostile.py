"""Self-test of the hostile runner's checks (hostile.py's judge):
each check must fail on an observation that breaks it and pass on one that
does not, so a green hostile run means something. Standard library only."""
import signal
import unittest

from klharness.hostile import Case, Observed, judge, LEASE


def requests(times):
    return [(t, ("get", "watch")[i % 2]) for i, t in enumerate(times)]


class JudgeTests(unittest.TestCase):
    def quiet(self, **kw):
        """A standby that waited 12 s with one GET and one watch per second."""
        o = Observed(start=0.0, end=12.0, report={"requests": requests([i * 1.0 for i in range(12)]) * 2},
                     cpu=(0.10, 3.0, 0.12, 12.0), rss_max=12.0)
        for k, v in kw.items():
            setattr(o, k, v)
        return o

    def test_aQuietStandby_passes(self):
        self.assertEqual(judge(Case("c", "get-500"), self.quiet()), [])

    def test_crashSignals_fail(self):
        for sig in (signal.SIGILL, signal.SIGTRAP, signal.SIGSEGV):
            f = judge(Case("c", "x", exit={None, -sig}), self.quiet(rc=-sig))
            self.assertTrue(any(x.startswith("crash:") for x in f), f)

    def test_wrongExitOrMissingMessage_fails(self):
        self.assertTrue(judge(Case("c", "x"), self.quiet(rc=3)))  # had to keep waiting
        self.assertTrue(judge(Case("c", "x", exit=2), self.quiet(rc=None)))  # had to exit
        f = judge(Case("c", "x", exit=2, message="token file"), self.quiet(rc=2, stderr="bad"))
        self.assertTrue(any(x.startswith("message:") for x in f), f)
        self.assertEqual(judge(Case("c", "x", exit=2, message="token file"), self.quiet(rc=2, stderr="the token file t")), [])

    def test_childWithoutTheLock_fails(self):
        f = judge(Case("c", "x"), self.quiet(child_pid=42, child_seen=5.0))
        self.assertTrue(any(x.startswith("lock:") for x in f), f)
        # A control case whose child ran although the server never made kube-leader the holder.
        f = judge(Case("c", "normal", child="starts"), self.quiet(child_pid=42, child_seen=5.0, report={"requests": [], "kl_acquires": 0}))
        self.assertTrue(any("never applied a write" in x for x in f), f)
        self.assertEqual(judge(Case("c", "normal", child="starts"),
                               self.quiet(child_pid=42, child_seen=5.0, report={"requests": [], "kl_acquires": 1})), [])

    def test_watchesWithinARetryPeriod_failOnlyWhereChecked(self):
        close = {"requests": [(0.0, "list"), (0.1, "watch"), (4.8, "watch"), (5.1, "watch"), (6.2, "watch")]}
        f = judge(Case("c", "watch-open-late", watch_gap=True), self.quiet(report=close))
        self.assertTrue(any("two watches 0.30s apart" in x for x in f), f)
        self.assertEqual(judge(Case("c", "watch-open-late"), self.quiet(report=close)), [])
        paced = {"requests": [(0.0, "list"), (0.1, "watch"), (4.8, "watch"), (6.0, "watch"), (7.1, "watch")]}
        self.assertEqual(judge(Case("c", "watch-open-late", watch_gap=True), self.quiet(report=paced)), [])

    def test_controlWithoutChild_fails(self):
        f = judge(Case("c", "normal", child="starts"), self.quiet(report={"requests": [], "kl_acquires": 1}))
        self.assertTrue(any(x.startswith("child:") for x in f), f)

    def test_childAlivePastTheLease_fails(self):
        case = Case("c", "renew-409", child="starts", exit=3, lost=True)
        rep = {"requests": [], "kl_acquires": 1, "kl_last_applied": 4.0}
        ok = judge(case, self.quiet(rc=3, child_pid=7, child_seen=1.0, child_dead=4.0 + LEASE - 0.5, report=rep))
        self.assertEqual(ok, [])
        late = judge(case, self.quiet(rc=3, child_pid=7, child_seen=1.0, child_dead=4.0 + LEASE + 0.2, report=rep))
        self.assertTrue(any("still alive" in x for x in late), late)
        never = judge(case, self.quiet(rc=3, child_pid=7, child_seen=1.0, child_dead=None, report=rep))
        self.assertTrue(any("still alive" in x for x in never), never)

    def test_hotLoopsAndBursts_fail(self):
        hot = self.quiet(report={"requests": requests([2.0 + i / 1000.0 for i in range(5000)])})
        self.assertTrue(any(x.startswith("rate:") for x in judge(Case("c", "x"), hot)))
        burst = self.quiet(report={"requests": requests([5.0 + i / 100.0 for i in range(9)])})
        self.assertTrue(any(x.startswith("rate:") for x in judge(Case("c", "x"), burst)))
        # Requests during start-up (the first 2 s) do not count.
        early = self.quiet(report={"requests": requests([0.5 + i / 1000.0 for i in range(50)])})
        self.assertEqual(judge(Case("c", "x"), early), [])

    def test_twoReadsPerRetryPeriod_fail_oneOfEachPasses(self):
        each = [(2.0 + i, v) for i in range(10) for v in ("list", "watch", "update")]
        self.assertEqual(judge(Case("c", "x"), self.quiet(report={"requests": each})), [])
        reads = [(2.0 + i / 2.0, "get") for i in range(20)]
        f = judge(Case("c", "x"), self.quiet(report={"requests": reads}))
        self.assertTrue(any(x.startswith("rate: 20 reads") for x in f), f)

    def test_busyCpuAndMemory_fail(self):
        f = judge(Case("c", "x"), self.quiet(cpu=(1.0, 3.0, 9.0, 12.0)))
        self.assertTrue(any(x.startswith("cpu:") for x in f), f)
        self.assertEqual(judge(Case("c", "x", cpu=False), self.quiet(cpu=(1.0, 3.0, 9.0, 12.0))), [])
        f = judge(Case("c", "x"), self.quiet(rss_max=500.0))
        self.assertTrue(any(x.startswith("rss:") for x in f), f)

    def test_aLeaderThatMustKeepItsLock_failsWhenItsChildDies(self):
        case = Case("c", "silent-keepalive", child="starts", keeps=True, report_min={"silenced": 0.0})
        rep = {"requests": [], "kl_acquires": 1, "kl_last_applied": 9.0, "silenced": 4.0}
        self.assertEqual(judge(case, self.quiet(child_pid=7, child_seen=1.0, report=rep)), [])
        f = judge(case, self.quiet(rc=3, child_pid=7, child_seen=1.0, child_dead=6.0, report=rep))
        self.assertTrue(any("died 6.00s into the case" in x for x in f), f)
        self.assertTrue(any(x.startswith("exit: 3") for x in f), f)
        # Stopped with kube-leader by the runner after the case's end: fine.
        self.assertEqual(judge(case, self.quiet(child_pid=7, child_seen=1.0, child_dead=12.2, report=rep)), [])

    def test_aFaultThatNeverHappened_failsTheCase(self):
        case = Case("c", "silent-keepalive", child="starts", keeps=True, report_min={"silenced": 0.0})
        f = judge(case, self.quiet(child_pid=7, child_seen=1.0, report={"requests": [], "kl_acquires": 1, "silenced": None}))
        self.assertTrue(any(x.startswith("harness: the fault did not happen") for x in f), f)
        case = Case("c", "authz-outage", child="starts", report_min={"outage_answers": 2})
        f = judge(case, self.quiet(child_pid=7, child_seen=1.0, report={"requests": [], "kl_acquires": 1, "outage_answers": 1}))
        self.assertTrue(any("outage_answers=1" in x for x in f), f)

    def test_bytesOnTheSilentConnection_fail(self):
        rep = {"requests": [], "kl_acquires": 1, "silenced": 4.0, "after_silence_bytes": 312}
        f = judge(Case("c", "silent-keepalive", child="starts"), self.quiet(child_pid=7, child_seen=1.0, report=rep))
        self.assertTrue(any(x.startswith("reuse: kube-leader sent 312 bytes") for x in f), f)

    def test_aMissingWarningOrALateChild_fail(self):
        rep = {"requests": [], "kl_acquires": 1}
        case = Case("c", "authz-outage", child="starts", log_has="Forbidden")
        f = judge(case, self.quiet(child_pid=7, child_seen=9.0, report=rep, stderr="lock request failed: HTTP 500"))
        self.assertTrue(any(x.startswith("log:") for x in f), f)
        self.assertEqual(judge(case, self.quiet(child_pid=7, child_seen=9.0, report=rep, stderr="Forbidden: the service")), [])
        late = Case("c", "watch-silent", child="starts", child_by=5.0)
        f = judge(late, self.quiet(child_pid=7, child_seen=8.0, report=rep))
        self.assertTrue(any(x.startswith("child: started 8.0s") for x in f), f)
        self.assertEqual(judge(late, self.quiet(child_pid=7, child_seen=4.0, report=rep)), [])
        f = judge(late, self.quiet(report=rep))
        self.assertTrue(any(x.startswith("child: never started") for x in f), f)

    def test_injectionAndWrongToken_fail(self):
        f = judge(Case("c", "x"), self.quiet(report={"requests": [], "injected": ["GET /injected HTTP/1.1"]}))
        self.assertTrue(any(x.startswith("injection:") for x in f), f)
        f = judge(Case("c", "token-crlf", child="any"), self.quiet(report={"requests": [], "bad_auth": 3}))
        self.assertTrue(any(x.startswith("token:") for x in f), f)


if __name__ == "__main__":
    unittest.main(verbosity=1)
