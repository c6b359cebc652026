"""Shared pieces of the benchmarks: configuration, rows, timing, machine description."""
from __future__ import annotations

import dataclasses
import importlib.metadata
import datetime as _dt
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODEL_FLOP_PER_IMAGE = 2.45e6  # reference MLP, forward + backward (see throughput.reference_flops)


@dataclass
class Config:
    """How big each benchmark is. ``Config.full()``, ``.quick()`` (smoke run: every benchmark and peer, small data) or ``.tiny()`` (unit test)."""

    mode: str = "full"
    n_train: int | None = None  # None: every shared training image
    warmup_epochs: int = 1
    repeats: int = 5  # timed epochs per row (median reported)
    conv_n_train: int | None = 10_000
    conv_repeats: int = 3
    peer_keys: tuple | None = None  # throughput peers to race (Peer.key); None: all of them
    peer_timeout: float = 900.0  # seconds a peer may take to load or to run one epoch
    train_epochs: int = 10  # test-time benchmark: epochs to train the decoder + encoder first
    n_test: int = 1000
    local_vi_steps: int = 3000
    refine_steps: int = 100
    rss_epochs: int = 30  # peak-RSS training run (CLI in a subprocess)
    rss_n_train: int | None = None
    notebook_modes: tuple = ("quick", "full")
    notebooks_dir: Path = REPO / "notebooks"
    notebook_timeout: int = 3600
    matmul_seconds: float = 2.0
    data_dir: str | None = None

    @classmethod
    def full(cls, **kw):
        return dataclasses.replace(cls(), **kw)

    @classmethod
    def quick(cls, **kw):
        base = cls(mode="quick", n_train=5_000, repeats=2, conv_n_train=2_000, conv_repeats=1, train_epochs=1,
                   local_vi_steps=400, refine_steps=50, rss_epochs=1, rss_n_train=5_000, notebook_modes=("quick",),
                   notebook_timeout=900, matmul_seconds=0.5)
        return dataclasses.replace(base, **kw)

    @classmethod
    def tiny(cls, **kw):
        base = cls(mode="tiny", n_train=400, repeats=2, conv_n_train=200, conv_repeats=1, train_epochs=1,
                   peer_keys=("library", "keras_fit"), peer_timeout=300.0,
                   n_test=50, local_vi_steps=40, refine_steps=10, rss_epochs=1, rss_n_train=300,
                   notebook_modes=("quick",), notebook_timeout=300, matmul_seconds=0.05)
        return dataclasses.replace(base, **kw)


@dataclass
class Row:
    """One line of a table. ``value`` in ``unit``; ``ratio`` to the table's reference row."""

    table: str
    name: str
    value: float | None
    unit: str
    ratio: float | None = None
    extra: dict = field(default_factory=dict)
    note: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def median(xs):
    return float(statistics.median(xs)) if xs else float("nan")


def fmt(x, digits: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, str):
        return x
    if x != x:  # nan
        return "nan"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}g}"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine() -> dict:
    """Machine, versions, date and load, for the header of results.md."""
    import numpy as np
    import tensorflow as tf

    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "memory_gb": round(_mem_total() / 2**30, 1),
        "tensorflow": tf.__version__,
        "numpy": np.__version__,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "load_start": load(),
    }
    for name in ("tensorflow-probability", "keras", "torch", "pyro-ppl", "jax", "optax"):
        try:  # the version without importing it: PyTorch and JAX never load into this process
            info[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            info[name] = "not installed"
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_total() -> int:
    import psutil

    return psutil.virtual_memory().total


def tree_rss(proc) -> int:
    """Resident memory of ``proc`` (a psutil.Process) and all its descendants, in bytes."""
    import psutil

    total = 0
    try:
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run_measured(cmd, env=None, cwd=None, timeout=None, poll=0.1) -> dict:
    """Run ``cmd``; return wall seconds, peak RSS of its process tree (sampled), return code, output tail."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak = 0
    out_chunks = []
    reader = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()), daemon=True)
    reader.start()
    timed_out = False
    while proc.poll() is None:
        peak = max(peak, tree_rss(ps))
        if timeout is not None and time.perf_counter() - start > timeout:
            for child in ps.children(recursive=True):
                child.kill()
            proc.kill()
            timed_out = True
            break
        time.sleep(poll)
    proc.wait()
    reader.join(timeout=5)
    return {
        "seconds": time.perf_counter() - start,
        "peak_rss": peak,
        "returncode": proc.returncode,
        "timed_out": timed_out,
        "output": "".join(out_chunks)[-3000:],
    }


def python_env(**extra) -> dict:
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({k: str(v) for k, v in extra.items()})
    return env


PYTHON = sys.executable
