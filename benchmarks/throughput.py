"""Training throughput (images/s): the library against its peers, each in its own process, rounds interleaved.

Every peer is a script in benchmarks/peers/ (its docstring cites the documentation behind its
settings) that trains the same model on the same digits (written once by this driver to a .npy
file): reference model 784-256-(10+10) -> 10-256-784 Bernoulli, or the conv model; batch 100,
Adam(1e-3), dynamic binarization, analytic KL, one sample. The driver starts them all, waits until
each has loaded, then runs rounds: every peer runs one epoch in turn (A B C D, A B C D, ...), alone
on the machine while it runs, so a change of load hits every peer alike. The first ``warmup_epochs``
of each peer (compilation included) are dropped; the table gives the median of the timed epochs.
A peer whose package is missing prints so, and its row says "not installed".
"""
from __future__ import annotations

import json
import queue
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .common import MODEL_FLOP_PER_IMAGE, PYTHON, REPO, Config, Row, median, python_env

BATCH = 100
INSTALL = "pip install -r benchmarks/requirements-peers.txt"


def reference_flops(latent: int = 10, hidden: int = 256, pixels: int = 784) -> float:
    """FLOP per image of the reference MLP, forward + backward (backward ~ 2x forward matmuls)."""
    macs = pixels * hidden + hidden * 2 * latent + latent * hidden + hidden * pixels
    return 3 * 2 * macs


@dataclass(frozen=True)
class Peer:
    """A row of the race: ``python -m benchmarks.peers.<script> [flags]``."""

    script: str
    label: str
    flags: tuple = ()

    @property
    def key(self) -> str:
        """``script`` plus its flags, e.g. "keras_fit --defaults" (what ``Config.peer_keys`` lists)."""
        return " ".join((self.script, *self.flags))


LIBRARY = Peer("library", "infernet_tutorial.train in a script or the CLI (one compiled epoch per call)")
LIBRARY_JUPYTER = Peer("library", "infernet_tutorial.train in a Jupyter kernel, its first XLA-eligible run (the notebooks' path)",
                       ("--jupyter",))
LIBRARY_JUPYTER_LATER = Peer("library", "infernet_tutorial.train in a Jupyter kernel, a later run (XLA budget spent)",
                             ("--jupyter", "--later"))
MLP_PEERS = (
    LIBRARY,
    LIBRARY_JUPYTER,
    LIBRARY_JUPYTER_LATER,
    Peer("jax_optax", "JAX + optax, a whole epoch in one jax.jit-compiled lax.scan"),
    Peer("keras_fit", "Keras 3 fit, jit_compile=True, steps_per_execution = one epoch"),
    Peer("keras_fit", "Keras 3 fit, defaults (no XLA on CPU, one step per call)", ("--defaults",)),
    Peer("torch_plain", "PyTorch, plain loop, default threads"),
    Peer("pyro_svi", "Pyro SVI, JitTraceMeanField_ELBO"),
    Peer("pyro_svi", "Pyro SVI, TraceMeanField_ELBO (no JIT)", ("--defaults",)),
    Peer("tf_xla_bare", "bare TF + XLA epoch loop (no library, no TFP, hand-written Adam)"),
)
# the conv race: the library (in a kernel, too, a conv run keeps TensorFlow's kernels), Keras fit both ways, PyTorch
CONV_PEERS = tuple(p for p in MLP_PEERS if p is LIBRARY or p.script in ("keras_fit", "torch_plain"))


class PeerError(RuntimeError):
    """A peer process exited, printed something unexpected, or took too long."""


