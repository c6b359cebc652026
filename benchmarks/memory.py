"""Memory of the variational parameters vs N (local factors vs one inference network), and peak RSS of training.

Local factors hold 2 N d numbers (a loc and a scale per point and latent dimension); the inference network a
fixed 206,100 whatever N. The crossover N is found by bisection on real `LocalFactors` objects,
comparing the bytes of their variables with the inference network's. Adam keeps two more copies of whatever
it trains, so the optimizer state scales the same way and moves no crossover.
"""
from __future__ import annotations

from .common import PYTHON, REPO, Config, Row, python_env, run_measured

GRID = (100, 1_000, 10_000, 60_000, 1_000_000)


def variable_bytes(variables) -> int:
    import numpy as np

    return int(sum(int(np.prod(v.shape)) * np.dtype(getattr(v.dtype, 'name', v.dtype)).itemsize for v in variables))


def crossover(latent_dim: int = 10) -> tuple[int, int]:
    """Smallest N whose local factors take more bytes than the inference network; and the network's bytes."""
    import infernet_tutorial as it

    enc_bytes = variable_bytes(it.MLPInferenceNetwork(latent_dim).trainable_variables)
    lo, hi = 1, 1
    while variable_bytes(it.LocalFactors(hi, latent_dim).trainable_variables) <= enc_bytes:
        lo, hi = hi, hi * 2
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if variable_bytes(it.LocalFactors(mid, latent_dim).trainable_variables) > enc_bytes:
            hi = mid
        else:
            lo = mid
    return hi, enc_bytes


def run(cfg: Config) -> list[Row]:
    import infernet_tutorial as it

    rows = []
    n_cross, enc_bytes = crossover()
    network = it.MLPInferenceNetwork(10)
    for n in GRID if cfg.mode != "tiny" else GRID[:2]:
        local = it.LocalFactors(n, 10)
        local_bytes = variable_bytes(local.trainable_variables)
        rows.append(Row("memory_params", f"N = {n:,}: local factors", local_bytes / 2**20, "MiB",
                        ratio=local_bytes / enc_bytes, extra={"params": local.count_params(), "N": n}))
        del local
    rows.append(Row("memory_params", "inference network (any N)", enc_bytes / 2**20, "MiB", ratio=1.0,
                    extra={"params": network.count_params()}))
    rows.append(Row("memory_params", "crossover N (local factors > inference network)", n_cross, "points",
                    extra={"analytic": it.crossover_points(network.count_params())}))  # the formula notebook 01 and the widget use

    cmd = [PYTHON, "-m", "infernet_tutorial", "train", "--family", "mlp", "--epochs", str(cfg.rss_epochs),
           "--no-progress", "--iwae-n", "100", "--iwae-k", "50"]
    if cfg.rss_n_train:
        cmd += ["--n-train", str(cfg.rss_n_train)]
    if cfg.data_dir:
        cmd += ["--data-dir", str(cfg.data_dir)]
    result = run_measured(cmd, env=python_env(), cwd=REPO)
    note = "" if result["returncode"] == 0 else f"exit {result['returncode']}: {result['output'][-300:]}"
    rows.append(Row("memory_rss", f"training run: CLI train --family mlp, {cfg.rss_epochs} epochs"
                    + (f" on {cfg.rss_n_train:,} digits" if cfg.rss_n_train else " on all training digits"),
                    result["peak_rss"] / 2**20, "MiB peak RSS", extra={"seconds": result["seconds"]}, note=note))
    return rows
