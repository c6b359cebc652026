"""Local VI, amortized VI and test-time inference: the same loop (`loop.fit`), different variables.

    fit(objective, variables, data, ...) maximizes mean objective(x_batch, idx_batch, seed)

    local VI        LocalFactors(N, d).trainable_variables (+ decoder's, to learn the model too)
    amortized VI    network.trainable_variables + decoder.trainable_variables
    test time       fresh LocalFactors for the new points (decoder frozen), started at the prior
                    (`infer_local`) or at an inference network's output (semi-amortized, `infer_local(init=network)`)

`train`, `infer_local` and `evaluate` are those three uses; the loop itself lives in `loop.py`.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import as_points, check_data, check_finite, check_positive_int
from .families import Family, LocalFactors, check_family_indices
from .loop import DivergenceWarning, History, Objective, fit, use_xla  # noqa: F401  (re-exported)
from .memory import return_free_memory
from .objectives import check_kl, elbo, iwae_bound

tfd = tfp.distributions


def elbo_objective(family: Family, decoder, prior: tfd.Distribution, kl: str = "analytic", num_samples: int = 1) -> Objective:
    """objective(x, idx, seed) = ELBO of every point of the batch under ``family(x, idx)``: ``[batch]`` (notebook 06)."""
    check_kl(kl)
    check_positive_int(num_samples, "num_samples")

    def objective(x, idx, seed):
        return elbo(x, family(x, idx), decoder, prior, kl=kl, num_samples=num_samples, seed=seed)

    return objective


def train(
    family: Family,
    decoder,
    prior: tfd.Distribution,
    x,
    *,
    epochs: int,
    batch_size: int = 100,
    learning_rate: float = 1e-3,
    seed: int = 0,
    train_decoder: bool = True,
    binarize: bool = True,
    kl: str = "analytic",
    **fit_kwargs,
) -> History:
    """Fit a family (local factors or an inference network) and, unless ``train_decoder=False``, the decoder
    (notebooks 01 and 02).

    x: ``[N, 784] float32``; grey levels with ``binarize=True`` (dynamic binarization), else {0, 1}.
    """
    check_data(decoder, x, "train", binary=False)  # the shape the decoder explains
    check_finite(x)
    if not binarize:
        check_data(decoder, x, "train")  # and its values: binary pixels for a Bernoulli decoder
    check_family_indices(family, np.arange(len(x)))  # local factors: one row per data point
    variables = family.trainable_variables + (decoder.trainable_variables if train_decoder else [])
    return fit(
        elbo_objective(family, decoder, prior, kl=kl),
        variables,
        x,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        binarize=binarize,
        **fit_kwargs,
    )


def infer_local(
    x_new,
    decoder,
    prior: tfd.Distribution,
    *,
    steps: int = 1000,
    init=None,
    learning_rate: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
    **fit_kwargs,
) -> tuple[LocalFactors, History]:
    """Test-time inference for new points with the decoder frozen (notebooks 01 and 02).

    x_new: ``[M, D]`` binary. Creates fresh `LocalFactors(M, d)`, started at the prior
    (``init=None``: local VI from scratch) or at ``init(x_new)`` (an inference network: semi-amortized
    refinement), and takes ``steps`` full-batch Adam steps on their ELBO.
    """
    x_new = as_points(x_new, "infer_local", "x_new")
    check_data(decoder, x_new, "infer_local")
    d = int(prior.event_shape[0])
    if init is None:
        factors = LocalFactors(len(x_new), d)
    else:
        factors = LocalFactors.from_distribution(init(tf.constant(x_new)))
    history = fit(
        elbo_objective(factors, decoder, prior),
        factors.trainable_variables,
        x_new,
        steps=steps,
        batch_size=len(x_new),
        learning_rate=learning_rate,
        seed=seed,
        progress=progress,
        desc=desc or ("refine network output" if init is not None else "local VI (new points)"),
        **fit_kwargs,
    )
    return factors, history


def evaluate(
    x,
    family: Family,
    decoder,
    prior: tfd.Distribution,
    *,
    idx=None,
    num_samples: int = 1,
    iwae_k: int = 0,
    batch_size: int | None = None,
    seed: int = 0,
    kl: str = "analytic",
) -> dict:
    """Per-point ELBO (and IWAE bound when ``iwae_k > 0``) over a whole data set, batched (notebooks 02 and 03).

    x: ``[N, D]`` binary for Bernoulli decoders. Returns ``{"elbo": [N], "iwae": [N] or None,
    "mean_elbo": float, "mean_iwae": float or None}`` in nats. ``batch_size``: points per compiled
    call; by default 500, or 100 with an IWAE bound, whose samples (100 at a time) multiply the memory.
    ``kl="mc"``: Monte Carlo KL from the same ``num_samples`` samples, for families without an analytic
    KL to the prior (flows, full-covariance Gaussians).
    """
    batch_size = check_positive_int(batch_size or (100 if iwae_k else 500), "batch_size")
    check_kl(kl)
    x = as_points(x, "evaluate")
    check_data(decoder, x, "evaluate")
    n = len(x)
    idx = np.arange(n) if idx is None else np.asarray(idx)
    if len(idx) != n:
        raise ValueError(f"evaluate got {n} data points but {len(idx)} indices; they must match")
    check_family_indices(family, idx)

    @tf.function(jit_compile=use_xla())
    def batch_bounds(xb, ib, s):
        q = family(xb, ib)
        e = elbo(xb, q, decoder, prior, kl=kl, num_samples=num_samples, seed=s)
        w = iwae_bound(xb, q, decoder, prior, k=iwae_k, seed=tf.random.experimental.stateless_fold_in(s, 1)) if iwae_k else e
        return e, w

    elbos, iwaes = [], []
    for b, start in enumerate(range(0, n, batch_size)):
        e, w = batch_bounds(tf.constant(x[start : start + batch_size]), tf.constant(idx[start : start + batch_size]), tf.constant([seed, b]))
        elbos.append(e.numpy())
        iwaes.append(w.numpy())
    e = np.concatenate(elbos)
    w = np.concatenate(iwaes) if iwae_k else None
    return_free_memory()  # an IWAE bound's freed samples, back to the system
    return {"elbo": e, "iwae": w, "mean_elbo": float(e.mean()), "mean_iwae": None if w is None else float(w.mean())}
