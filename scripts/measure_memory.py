#!/usr/bin/env python
"""Peak memory (RSS) of every notebook in full mode and of the test suite, as a table.

    python scripts/measure_memory.py                    # every notebooks/*.ipynb in full mode, then `make test`'s pytest
    python scripts/measure_memory.py --mode quick       # the notebooks as CI and Binder run them
    python scripts/measure_memory.py --skip-tests notebooks/02_inference_networks.ipynb
    python scripts/measure_memory.py --skip-tests --inplace   # regenerate the committed full-mode outputs, measured

Each command runs in a subprocess (notebooks through ``jupyter nbconvert --execute``, which starts a
kernel); every 0.1 s the RSS of the whole process tree (nbconvert or pytest, kernels, browsers) is
summed and the maximum kept. Summed RSS counts pages shared between processes (libraries, a
browser's shared memory) once per process, so it errs high; the PSS column (Linux, sampled every 2 s:
reading it costs the measured run CPU time) shares them out.
The limits are checked against RSS. Limits (issue 7): 1.5 GB per notebook in full mode, 2 GB for the test suite.
Exit status 1 when a run fails or exceeds its limit. Not a unit test: it takes as long as the runs.
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
GB = 1e9
NOTEBOOK_LIMIT = 1.5 * GB
TESTS_LIMIT = 2.0 * GB
PSS_EVERY = 20  # polls (0.1 s each): PSS once every 2 s


def tree_memory(proc: psutil.Process, pss: bool) -> tuple[int, int]:
    """Summed RSS and PSS (bytes) of a process and all its descendants; vanished processes count 0.

    PSS (Linux) shares each page among the processes that map it, so its sum does not count shared
    libraries and browser shared memory several times; it is 0 where the OS does not report it.
    """
    rss = pss_total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0, 0
    for p in procs:
        try:
            if pss:
                info = p.memory_full_info()
                rss += info.rss
                pss_total += getattr(info, "pss", 0)
            else:
                rss += p.memory_info().rss
        except psutil.Error:
            pass
    return rss, pss_total


def run_measured(cmd: list[str], env: dict, cwd: Path, timeout: float, interval: float = 0.1) -> dict:
    """Run ``cmd``; return exit code, wall seconds, peak tree RSS (bytes), output tail, timed_out."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        ps = psutil.Process(proc.pid)
        peak = peak_pss = 0
        stop = threading.Event()
        pss = sys.platform.startswith("linux")

        def poll():
            nonlocal peak, peak_pss
            for i in itertools.count():
                if stop.is_set():
                    break
                # PSS reads every mapping (/proc/PID/smaps): a third of a core at every poll, which slowed
                # the runs it measured; RSS every poll, PSS every PSS_EVERY-th
                rss, shared = tree_memory(ps, pss and i % PSS_EVERY == 0)
                peak, peak_pss = max(peak, rss), max(peak_pss, shared)
                stop.wait(interval)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        timed_out = False
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            for p in [*ps.children(recursive=True), ps]:  # only the tree this script started
                try:
                    p.kill()
                except psutil.Error:
                    pass
            code = proc.wait()
        stop.set()
        poller.join()
        log.seek(0)
        output = log.read()
    return {"returncode": code, "seconds": time.perf_counter() - start, "peak_rss": peak, "peak_pss": peak_pss,
            "timed_out": timed_out, "tail": output[-1500:]}


def environment(quick: bool, data_dir: str | None) -> dict:
    env = dict(os.environ, INFERNET_QUICK="1" if quick else "0", TF_CPP_MIN_LOG_LEVEL="2")
    if data_dir:
        env["INFERNET_DATA_DIR"] = data_dir
    return env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="notebooks to run (default: notebooks/*.ipynb)")
    parser.add_argument("--mode", choices=["full", "quick"], default="full", help="notebook mode (default full)")
    parser.add_argument("--skip-notebooks", action="store_true")
    parser.add_argument("--inplace", action="store_true",
                        help="write the executed notebooks back (regenerates the committed outputs while measuring)")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--tests", default=None,
                        help="pytest arguments for one suite run (default: each stage `make test` runs, see scripts/run_tests.py)")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per run (default 3600)")
    parser.add_argument("--data-dir", default=os.environ.get("INFERNET_DATA_DIR")
                        or str(REPO.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON")
    args = parser.parse_args(argv)

    data_dir = args.data_dir if Path(args.data_dir).is_dir() else None
    runs = []  # (name, mode, command, env, cwd, limit)
    if not args.skip_notebooks:
        notebooks = [Path(p).resolve() for p in args.notebooks] or sorted((REPO / "notebooks").glob("*.ipynb"))
        if not notebooks:
            print("no notebooks found in notebooks/; measuring the test suite only")
        for nb in notebooks:
            where = ["--inplace"] if args.inplace else ["--output-dir", "{out}"]
            cmd = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", *where,
                   "--ExecutePreprocessor.store_widget_state=False", f"--ExecutePreprocessor.timeout={int(args.timeout)}", str(nb)]
            runs.append((nb.name, args.mode, cmd, environment(args.mode == "quick", data_dir), nb.parent, NOTEBOOK_LIMIT))
    if not args.skip_tests:
        from run_tests import STAGES, stage_command  # the stages `make test` runs, one process each

        stages = [("test suite", args.tests.split())] if args.tests else [(f"tests: {name}", a) for name, a in STAGES]
        for name, stage_args in stages:
            runs.append((name, "quick", stage_command(stage_args, ["-q"]), environment(True, data_dir), REPO, TESTS_LIMIT))

    rows = []
    with tempfile.TemporaryDirectory() as out:
        for name, mode, cmd, env, cwd, limit in runs:
            cmd = [c.replace("{out}", out) for c in cmd]
            print(f"running {name} ({mode}) ...", flush=True)
            r = run_measured(cmd, env, cwd, args.timeout)
            ok = r["returncode"] == 0 and not r["timed_out"]
            rows.append({"name": name, "mode": mode, "returncode": r["returncode"], "timed_out": r["timed_out"],
                         "seconds": round(r["seconds"], 1), "peak_rss_mb": round(r["peak_rss"] / 1e6), "peak_pss_mb": round(r["peak_pss"] / 1e6),
                         "limit_mb": round(limit / 1e6), "ok": ok, "within_limit": r["peak_rss"] <= limit})
            if not ok:
                print(f"  {name} failed (exit {r['returncode']}{', timed out' if r['timed_out'] else ''}):\n{r['tail']}")

    today = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpus = psutil.cpu_count()
    print(f"\nPeak RSS (process tree, summed), {today}, {platform.system()} {cpus} CPUs, "
          f"{psutil.virtual_memory().total / GB:.0f} GB RAM, Python {platform.python_version()}")
    print(f"| {'run':<34} | {'mode':<5} | {'exit':>4} | {'wall s':>7} | {'peak RSS MB':>11} | {'peak PSS MB':>11} | {'limit MB':>8} | ok  |")
    print(f"|{'-' * 36}|{'-' * 7}|{'-' * 6}|{'-' * 9}|{'-' * 13}|{'-' * 13}|{'-' * 10}|-----|")
    for row in rows:
        good = row["ok"] and row["within_limit"]
        print(f"| {row['name']:<34} | {row['mode']:<5} | {row['returncode']:>4} | {row['seconds']:>7.1f} | "
              f"{row['peak_rss_mb']:>11,} | {row['peak_pss_mb']:>11,} | {row['limit_mb']:>8,} | {'yes' if good else 'NO':<3} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"date": today, "rows": rows}, indent=2))
    return 0 if all(r["ok"] and r["within_limit"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