class PeerProcess:
    """A running peer: ``status`` is "ready" or "missing" after start; ``epoch()`` runs one epoch."""

    def __init__(self, peer: Peer, data: Path, kind: str, epochs: int, timeout: float, log: Path):
        self.peer, self.timeout, self.log = peer, timeout, log
        cmd = [PYTHON, "-m", f"benchmarks.peers.{peer.script}", "--data", str(data), "--kind", kind,
               "--epochs", str(epochs), "--serve", *peer.flags]
        self.stderr = log.open("w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=python_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True, bufsize=1)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self._message()
        self.status, self.settings = ("missing", first["missing"]) if "missing" in first else ("ready", first["settings"])

    def _read(self) -> None:
        for line in self.proc.stdout:
            if not line.startswith("{"):
                continue
            try:
                message = json.loads(line)
            except ValueError:  # a library printed something that only looks like JSON
                continue
            self.lines.put(message)
        self.lines.put(None)  # end of output

    def _message(self) -> dict:
        try:
            msg = self.lines.get(timeout=self.timeout)
        except queue.Empty:
            raise PeerError(f"no answer within {self.timeout:.0f} s") from None
        if msg is None:
            tail = self.log.read_text()[-400:].strip().replace("\n", " ")
            raise PeerError(f"exited with code {self.proc.wait()}: {tail}")
        return msg

    def epoch(self) -> dict:
        self.proc.stdin.write("epoch\n")
        self.proc.stdin.flush()
        return self._message()

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self.stderr.close()


def race(steps: dict[str, Callable[[], dict]], rounds: int) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Call every peer's ``step`` once per round, in the same order each round (A B C, A B C, ...).

    Returns each peer's records, in round order, and the error of each peer that failed (a failed
    peer sits out the later rounds; the others go on).
    """
    records = {name: [] for name in steps}
    errors: dict[str, str] = {}
    for _ in range(rounds):
        for name, step in steps.items():
            if name in errors:
                continue
            try:
                records[name].append(step())
            except PeerError as e:
                errors[name] = str(e)
    return records, errors


def summarize(records: list[dict], warmup: int) -> dict | None:
    """Median images/s and images per CPU-second over the epochs after the first ``warmup``; None if none.

    ``first_epoch_extra_s``: how much longer the first epoch took than the median timed one, which is
    what compilation (tracing, XLA) and first-call set-up cost the peer.
    """
    timed = records[warmup:]
    if not timed:
        return None
    return {
        "first_epoch_extra_s": records[0]["seconds"] - median([r["seconds"] for r in timed]),
        "img_per_s": median([r["images"] / r["seconds"] for r in timed]),
        "img_per_cpu_second": median([r["images"] / r["cpu_seconds"] for r in timed]),
        "runs": [round(r["images"] / r["seconds"], 1) for r in timed],
        "elbo": timed[-1]["elbo"],
    }


def start_peers(peers, data: Path, kind: str, epochs: int, timeout: float, logs: Path):
    """Start each peer in turn (waiting until it has loaded); returns {label: PeerProcess or error text}."""
    started = {}
    for i, peer in enumerate(peers):
        try:
            started[peer.label] = PeerProcess(peer, data, kind, epochs, timeout, logs / f"{kind}_{i}_{peer.script}.log")
        except PeerError as e:
            started[peer.label] = f"failed to start: {e}"
    return started


def measure(x: np.ndarray, kind: str, cfg: Config) -> list[Row]:
    """Race the peers of ``kind`` on the digits ``x``; one Row per peer (ratio = row / library)."""
    table = f"throughput_{kind}"
    peers = MLP_PEERS if kind == "mlp" else CONV_PEERS
    chosen = [p for p in peers if cfg.peer_keys is None or p.key in cfg.peer_keys]
    skipped = [p for p in peers if p not in chosen]
    epochs = cfg.warmup_epochs + (cfg.repeats if kind == "mlp" else cfg.conv_repeats)
    with tempfile.TemporaryDirectory(prefix="infernet-race-") as tmp:
        data = Path(tmp) / "x.npy"
        np.save(data, x)
        started = start_peers(chosen, data, kind, epochs, cfg.peer_timeout, Path(tmp))
        running = {k: p for k, p in started.items() if isinstance(p, PeerProcess) and p.status == "ready"}
        try:
            records, errors = race({k: p.epoch for k, p in running.items()}, epochs)
        finally:
            for p in started.values():
                if isinstance(p, PeerProcess):
                    p.close()
    lib = summarize(records.get(LIBRARY.label, []), cfg.warmup_epochs) if LIBRARY.label not in errors else None
    rows = []
    for peer in peers:
        rows.append(_row(table, peer, started.get(peer.label), records.get(peer.label, []), errors.get(peer.label),
                         lib, cfg, len(x), skipped=peer in skipped))
    return rows


def _row(table, peer, proc, records, error, lib, cfg, images, skipped) -> Row:
    if skipped:
        return Row(table, peer.label, None, "img/s", note=f"skipped ({cfg.mode} mode)")
    if isinstance(proc, str) or error:
        return Row(table, peer.label, None, "img/s", note=f"FAILED: {proc if isinstance(proc, str) else error}"[:300])
    if proc.status == "missing":
        return Row(table, peer.label, None, "img/s", note=f"not installed: {proc.settings} ({INSTALL})")
    s = summarize(records, cfg.warmup_epochs)
    ratio = s["img_per_s"] / lib["img_per_s"] if lib else None
    return Row(table, peer.label, s["img_per_s"], "img/s", ratio=ratio, note=proc.settings,
               extra={"img_per_cpu_second": s["img_per_cpu_second"], "runs": s["runs"], "elbo": s["elbo"],
                      "first_epoch_extra_s": s["first_epoch_extra_s"],
                      "images": images, "batch": BATCH, "script": f"benchmarks/peers/{peer.script}.py"})


# ------------------------------------------------------------------------------------ roofline
def matmul_gflops(seconds: float = 2.0, size: int = 1024) -> dict:
    """float32 matmul GFLOP/s of this machine, measured now with TensorFlow and with NumPy (best of runs:
    a roofline is the most the machine does, and other jobs only ever slow a run down)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    flop = 2.0 * size**3
    out = {}
    ta, tb = tf.constant(a), tf.constant(b)
    for name, mm in (("tensorflow", lambda: tf.linalg.matmul(ta, tb).numpy()), ("numpy", lambda: a @ b)):
        mm()  # warm-up
        rates, t_end = [], time.perf_counter() + seconds / 2
        while time.perf_counter() < t_end or len(rates) < 3:
            t0 = time.perf_counter()
            mm()
            rates.append(flop / (time.perf_counter() - t0) / 1e9)
        out[name] = max(rates)
    return out


