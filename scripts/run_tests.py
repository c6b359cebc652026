#!/usr/bin/env python
"""Every test, in four pytest processes run one after the other (what `make test` runs).

    library tests   tests/ except the three below
    distribute + benchmark tests   tests that run TensorFlow in a child process
    notebooks       notebooks/*.ipynb under nbval (--nbval-lax), quick mode unless INFERNET_QUICK=0
    browser test    tests/test_browser.py: JupyterLab + headless Chromium

Separate processes keep the suite's peak memory that of its largest stage, not their sum
(TensorFlow does not give memory back to the OS within a process). Every stage runs even when an
earlier one fails; the exit status is 0 only when all passed. pytest's exit code 5 ("no tests
collected") counts as a failure: a stage that finds nothing to test is broken, not green.
Extra arguments go to every stage, e.g. `python scripts/run_tests.py -x -q`.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# tests that start TensorFlow in a child process run apart from the in-process library tests,
# so that two TensorFlow runtimes are never resident at once
CHILD_PROCESS_TESTS = ["tests/test_distribute.py", "tests/test_checkpoint_kill.py", "tests/test_benchmarks.py"]
STAGES = [
    ("library tests", ["tests", "--ignore=tests/test_browser.py", *(f"--ignore={t}" for t in CHILD_PROCESS_TESTS)]),
    ("distribute + benchmark tests", CHILD_PROCESS_TESTS),
    ("notebooks (nbval)", ["notebooks", "--nbval-lax"]),
    ("browser test", ["tests/test_browser.py"]),
]


def stage_command(args: list[str], extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", *extra]


def main(extra: list[str]) -> int:
    env = {**os.environ, "INFERNET_QUICK": os.environ.get("INFERNET_QUICK", "1")}
    results = []
    for name, args in STAGES:
        print(f"\n=== {name}: pytest {' '.join(args)} ===", flush=True)
        start = time.perf_counter()
        rc = subprocess.call(stage_command(args, extra), cwd=REPO, env=env)
        if rc == 5:
            print(f"{name}: pytest collected no tests (exit code 5); counted as a failure", file=sys.stderr)
        results.append((name, rc, time.perf_counter() - start))
    print("\n=== summary ===")
    for name, rc, seconds in results:
        print(f"{'passed' if rc == 0 else f'FAILED (exit {rc})':<18} {name}  ({seconds:.0f} s)")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
