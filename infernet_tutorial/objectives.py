"""Bounds on log p(x), per data point, in nats.

    ELBO(x; q) = E_q[log p(x | z)] - KL(q(z) || p(z))                   <= log p(x)
    IWAE_k(x; q) = E[log (1/k) sum_i p(x, z_i) / q(z_i)],  z_i ~ q       <= log p(x)

ELBO = IWAE_1 <= IWAE_k <= IWAE_{k+1} (in expectation), and IWAE_k -> log p(x) as k grows
(Burda et al. 2016). Every function takes the variational distribution ``q`` (any family's
output), a ``decoder`` z -> p(x | z) and a ``prior`` p(z); none of them asks what produced q.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .data import NUM_PIXELS

tfd = tfp.distributions

KL_CHOICES = ("analytic", "mc")


def check_inputs(x, q: tfd.Distribution, decoder, who: str) -> None:
    """Cheap checks before any sampling: ``x: [b, D]`` matches ``q``'s batch and is binary for a
    Bernoulli decoder. Shape checks are static (also inside `tf.function`); the value check runs
    only eagerly (inside a compiled loop the data were checked before training started)."""
    from .models import BernoulliDecoder  # local import: models does not depend on objectives

    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) < 1:
        raise ValueError(f"{who} expects x of shape [batch, D], got a scalar")
    batch = tuple(q.batch_shape)
    if batch and shape[0] is not None and batch[-1] is not None and shape[0] != batch[-1]:
        raise ValueError(
            f"{who} got {shape[0]} data points but q describes {batch[-1]}; build q from the same batch, e.g. q = family(x, idx)"
        )
    if isinstance(decoder, BernoulliDecoder):
        if len(shape) >= 1 and shape[-1] is not None and shape[-1] != NUM_PIXELS:
            hint = " (flatten 28x28 images with x.reshape(-1, 784))" if len(shape) >= 2 and shape[-2:] == (28, 28) else ""
            raise ValueError(f"{who} expects x of shape [batch, {NUM_PIXELS}] for a Bernoulli decoder, got {list(shape)}{hint}")
        if tf.executing_eagerly():
            check_binary(x, who=f"{who} with a Bernoulli decoder")


def check_binary(x, who: str = "A Bernoulli likelihood") -> None:
    """Raise ValueError unless every value of ``x`` is 0 or 1 (eager values only)."""
    arr = np.asarray(x)
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        example = arr[bad].flat[0]
        where = "outside [0, 1]" if ((arr < 0) | (arr > 1)).any() else "grey levels"
        raise ValueError(
            f"{who} needs binary pixels (0 or 1), but {int(bad.sum())} values are not ({where}, e.g. {example:g}). "
            "Use load_mnist(binarize='static' or 'sample'), or binarize=True in fit/train for grey levels in [0, 1]."
        )


def _seed(seed):
    """A stateless seed: an int or a [2] int tensor; None -> fresh random seed."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    if isinstance(seed, (int, np.integer)):
        return tf.constant([int(seed), 0], tf.int32)
    return seed


def elbo(x, q: tfd.Distribution, decoder, prior: tfd.Distribution, kl: str = "analytic", num_samples: int = 1, seed=None) -> tf.Tensor:
    """Monte Carlo ELBO per data point: ``x: [b, D]`` -> ``[b]`` nats.

    kl="analytic": E_q[log p(x|z)] by ``num_samples`` reparameterized samples, KL(q || p) exactly.
    kl="mc": E_q[log p(x|z) + log p(z) - log q(z)] by the same samples (any q, any prior).
    """
    if kl not in KL_CHOICES:
        raise ValueError(f"kl must be one of {KL_CHOICES}, got {kl!r}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    check_inputs(x, q, decoder, "elbo")
    z = q.sample(num_samples, seed=_seed(seed))  # [S, b, d]
    log_lik = decoder(z).log_prob(x)  # [S, b]
    if kl == "analytic":
        return tf.reduce_mean(log_lik, axis=0) - q.kl_divergence(prior)
    return tf.reduce_mean(log_lik + prior.log_prob(z) - q.log_prob(z), axis=0)


def iwae_bound(x, q: tfd.Distribution, decoder, prior: tfd.Distribution, k: int = 100, chunk: int = 100, seed=None) -> tf.Tensor:
    """Importance weighted bound with ``k`` samples per point: ``x: [b, D]`` -> ``[b]`` nats.

    Samples are drawn ``chunk`` at a time and combined with a running log-sum-exp, so memory is
    that of ``chunk`` samples (k=1000 on a batch of 100 digits needs ~30 MB, not ~300 MB).
    """
    if k < 1 or chunk < 1:
        raise ValueError(f"k and chunk must be >= 1, got k={k}, chunk={chunk}")
    check_inputs(x, q, decoder, "iwae_bound")
    seed = _seed(seed)

    def chunk_lse(i, s):
        """log sum_j w_j over the ``s`` samples of chunk ``i``: ``[b]``."""
        z = q.sample(s, seed=tf.random.experimental.stateless_fold_in(seed, i))  # [s, b, d]
        log_w = decoder(z).log_prob(x) + prior.log_prob(z) - q.log_prob(z)  # [s, b]
        return tf.reduce_logsumexp(log_w, axis=0)

    def add(total, part):
        return part if total is None else tf.reduce_logsumexp(tf.stack([total, part]), axis=0)

    full, rest = divmod(int(k), int(chunk))
    if tf.executing_eagerly() or full <= 2:
        total = None
        for i in range(full):
            total = add(total, chunk_lse(i, chunk))
    else:  # in a graph: one loop body, not `full` copies of the decoder (smaller graphs, faster compiles)
        total = tf.while_loop(
            lambda i, _: i < full,
            lambda i, t: (i + 1, add(t, chunk_lse(i, chunk))),
            (tf.constant(1), chunk_lse(0, chunk)),
        )[1]
    if rest:
        total = add(total, chunk_lse(full, rest))
    return total - tf.math.log(tf.cast(k, tf.float32))
