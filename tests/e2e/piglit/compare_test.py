#!/usr/bin/env python3
"""compare.py's verdicts on small made-up runs (ctest: unit.piglit_compare). Each case writes a vtest and an ours
result file (`result<TAB>seconds<TAB>detail<TAB>name`), runs compare.py on them and checks its exit status."""

import os
import subprocess
import sys
import tempfile
import unittest

COMPARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compare.py")


class CompareTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.dir.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir.name, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def results(self, name, rows):
        return self.write(name, "".join(f"{r}\t1.0\t{d}\t{t}\n" for t, r, d in rows))

    def run_compare(self, vtest, ours, *extra):
        v = self.results("vtest.txt", vtest)
        o = self.results("ours.txt", ours)
        md = os.path.join(self.dir.name, "report.md")
        p = subprocess.run([sys.executable, COMPARE, v, o, "--md", md, *extra], capture_output=True, text=True,
                           check=False)
        with open(md, encoding="utf-8") as f:
            self.report = f.read()
        self.output = p.stdout
        return p.returncode

    BASE = [("a", "pass", ""), ("b", "pass", ""), ("c", "fail", ""), ("d", "skip", "")]

    def test_same_results_pass(self):
        self.assertEqual(self.run_compare(self.BASE, self.BASE), 0)
        self.assertIn("no test differs", self.output)
        self.assertIn("**PASSED**", self.report)

    def test_pass_through_vtest_fail_on_ours_fails(self):
        ours = [("a", "fail", ""), ("b", "pass", ""), ("c", "fail", ""), ("d", "skip", "")]
        self.assertEqual(self.run_compare(self.BASE, ours), 1)
        self.assertIn("FAIL     pass -> fail    a", self.output)

    def test_warn_through_vtest_skip_on_ours_fails(self):
        vtest = [("a", "warn", ""), ("b", "pass", "")]
        ours = [("a", "skip", ""), ("b", "pass", "")]
        self.assertEqual(self.run_compare(vtest, ours), 1)

    def test_better_on_ours_passes(self):
        ours = [("a", "pass", ""), ("b", "pass", ""), ("c", "pass", ""), ("d", "skip", "")]
        self.assertEqual(self.run_compare(self.BASE, ours), 0)

    def test_crash_on_ours_where_vtest_failed_fails(self):
        ours = [("a", "pass", ""), ("b", "pass", ""), ("c", "crash", "timeout"), ("d", "skip", "")]
        self.assertEqual(self.run_compare(self.BASE, ours), 1)

    def test_missing_result_on_ours_fails(self):
        listing = self.write("tests.txt", "".join(f"{t}\tcmd {t}\n" for t, _, _ in self.BASE))
        self.assertEqual(self.run_compare(self.BASE, self.BASE[:3], "--list", listing), 1)

    def test_allowed_difference_passes(self):
        ours = [("a", "fail", ""), ("b", "pass", ""), ("c", "fail", ""), ("d", "skip", "")]
        allow = self.write("allow.txt", "# known\na\n")
        self.assertEqual(self.run_compare(self.BASE, ours, "--allow", allow), 0)

    def test_our_run_not_passed_fails(self):
        status = self.write("status.txt", "result FAIL\nbackend dead\n")
        self.assertEqual(self.run_compare(self.BASE, self.BASE, "--ours-status", status), 1)
        status = self.write("status.txt", "result PASS\nbackend alive\n")
        self.assertEqual(self.run_compare(self.BASE, self.BASE, "--ours-status", status), 0)

    def test_broken_reference_fails(self):
        vtest = [("a", "fail", ""), ("b", "fail", ""), ("c", "fail", ""), ("d", "pass", "")]
        self.assertEqual(self.run_compare(vtest, vtest), 1)
        self.assertIn("nothing can be compared", self.output)


if __name__ == "__main__":
    unittest.main()
