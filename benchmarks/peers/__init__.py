"""One script per peer of the throughput race; the driver (benchmarks/throughput.py) runs each in its own process.

Every peer trains the same model on the same data: the 784-256-(10+10) Gaussian inference network
(softplus scale + 1e-5), the 10-256-784 Bernoulli decoder (or the conv pair), batch 100, Adam(1e-3),
analytic KL, one reparameterized sample, fresh Bernoulli pixels for every batch (dynamic
binarization), the last partial batch of an epoch dropped.

Protocol, one JSON object per line on stdout (anything else a peer's libraries print is ignored):
  peer:    {"ready": true, "peer": NAME, "settings": "..."}  data loaded, model built (nothing compiled yet)
           {"missing": "jax, optax"}                          a package is not installed (then exit 0)
  driver:  "epoch"                                            (a line on stdin) run one epoch now
  peer:    {"epoch": i, "images": n, "seconds": s, "cpu_seconds": c, "elbo": e}
With ``--serve`` the peer waits for an "epoch" line before each of its ``--epochs`` epochs; without it
it runs them back to back, e.g. ``python -m benchmarks.peers.jax_optax --data x.npy --epochs 3``.
``--data``: a ``.npy`` file of float32 grey levels ``[N, 784]`` (the driver writes the shared training digits).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import NoReturn

import numpy as np

BATCH = 100
LEARNING_RATE = 1e-3
LATENT = 10
HIDDEN = 256
PIXELS = 784
MIN_SCALE = 1e-5  # added to the softplus scale, as infernet_tutorial.families does


def parse_args(argv=None, description: str = "") -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data", required=True, help=".npy file, float32 grey levels [N, 784]")
    p.add_argument("--kind", choices=("mlp", "conv"), default="mlp")
    p.add_argument("--epochs", type=int, default=3, help="epochs in all (the driver's rounds)")
    p.add_argument("--serve", action="store_true", help="wait for an 'epoch' line on stdin before each epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--defaults", action="store_true", help="the framework's default settings (where a peer has both)")
    p.add_argument("--jupyter", action="store_true", help="library only: train as inside a Jupyter kernel (the notebooks' path)")
    p.add_argument("--later", action="store_true",
                   help="library only, with --jupyter: a later run of the kernel, once its XLA budget is spent")
    return p.parse_args(argv)


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def missing(packages: str) -> NoReturn:
    """Say which package is not installed, and stop (exit 0: a missing peer is not an error)."""
    emit(missing=packages)
    sys.exit(0)


def load(args) -> np.ndarray:
    """The digits, ``[n, 784]`` float32, cut to whole batches: ``n = (N // 100) * 100``."""
    x = np.load(args.data)
    if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != PIXELS:
        raise ValueError(f"{args.data}: expected float32 [N, {PIXELS}], got {x.dtype} {x.shape}")
    return np.ascontiguousarray(x[: (len(x) // BATCH) * BATCH])


def epoch_order(n: int, rng: np.random.Generator) -> np.ndarray:
    """A fresh shuffle of ``n`` rows as ``[n // 100, 100]`` batch indices."""
    return rng.permutation(n).reshape(n // BATCH, BATCH)


class Channel:
    """The peer's side of the protocol: ``ready()``, then ``while next_epoch(): ... report(...)``."""

    def __init__(self, args):
        self.epochs, self.serve, self.done = args.epochs, args.serve, 0

    def ready(self, peer: str, settings: str) -> None:
        emit(ready=True, peer=peer, settings=settings)

    def next_epoch(self) -> bool:
        if self.done >= self.epochs:
            return False
        return not self.serve or sys.stdin.readline().strip() == "epoch"

    def report(self, images: int, seconds: float, cpu_seconds: float, elbo: float) -> None:
        emit(epoch=self.done, images=int(images), seconds=seconds, cpu_seconds=cpu_seconds, elbo=float(elbo))
        self.done += 1


class Stopwatch:
    """Wall and CPU seconds (all threads of this process) since ``start()``."""

    def start(self) -> "Stopwatch":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def read(self) -> tuple[float, float]:
        return time.perf_counter() - self.wall, time.process_time() - self.cpu
