"""python -m benchmarks [--quick] [--json PATH] [--only NAME ...] [--out PATH]

Runs the benchmarks, prints their tables and writes them (with machine, versions, date and load) to
benchmarks/results.md, which holds a full run only. ``--quick``: a smoke run of every benchmark
(small data, notebooks in quick mode) written to ``--out`` or a temporary file, never to results.md.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from . import common
from .common import Config, Row, fmt
from .throughput import LIBRARY, LIBRARY_JUPYTER, LIBRARY_JUPYTER_LATER

# memory first: its training run is a child process, measured while this process is still small
BENCHMARKS = ("memory", "throughput", "test_time", "notebooks")
RESULTS = Path(__file__).with_name("results.md")
BUSY_LOAD = 1.0  # 1-minute load average above which the machine is not quiet enough for the race
BUSY = f"The machine was busy when this run started (load average above {BUSY_LOAD:g}): its ratios are not reliable."
TITLES = {
    "throughput_mlp": "Training throughput, reference MLP model (images/s; ratio = row / library)",
    "throughput_conv": "Training throughput, conv model (images/s; ratio = row / library)",
    "test_time": "Test-time inference for new digits (seconds; ratio = row / inference network forward pass)",
    "memory_params": "Variational parameters vs N (float32; ratio = local factors / inference network)",
    "memory_rss": "Peak RSS of a training run",
    "notebooks": "Notebooks (wall time and peak RSS of nbconvert + kernel)",
}


def parse(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=" ".join(__doc__.split("\n\n")[1].split()))
    p.add_argument("--quick", action="store_true", help="smoke run of every benchmark and every installed peer on small data; writes --out or a temporary file, never results.md")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the unit test's size
    p.add_argument("--json", metavar="PATH", help="write every row's figures as JSON")
    p.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these benchmarks")
    p.add_argument("--out", help="markdown results (default: benchmarks/results.md for a full run, a temporary file with --quick)")
    p.add_argument("--append", action="store_true", help="append this run's tables (with its own header) to --out instead of replacing it")
    p.add_argument("--data-dir", default=None, help="MNIST folder (default: $INFERNET_DATA_DIR)")
    p.add_argument("--notebooks-dir", default=None, help=argparse.SUPPRESS)
    p.add_argument("--notebook-modes", nargs="+", choices=("quick", "full"), help="notebook modes to run (default: quick and full; --quick: quick)")
    args = p.parse_args(argv)
    if (args.quick or args.tiny) and args.out and Path(args.out).resolve() == RESULTS.resolve():
        p.error(f"{RESULTS} holds a full run only; write a --quick run elsewhere (--out PATH)")
    return args


def output_path(args) -> Path:
    """``--out``; else results.md for a full run, a new temporary file for ``--quick`` (results.md is left alone)."""
    if args.out:
        return Path(args.out)
    if args.quick or args.tiny:
        fd, name = tempfile.mkstemp(prefix="benchmarks-quick-", suffix=".md")
        os.close(fd)
        return Path(name)
    return RESULTS


def table_lines(table: str, rows: list[Row]) -> list[str]:
    lines = [f"### {TITLES.get(table, table)}", "", "| row | value | unit | ratio | notes |", "|---|---:|---|---:|---|"]
    for r in rows:
        notes = [r.note] if r.note else []
        for key in ("img_per_cpu_second", "elbo", "mean_elbo", "steps", "peak_rss_mib", "seconds", "library_fraction", "params",
                    "first_epoch_extra_s"):
            if key in r.extra:
                v = r.extra[key]
                notes.append(f"{key.replace('_', ' ')} {fmt(v) if not isinstance(v, float) or key != 'library_fraction' else f'{v:.0%}'}")
        lines.append(f"| {r.name} | {fmt(r.value)} | {r.unit} | {fmt(r.ratio)} | {'; '.join(notes)} |")
    return lines + [""]


def find(rows: list[Row], table: str, prefix: str) -> Row | None:
    """The first measured row of ``table`` whose name starts with ``prefix``."""
    return next((r for r in rows if r.table == table and r.name.startswith(prefix) and r.value), None)


def verdict(ok: bool, busy: bool = False) -> str:
    """The verdict on a target: met or NOT met, flagged when the machine was busy (then the figure says little)."""
    return ("met" if ok else "NOT met") + (" (busy machine: not reliable)" if busy else "")


def ratio_line(lib: Row, peer: Row | None, label: str, want: float | None = None, busy: bool = False) -> str:
    if peer is None:
        return f"- {label}: not measured (no {label.split(' / ')[1]} row in this run)"
    got = lib.value / peer.value
    per_cpu = lib.extra["img_per_cpu_second"] / peer.extra["img_per_cpu_second"]
    target = f" (target >= {want}x): {verdict(got >= want, busy)}" if want else ""
    return f"- {label} = **{got:.2f}x**{target} (per CPU-second: {per_cpu:.2f}x)"


def targets(rows: list[Row], busy: bool = False) -> list[str]:
    """The issue's targets, each stated as met or NOT met from this run's rows (flagged when ``busy``),
    then the other ratios."""
    out = []
    lib = find(rows, "throughput_mlp", LIBRARY.label)
    if lib:
        jax = find(rows, "throughput_mlp", "JAX")
        out.append(ratio_line(lib, jax, "library / JAX + optax", 1.1, busy))
        in_kernel = find(rows, "throughput_mlp", LIBRARY_JUPYTER.label)
        if in_kernel:
            out.append(ratio_line(in_kernel, jax, "library in a Jupyter kernel, first XLA-eligible run (the notebooks' "
                                  "path) / JAX + optax", 1.1, busy))
        later = find(rows, "throughput_mlp", LIBRARY_JUPYTER_LATER.label)
        if later:
            out.append(ratio_line(later, jax, "library in a Jupyter kernel, a later run / JAX + optax"))
        roof = find(rows, "throughput_mlp", "roofline")
        if roof:
            frac = roof.extra["library_fraction"]
            out.append(f"- library / float32 matmul roofline = **{frac:.0%}** (target >= 45 %): "
                       f"{verdict(frac >= 0.45, busy)}")
        for prefix, label in (("Keras 3 fit, jit", "library / Keras fit (XLA, one epoch per call)"),
                              ("Keras 3 fit, defaults", "library / Keras fit (defaults)"),
                              ("PyTorch", "library / PyTorch"), ("Pyro SVI, Jit", "library / Pyro (JIT ELBO)"),
                              ("Pyro SVI, TraceMeanField", "library / Pyro (plain ELBO)"),
                              ("bare TF", "library / bare TF+XLA loop")):
            peer = find(rows, "throughput_mlp", prefix)
            if peer:
                out.append(ratio_line(lib, peer, label))
    conv = find(rows, "throughput_conv", LIBRARY.label)
    if conv:
        for prefix, label in (("Keras 3 fit, jit", "conv model: library / Keras fit (XLA)"),
                              ("Keras 3 fit, defaults", "conv model: library / Keras fit (defaults)"),
                              ("PyTorch", "conv model: library / PyTorch")):
            peer = find(rows, "throughput_conv", prefix)
            if peer:
                out.append(ratio_line(conv, peer, label))
    local = next((r for r in rows if r.table == "test_time" and r.name.startswith("local VI")), None)
    if local:
        out.append(f"- local VI / inference network forward pass = **{local.ratio:,.0f}x** slower (target >= 1000x): "
                   f"{verdict(local.ratio >= 1000, busy)}")
    return out


HOW = (
    "How the race is run: every peer is a script in `benchmarks/peers/`, run in its own process (no two "
    "runtimes share a process or its thread pools), at the CPU settings its own documentation recommends "
    "(cited in the script's docstring) and, where the defaults differ, at its defaults too. All peers load "
    "first; then each round runs one epoch of every peer in turn (A B C D, A B C D, ...), one peer at a time "
    "(a waiting peer blocks on its input and uses no CPU), so a change of machine load hits every peer alike. The first epoch (compilation) is dropped; a row is the "
    "median of the timed epochs, and images per CPU-second (all threads of its process) says what an epoch "
    "costs whatever share of the CPU it got. Keras 3's default `jit_compile=\"auto\"` does not use XLA on a "
    "CPU-only machine with the TensorFlow backend (keras/src/trainers/trainer.py, `_resolve_auto_jit_compile`), "
    "so the Keras defaults row runs TensorFlow's own kernels, one step per call; the tuned row asks for XLA "
    "and a whole epoch per call. The roofline is the float32 rate of a 1024x1024 matmul, measured in the "
    "driver before any peer starts; the model's steps (a batch of 100 through 784x256 and 256x784 matmuls, "
    "plus random numbers, elementwise work and Adam) cannot all run at that rate, so no row reaches 100 %."
)


def write_markdown(path: Path, cfg: Config, info: dict, rows: list[Row], seconds: float, append: bool = False) -> None:
    if append and path.exists():
        lines = [
            path.read_text().rstrip(), "",
            f"## Added by a separate run: `python -m benchmarks {' '.join(sys.argv[1:])}`", "",
            f"{info['date']}, {seconds:.0f} s; load average at start {info['load_start']}, at end {info['load_end']}.", "",
        ]
        for table in dict.fromkeys(r.table for r in rows):
            lines += table_lines(table, [r for r in rows if r.table == table])
        path.write_text("\n".join(lines))
        return
    lines = [
        "# Benchmark results",
        "",
        f"Written by `python -m benchmarks{' --quick' if cfg.mode == 'quick' else ''}` ({cfg.mode} mode) "
        f"on {info['date']}, {seconds:.0f} s in all. Re-run it to replace this file.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']}, {info['cores']} cores, {info['memory_gb']} GB RAM; {info['platform']}",
        f"- GPU: {', '.join(info['gpus']) if info['gpus'] else 'none. GPU figures are not yet measured.'}",
        f"- Python {info['python']}, TensorFlow {info['tensorflow']}, TFP {info['tensorflow-probability']}, "
        f"Keras {info['keras']}, NumPy {info['numpy']}, PyTorch {info['torch']}, Pyro {info['pyro-ppl']}, "
        f"JAX {info['jax']}, optax {info['optax']}",
        f"- Load average (1/5/15 min) at start: {info['load_start']}; at end: {info['load_end']}. "
        f"Run the race on a quiet machine: under load from other jobs even the ratios are unfair, because "
        f"runtimes whose idle threads spin (PyTorch's OpenMP at its defaults) lose far more than the others."
        + (f" **{BUSY}**" if info.get("busy") else ""),
        "",
        "## Targets",
        "",
        *targets(rows, info["busy"]),
        "",
        HOW,
        "",
        "## Tables",
        "",
    ]
    for table in dict.fromkeys(r.table for r in rows):
        lines += table_lines(table, [r for r in rows if r.table == table])
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    args = parse(argv)
    kw = {"data_dir": args.data_dir or os.environ.get("INFERNET_DATA_DIR")}
    if args.notebooks_dir:
        kw["notebooks_dir"] = Path(args.notebooks_dir)
    if args.notebook_modes:
        kw["notebook_modes"] = tuple(args.notebook_modes)
    cfg = Config.tiny(**kw) if args.tiny else Config.quick(**kw) if args.quick else Config.full(**kw)
    import infernet_tutorial  # noqa: F401  (imports TensorFlow, its start-up lines filtered)
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # test_time calls fit (a new tf.function) repeatedly: retracing notes
    info = common.machine()
    info["busy"] = os.getloadavg()[0] > BUSY_LOAD
    if info["busy"]:
        print(f"WARNING: {BUSY}", flush=True)
    print(f"benchmarks ({cfg.mode} mode) on {info['cpu']} ({info['cores']} cores), TF {info['tensorflow']}, "
          f"torch {info['torch']}, pyro {info['pyro-ppl']}, jax {info['jax']}; load {info['load_start']}", flush=True)
    start = time.perf_counter()
    rows: list[Row] = []
    for name in args.only or BENCHMARKS:
        t0 = time.perf_counter()
        print(f"\n== {name} ...", flush=True)
        new = importlib.import_module(f".{name}", __package__).run(cfg)
        rows += new
        for table in dict.fromkeys(r.table for r in new):
            print("\n".join(table_lines(table, [r for r in new if r.table == table])))
        print(f"({name}: {time.perf_counter() - t0:.0f} s, load {common.load()})", flush=True)
    info["load_end"] = common.load()
    seconds = time.perf_counter() - start
    print("\n".join(["", "Targets:", *targets(rows, info["busy"])]))
    out = output_path(args)
    write_markdown(out, cfg, info, rows, seconds, append=args.append)
    print(f"\nresults written to {out}")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": info, "mode": cfg.mode, "seconds": seconds,
                                               "rows": [r.as_dict() for r in rows]}, indent=2, default=str))
        print(f"rows written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
