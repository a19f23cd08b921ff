"""Checks of the chaos/bench arithmetic: the overlap detector and the
leaderless-gap computation. Run: python3 -m klharness.test_chaos"""
import os
import unittest

from klharness import chaos, workerlog


class OverlapTests(unittest.TestCase):
    def test_sequential_runs_do_not_overlap(self):
        log = [("start", "a.1", 1), ("stop", "a.1", 2), ("start", "b.1", 3), ("stop", "b.1", 4)]
        self.assertEqual(workerlog.overlaps(log), [])

    def test_start_inside_a_run_that_later_stopped_is_an_overlap(self):
        log = [("start", "a.1", 1), ("start", "b.1", 2), ("stop", "a.1", 3), ("stop", "b.1", 4)]
        self.assertEqual(len(workerlog.overlaps(log)), 1)

    def test_flock_conflict_is_an_overlap(self):
        log = [("start", "a.1", 1), ("overlap", "b.1", 2)]
        self.assertEqual(len(workerlog.overlaps(log)), 1)

    def test_start_after_a_sigkilled_run_is_not_an_overlap(self):
        log = [("start", "a.1", 1), ("start", "b.1", 5), ("stop", "b.1", 6)]
        self.assertEqual(workerlog.overlaps(log), [])


class GapTests(unittest.TestCase):
    def test_no_runs_is_one_gap_over_the_whole_window(self):
        self.assertEqual(chaos.longest_gap([], 10.0, 20.0), 10.0)

    def test_a_run_covering_the_window_leaves_no_gap(self):
        self.assertEqual(chaos.longest_gap([(5.0, 25.0, "a")], 10.0, 20.0), 0.0)

    def test_gap_until_first_start_after_the_faults_stop(self):
        self.assertAlmostEqual(chaos.longest_gap([(1.0, 9.0, "a"), (13.0, 30.0, "b")], 10.0, 20.0), 3.0)

    def test_longest_of_several_gaps_and_the_tail(self):
        runs = [(10.0, 11.0, "a"), (12.0, 15.0, "b"), (19.5, 21.0, "c")]
        self.assertAlmostEqual(chaos.longest_gap(runs, 10.0, 25.0), 4.5)
        runs = [(10.0, 11.0, "a"), (12.0, 15.0, "b")]
        self.assertAlmostEqual(chaos.longest_gap(runs, 10.0, 25.0), 10.0)


class HandOverModeTests(unittest.TestCase):
    def test_everyKindOfName_atLeastOnce_fromThree(self):
        for seed in range(20):
            c = chaos.Chaos.__new__(chaos.Chaos)
            c.a = chaos.parse_args(["--hand-overs", "3", "--seed", str(seed)])
            c.rng = chaos.random.Random(seed)
            self.assertEqual(sorted(c.hand_over_targets()), ["absent", "leader", "standby"])
            c.a = chaos.parse_args(["--hand-overs", "12"])
            kinds = c.hand_over_targets()
            self.assertEqual(len(kinds), 12)
            self.assertTrue({"absent", "leader", "standby"} <= set(kinds))

    def test_handOvers_goWithNoOtherMode(self):
        for argv in (["--outages", "1"], ["--split-locks"], ["--netns"]):
            with self.assertRaises(SystemExit, msg=argv):
                chaos.parse_args(["--hand-overs", "2"] + argv)


class FaultSelectionTests(unittest.TestCase):
    def test_default_isEveryFault_andNetnsFaultsOnlyWithNetns(self):
        a = chaos.parse_args([])
        self.assertEqual(a.faults, chaos.FAULTS + chaos.WRITER_FAULTS)
        n = chaos.parse_args(["--netns"])
        self.assertIn("dead-conns", n.faults)
        self.assertNotIn("dead-conns", a.faults)
        self.assertIn("cut", n.faults)
        self.assertNotIn("cut", a.faults)

    def test_namedFaults_areUsedAsGiven(self):
        a = chaos.parse_args(["--netns", "--faults", "dead-conns,other-holder,short-lease"])
        self.assertEqual(a.faults, ["dead-conns", "other-holder", "short-lease"])

    def test_unknownFaults_orNetnsFaultsWithoutNetns_areRefused(self):
        for argv in (["--faults", "nope"], ["--faults", "cut"], ["--faults", ""]):
            with self.assertRaises(SystemExit, msg=argv):
                chaos.parse_args(argv)

    def test_everyFaultHasHelp(self):
        self.assertEqual(sorted(chaos.FAULT_HELP), sorted(chaos.ALL_FAULTS))


class IntervalTests(unittest.TestCase):
    """--on-loss standby: one identity runs several children in turn."""

    def chaos_with(self, lines, ended=()):
        import tempfile
        c = chaos.Chaos.__new__(chaos.Chaos)
        f = tempfile.NamedTemporaryFile("w", delete=False, suffix=".log")
        f.write("".join("%s %s %d\n" % line for line in lines))
        f.close()
        self.addCleanup(os.unlink, f.name)
        c.workers, c.ended = f.name, list(ended)
        return c

    def test_sameIdentityTwice_isTwoRuns(self):
        c = self.chaos_with([("start", "a", 1e9), ("stop", "a", 2e9), ("start", "a", 5e9), ("stop", "a", 6e9)])
        runs, _ = c.intervals(10.0)
        self.assertEqual(runs, [(1.0, 2.0, "a"), (5.0, 6.0, "a")])
        self.assertAlmostEqual(chaos.longest_gap(runs, 0.0, 10.0), 4.0)

    def test_runWithoutStop_endsAtTheNextStartOfThatIdentity_orItsExit(self):
        c = self.chaos_with([("start", "a", 1e9), ("start", "a", 3e9), ("start", "b", 7e9)], ended=[(0, "b", 137, 8.0)])
        runs, _ = c.intervals(10.0)
        self.assertEqual(runs, [(1.0, 3.0, "a"), (3.0, 10.0, "a"), (7.0, 8.0, "b")])

    def test_outageArguments(self):
        a = chaos.parse_args(["--outages", "3", "--on-loss", "standby"])
        self.assertEqual((a.outages, a.outage_seconds, a.on_loss), (3, 30.0, "standby"))
        for argv in (["--outages", "-1"], ["--outages", "1", "--outage-seconds", "0"], ["--outages", "1", "--split-locks"],
                     ["--on-loss", "later"]):
            with self.assertRaises(SystemExit, msg=argv):
                chaos.parse_args(argv)


if __name__ == "__main__":
    unittest.main()
