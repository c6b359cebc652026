"""The inference gap, decomposed (Cremer, Li & Duvenaud 2018; chapter 5).

For a fixed model (prior + decoder) and held-out x, with q* the best member of a family for x and
q the inference network's output:

    log p(x) - L[q]  =  (log p(x) - L[q*])  +  (L[q*] - L[q])
    inference gap       approximation gap      amortization gap
                        (the family)           (the network)

Every piece is an existing function: log p(x) by the IWAE bound with many samples (`iwae_log_evidence`)
or exactly, by quadrature, for a 2-D latent (`quadrature_log_evidence`, on `posterior_grid.grid_posteriors`:
the grids of `posterior_on_grid`, batched over the points); the best local q by `fit` on a local
family with the decoder frozen (`best_local`, stopped by Cremer et al.'s rule `converged`); bounds
by `evaluate(kl="mc")`, which takes any q with ``sample`` and ``log_prob`` (flows included).
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .inference import History, elbo_objective, evaluate, fit
from .objectives import iwae_bound
from .posterior_grid import GridPosterior, grid_posteriors  # noqa: F401  (grid_posteriors re-exported)


def converged(elbo_per_step, window: int = 100, patience: int = 10) -> bool:
    """Cremer et al.'s stopping rule: the mean ELBO of consecutive ``window``-step blocks has not
    improved on its best for ``patience`` blocks. ``elbo_per_step: [steps]``; a partial last block is ignored."""
    values = np.asarray(elbo_per_step, float)
    blocks = len(values) // window
    if blocks <= patience:
        return False
    means = values[: blocks * window].reshape(blocks, window).mean(axis=1)
    return blocks - 1 - int(np.argmax(means)) >= patience


def best_local(
    family, x, decoder, prior, *, max_steps: int = 20_000, learning_rate: float = 1e-2, num_samples: int = 1,
    window: int = 100, patience: int = 10, seed: int = 0, progress: bool = True, desc: str = "best local q",
) -> History:
    """Optimize a local ``family`` (one parameter row per point of ``x: [n, D]``) on its ELBO, decoder frozen.

    Full-batch Adam steps on the Monte Carlo ELBO (``num_samples`` per point, any q: ``kl="mc"``)
    until `converged` (checked every ``window`` steps; the callback's True stops `fit`) or ``max_steps``.
    The points do not share parameters, so this is n independent optimizations run side by side.
    Returns `fit`'s History (``history.message`` says whether the rule stopped it).
    """
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"best_local expects x of shape [points, D], got {list(x.shape)}")
    if getattr(family, "num_points", len(x)) != len(x):
        raise ValueError(f"the local family holds {family.num_points} points but x has {len(x)}; create it with len(x) rows")
    history = fit(
        elbo_objective(family, decoder, prior, kl="mc", num_samples=num_samples), family.trainable_variables, x,
        steps=max_steps, batch_size=len(x), learning_rate=learning_rate, seed=seed, steps_per_call=window,
        progress=progress, desc=desc, callback=lambda h: converged(h.elbo, window, patience),
    )
    if history.stopped_early:
        history.message = f"converged after {history.steps} steps (no better {window}-step mean for {patience} checks)"
    elif not history.message:
        history.message = f"stopped at the cap of {max_steps} steps before the rule was met"
    return history


def mc_elbo(x, family, decoder, prior, *, idx=None, num_samples: int = 1000, seed: int = 0, budget: int = 2**22) -> np.ndarray:
    """L[q] per point with ``num_samples`` Monte Carlo samples and a Monte Carlo KL (any q, flows too):
    ``x: [n, D]`` -> ``[n]`` nats. `evaluate` with ``kl="mc"``, its batches sized so that a compiled
    call holds at most ``budget`` likelihood terms (samples x points x D)."""
    x = np.asarray(x, np.float32)
    batch = max(1, budget // (num_samples * x.shape[1]))
    return evaluate(x, family, decoder, prior, idx=idx, num_samples=num_samples, kl="mc", batch_size=batch, seed=seed)["elbo"]


def iwae_log_evidence(x, family, decoder, prior, *, idx=None, k: int = 5000, batch: int = 50, seed: int = 0) -> np.ndarray:
    """log p(x) estimated by the IWAE bound with ``k`` samples from ``family``'s q: ``[n]`` nats.

    A lower bound in expectation, tight as k grows when q covers the posterior (Burda et al. 2016).
    `iwae_bound` run eagerly, ``batch`` points and 100 samples at a time: a compiled IWAE loop (as in
    `evaluate`) is kept by TensorFlow for the life of the process, about 10 MB per call with a flow.
    """
    x = np.asarray(x, np.float32)
    idx = np.arange(len(x)) if idx is None else np.asarray(idx)
    parts = []
    for i, s in enumerate(range(0, len(x), batch)):
        xb = tf.constant(x[s : s + batch])
        parts.append(iwae_bound(xb, family(xb, tf.constant(idx[s : s + batch])), decoder, prior, k=k, seed=tf.constant([seed, i])).numpy())
    return np.concatenate(parts)


def quadrature_log_evidence(x, decoder, prior, grid: int = 241) -> np.ndarray:
    """Exact log p(x) of a 2-D latent model by quadrature (`grid_posteriors`, ``grid`` x ``grid``
    points per pass): ``x: [n, D]`` -> ``[n]`` nats."""
    return np.array([post.log_evidence for post in grid_posteriors(x, decoder, prior, n=grid)])


@dataclass
class Gaps:
    """Per-point bounds ``[n]`` (nats) and the gaps between them."""

    log_px: np.ndarray  # log p(x) (exact or IWAE-k)
    best_local: np.ndarray  # L[q*]: the best member of the family, per point
    amortized: np.ndarray  # L[q]: the inference network's output

    @property
    def approximation(self) -> np.ndarray:
        return self.log_px - self.best_local

    @property
    def amortization(self) -> np.ndarray:
        return self.best_local - self.amortized

    @property
    def inference(self) -> np.ndarray:
        return self.log_px - self.amortized

    def means(self) -> dict:
        """Averages over the points: the three bounds and the three gaps."""
        names = ("log_px", "best_local", "amortized", "approximation", "amortization", "inference")
        return {name: float(np.mean(getattr(self, name))) for name in names}


def decompose(log_px, best_local_elbo, amortized_elbo) -> Gaps:
    """`Gaps` from three per-point arrays of the same shape ``[n]`` (checked)."""
    arrays = [np.asarray(a, np.float64) for a in (log_px, best_local_elbo, amortized_elbo)]
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1 or arrays[0].ndim != 1:
        raise ValueError(f"log_px, best_local and amortized must be [n] arrays of one length, got shapes {[a.shape for a in arrays]}")
    return Gaps(*arrays)


def gap_table(columns: dict[str, dict[str, Gaps]], log_px_label: str = "log p(x)") -> str:
    """Cremer et al.'s Table 2 layout as text: one column per trained model, mean nats per row.

    ``columns = {model name: {family name: Gaps}}``; every family of a model shares log p(x), and
    every model has the same families. A family without a network for that model holds NaN in
    ``amortized`` and shows "—" in the rows that need it.
    Rows: log p(x); L[q*] per family; L[q] per family; then approximation, amortization and
    inference gaps per family.
    """
    names = list(columns)
    families = list(next(iter(columns.values())))
    rows = [(log_px_label, lambda g: g[families[0]].means()["log_px"])]
    rows += [(f"L[q*_{f}]", lambda g, f=f: g[f].means()["best_local"]) for f in families]
    rows += [(f"L[q_{f}] (network)", lambda g, f=f: g[f].means()["amortized"]) for f in families]
    for gap in ("approximation", "amortization", "inference"):
        rows += [(f"{gap} gap, {f}", lambda g, f=f, gap=gap: g[f].means()[gap]) for f in families]
    width = max(len(r[0]) for r in rows) + 2
    col = max(12, *(len(n) + 2 for n in names))
    lines = [" " * width + "".join(f"{n:>{col}}" for n in names)]
    for label, value in rows:
        cells = [value(columns[n]) for n in names]
        lines.append(f"{label:<{width}}" + "".join(f"{'—':>{col}}" if np.isnan(c) else f"{c:>{col}.2f}" for c in cells))
    return "\n".join(lines)
