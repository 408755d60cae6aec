#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Tests of the run judge (tap.py) on synthetic runs: a judge that cannot
fail would make every other test meaningless."""

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

TAP_PY = Path(__file__).with_name("tap.py")

KUNIT_OK = """KTAP version 1
1..1
    KTAP version 1
    # Subtest: demo
    1..2
    ok 1 first
    ok 2 second
# demo: pass:2 fail:0 skip:0 total:2
ok 1 demo
"""


class Judge(unittest.TestCase):
    def run_judge(self, guest="ok - a\nok - b\n", kunit=KUNIT_OK, console="boot\n",
                  done=True, host="ok - h\n", nested=None):
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)
            (out / "host-points.txt").write_text(host)
            (out / "guest-points.txt").write_text(guest)
            (out / "console.log").write_text(console)
            if kunit is not None:
                (out / "kunit").mkdir()
                (out / "kunit" / "01-demo.ktap").write_text(kunit)
            if done:
                (out / "guest-done").touch()
            if nested is not None:
                (out / "nested-run").mkdir()
                (out / "nested-run" / "guest_a.console").write_text(nested)
            p = subprocess.run([sys.executable, str(TAP_PY), d],
                               capture_output=True, text=True)
            tap = (out / "results.tap").read_text()
        return p.returncode, p.stdout.strip().splitlines()[-1], tap

    def test_clean_run_passes(self):
        rc, last, tap = self.run_judge()
        self.assertEqual(rc, 0)
        # h, a, b, 2 KUnit cases, tests_ran, vm_completed, console_clean
        self.assertEqual(last, "8 passed, 0 failed")
        self.assertIn("    # Subtest: demo", tap)
        self.assertIn("ok 4 - kunit_demo", tap)
        self.assertTrue(tap.startswith("TAP version 14\n1..7\n"))

    def test_failed_guest_point_fails(self):
        rc, last, _ = self.run_judge(guest="ok - a\nnot ok - b\n# why\n")
        self.assertNotEqual(rc, 0)
        self.assertEqual(last, "7 passed, 1 failed")

    def test_failed_kunit_case_fails(self):
        rc, last, tap = self.run_judge(kunit=KUNIT_OK.replace("    ok 2", "    not ok 2")
                                       .replace("ok 1 demo", "not ok 1 demo"))
        self.assertNotEqual(rc, 0)
        self.assertEqual(last, "7 passed, 1 failed")
        self.assertIn("not ok 4 - kunit_demo", tap)

    def test_crashed_kunit_suite_fails(self):
        crashed = "\n".join(KUNIT_OK.splitlines()[:5]) + "\n"
        rc, last, _ = self.run_judge(kunit=crashed)
        self.assertNotEqual(rc, 0)
        self.assertEqual(last, "6 passed, 1 failed")

    def test_skipped_case_is_not_passed(self):
        rc, last, _ = self.run_judge(kunit=KUNIT_OK.replace("ok 2 second", "ok 2 second # SKIP no hw"))
        self.assertEqual(rc, 0)
        self.assertEqual(last, "7 passed, 0 failed, 1 skipped")

    def test_kernel_splats_fail(self):
        for splat in ("WARNING: CPU: 0 PID: 1 at drivers/x.c:1 f+0x1/0x2",
                      "BUG: kernel NULL pointer dereference, address: 0",
                      "Oops: 0000 [#1] SMP",
                      "WARNING: possible circular locking dependency detected",
                      "BUG: KASAN: slab-use-after-free in f+0x1/0x2",
                      "unreferenced object 0xffff888003f0c000 (size 64):",
                      "rust_kernel: panicked at drivers/vdcm/regs.rs:1:1:"):
            with self.subTest(splat=splat):
                rc, last, tap = self.run_judge(console=f"boot\n[ 1.0] {splat}\n")
                self.assertNotEqual(rc, 0)
                self.assertIn("not ok 7 - console_clean", tap)

    def test_nested_guest_splat_fails(self):
        rc, _, tap = self.run_judge(nested="boot\n[ 2.0] BUG: unable to handle page fault\n")
        self.assertNotEqual(rc, 0)
        self.assertIn("not ok 7 - console_clean", tap)
        self.assertIn("guest_a.console", tap)
        rc, _, _ = self.run_judge(nested="boot\nVDCM-GUEST done\n")
        self.assertEqual(rc, 0)

    def test_unfinished_vm_fails(self):
        rc, _, tap = self.run_judge(done=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("not ok 6 - vm_completed", tap)

    def test_no_tests_fails(self):
        for kw in ({"guest": ""}, {"kunit": None}):
            with self.subTest(**{k: repr(v) for k, v in kw.items()}):
                rc, _, tap = self.run_judge(**kw)
                self.assertNotEqual(rc, 0)
                self.assertRegex(tap, r"not ok \d+ - tests_ran")


if __name__ == "__main__":
    unittest.main()
