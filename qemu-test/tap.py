#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Assemble one TAP stream from a test run and judge it.

    tap.py OUT_DIR

Reads OUT_DIR/host-points.txt and OUT_DIR/guest-points.txt ("ok - NAME" /
"not ok - NAME" lines with "# " diagnostics), OUT_DIR/kunit/*.ktap (one
KUnit suite each, as KUnit's debugfs "results" file has it) and the
console/dmesg logs. Writes OUT_DIR/results.tap: KUnit suites are nested
subtests, every other test is a top-level point; three points are added by
this script: tests_ran (the guest reported points and KUnit suites),
vm_completed (the guest script reached its end) and console_clean (no
kernel splat in the logs).

Prints the failures, then "N passed, M failed" as its last line, counting
leaf tests (KUnit cases and top-level points). Exits non-zero if anything
failed or nothing ran.

    tap.py --scan LOG...

Only scans the logs for kernel splats; prints them and exits non-zero if
there are any.
"""

import re
import sys
from pathlib import Path

# Kernel reports that fail a run wherever they appear.
SPLATS = re.compile(
    r"WARNING:|BUG:|Oops|Kernel panic|general protection fault|UBSAN:|"
    r"panicked at|"
    r"possible circular locking dependency|possible recursive locking|"
    r"inconsistent lock state|suspicious RCU usage|DEBUG_LOCKS_WARN_ON|"
    r"INFO: lockdep is turned off|"
    r"KASAN: [a-z-]*(out-of-bounds|use-after-free|double-free|invalid-free|"
    r"null-ptr-deref|wild-memory-access)|"
    r"unreferenced object|"
    r"INFO: task .* blocked for more than|rcu: INFO: .* stall"
)
POINT = re.compile(r"^(not )?ok\b(?: \d+)?(?: - )?\s*(.*)$")
CASE = re.compile(r"^    (not )?ok \d+ (\S+)(.*)$")


class Stream:
    def __init__(self):
        self.lines = []
        self.points = 0
        self.passed = 0
        self.failed = 0
        self.skipped = 0
        self.failures = []

    def point(self, ok, name, diag=(), leaves=True):
        self.points += 1
        self.lines.append(f"{'ok' if ok else 'not ok'} {self.points} - {name}")
        self.lines.extend(diag)
        if leaves:
            self.count(ok, name, "", diag)

    def count(self, ok, name, directive, diag=()):
        if "# SKIP" in directive:
            self.skipped += 1
        elif ok:
            self.passed += 1
        else:
            self.failed += 1
            self.failures.append((name, list(diag)))


def read_points(stream, path):
    """Adds the "ok - NAME" points of PATH; returns how many there were."""
    if not path.exists():
        return 0
    n = 0
    pending = None
    for line in path.read_text(errors="replace").splitlines():
        m = POINT.match(line)
        if m:
            if pending:
                stream.point(*pending)
            pending = (m.group(1) is None, m.group(2).strip(), [])
            n += 1
        elif line.startswith("#") and pending:
            pending[2].append(line)
    if pending:
        stream.point(*pending)
    return n


def read_kunit(stream, path):
    """Adds one KUnit suite as a nested subtest; its cases are the leaves."""
    suite = re.sub(r"^\d+-", "", path.stem)
    text = path.read_text(errors="replace").splitlines()
    body = [l for l in text if l.startswith("    ") and l.strip() != "KTAP version 1"]
    result = [l for l in text if re.match(r"^(not )?ok \d+ ", l)]
    stream.lines.extend(body)
    failed_cases = 0
    for line in body:
        m = CASE.match(line)
        if m:
            ok = m.group(1) is None
            failed_cases += not ok
            stream.count(ok, f"{suite}.{m.group(2)}", m.group(3))
    suite_ok = bool(result) and result[-1].startswith("ok ")
    diag = [] if suite_ok else ["# suite did not report success"]
    stream.point(suite_ok, f"kunit_{suite}", diag, leaves=False)
    if not suite_ok and failed_cases == 0:
        # The suite failed without a failing case (crash, no result line).
        stream.count(False, f"kunit_{suite}", "", diag)


def scan_logs(paths):
    hits = []
    for path in paths:
        if path.exists():
            for line in path.read_text(errors="replace").splitlines():
                if SPLATS.search(line):
                    hits.append(f"# {path.name}: {line.strip()[:200]}")
    return hits


def main():
    if sys.argv[1] == "--scan":
        hits = scan_logs([Path(p) for p in sys.argv[2:]])
        print("\n".join(hits) if hits else "no kernel splat in " + " ".join(sys.argv[2:]))
        return 1 if hits else 0
    out = Path(sys.argv[1])
    s = Stream()
    read_points(s, out / "host-points.txt")
    guest = read_points(s, out / "guest-points.txt")
    suites = sorted((out / "kunit").glob("*.ktap")) if (out / "kunit").is_dir() else []
    for ktap in suites:
        read_kunit(s, ktap)
    s.point(guest > 0 and len(suites) > 0, "tests_ran",
            [f"# {guest} guest points, {len(suites)} KUnit suites; both must be > 0"])
    done = (out / "guest-done").exists()
    s.point(done, "vm_completed",
            [] if done else ["# the guest script did not finish: see console.log"])
    # The nested guests' consoles (qemu-test/guest/check.sh) count too.
    nested = sorted((out / "nested-run").glob("*.console"))
    hits = scan_logs([out / "console.log", out / "dmesg.log"] + nested)
    s.point(not hits, "console_clean", hits[:50])

    tap = ["TAP version 14", f"1..{s.points}"] + s.lines
    (out / "results.tap").write_text("\n".join(tap) + "\n")

    for name, diag in s.failures:
        print(f"FAILED: {name}")
        for d in diag:
            print(f"    {d}")
    print(f"results: {out / 'results.tap'}; console: {out / 'console.log'}")
    summary = f"{s.passed} passed, {s.failed} failed"
    if s.skipped:
        summary += f", {s.skipped} skipped"
    print(summary)
    return 0 if s.failed == 0 and s.passed > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