def roofline_row(gflops: dict, library_rate: float | None) -> Row:
    """The reference model's images/s if every FLOP ran at the measured matmul rate; the library's fraction."""
    peak, flop = max(gflops.values()), reference_flops()
    roof = peak * 1e9 / flop
    return Row("throughput_mlp", f"roofline: float32 matmul {peak:.1f} GFLOP/s / {flop / 1e6:.2f} MFLOP per image",
               roof, "img/s", ratio=roof / library_rate if library_rate else None,
               extra={"gflops": gflops, "flop_per_image": flop,
                      "library_fraction": library_rate / roof if library_rate else None})


def run(cfg: Config, x=None) -> list[Row]:
    import infernet_tutorial as it

    if x is None:
        x = it.load_mnist("train", n=cfg.n_train, data_dir=cfg.data_dir).images
    gflops = matmul_gflops(cfg.matmul_seconds)  # before any peer starts: the machine is this process's
    mlp = measure(np.ascontiguousarray(x, np.float32), "mlp", cfg)
    rows = mlp + [roofline_row(gflops, mlp[0].value)]
    conv_x = np.ascontiguousarray(x[: cfg.conv_n_train or len(x)], np.float32)
    return rows + measure(conv_x, "conv", cfg)


assert abs(reference_flops() - MODEL_FLOP_PER_IMAGE) / MODEL_FLOP_PER_IMAGE < 0.01
