"""Bounds on log p(x), per data point, in nats.

    ELBO(x; q) = E_q[log p(x | z)] - KL(q(z) || p(z))                   <= log p(x)
    IWAE_k(x; q) = E[log (1/k) sum_i p(x, z_i) / q(z_i)],  z_i ~ q       <= log p(x)

ELBO = IWAE_1 <= IWAE_k <= IWAE_{k+1} (in expectation), and IWAE_k -> log p(x) as k grows
(Burda et al. 2016). Every function takes the variational distribution ``q`` (any family's
output), a ``decoder`` z -> p(x | z) and a ``prior`` p(z); none of them asks what produced q.
Taught in notebooks 01 (ELBO) and 03 (IWAE).
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import check_binary, check_data, check_positive_int

tfd = tfp.distributions

KL_CHOICES = ("analytic", "mc")
__all__ = [  # check_binary: re-exported
    "KL_CHOICES", "check_binary", "check_inputs", "check_kl", "elbo", "iwae_bound", "reparameterized_sample",
]


def check_kl(kl: str) -> None:
    """``kl`` names how the ELBO's KL term is computed: one of `KL_CHOICES`."""
    if kl not in KL_CHOICES:
        raise ValueError(f"kl must be one of {KL_CHOICES}, got {kl!r}")


def check_inputs(x, q: tfd.Distribution, decoder, who: str) -> None:
    """Cheap checks before any sampling: ``x: [b, D]`` matches ``q``'s batch, and the decoder's own
    `check_data` (a Bernoulli decoder: 784 binary pixels). Shape checks are static (also inside
    `tf.function`); value checks run only eagerly (in a compiled loop the data were checked before)."""
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) < 1:
        raise ValueError(f"{who} expects x of shape [batch, D], got a scalar")
    batch = tuple(q.batch_shape)
    if batch and shape[0] is not None and batch[-1] is not None and shape[0] != batch[-1]:
        raise ValueError(
            f"{who} got {shape[0]} data points but q describes {batch[-1]}; build q from the same batch, e.g. q = family(x, idx)"
        )
    check_data(decoder, x, who)


def _seed(seed):
    """A stateless seed: an int or a [2] int tensor; None -> fresh random seed."""
    if seed is None:
        return tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32)
    if isinstance(seed, (int, np.integer)):
        return tf.constant([int(seed), 0], tf.int32)
    return seed


def reparameterized_sample(q: tfd.Distribution, n: int, seed: int | tf.Tensor | None, alg: str = "philox") -> tf.Tensor:
    """``n`` draws from ``q``: ``[n, b, d]``, differentiable in q's parameters; ``seed`` as in `elbo`.

    For the Gaussian families (an Independent Normal) this is TFP's own formula, ``eps * scale + loc``
    with ``eps`` drawn by the generator ``alg`` named explicitly: with Philox the same numbers as
    ``q.sample(n, seed=seed)``, but under XLA on a CPU TensorFlow's unnamed default generator compiles
    to a slower kernel (benchmarks/results.md, loop anatomy). Any other q: ``q.sample``.
    """
    seed = _seed(seed)
    base = getattr(q, "distribution", None)
    if not (isinstance(q, tfd.Independent) and isinstance(base, tfd.Normal)):
        return q.sample(n, seed=seed)
    loc, scale = tf.convert_to_tensor(base.loc), tf.convert_to_tensor(base.scale)
    shape = tf.concat([[n], tf.broadcast_dynamic_shape(tf.shape(loc), tf.shape(scale))], axis=0)
    z = tf.random.stateless_normal(shape, seed=seed, dtype=loc.dtype, alg=alg) * scale + loc
    static = tf.TensorShape([tf.get_static_value(n)]).concatenate(tf.broadcast_static_shape(loc.shape, scale.shape))
    return tf.ensure_shape(z, static)  # the static shape q.sample keeps (a decoder may build from d)


def elbo(x, q: tfd.Distribution, decoder, prior: tfd.Distribution, kl: str = "analytic", num_samples: int = 1, seed=None) -> tf.Tensor:
    """Monte Carlo ELBO per data point (notebook 01): ``x: [b, D]`` -> ``[b]`` nats.

    kl="analytic": E_q[log p(x|z)] by ``num_samples`` reparameterized samples, KL(q || p) exactly.
    kl="mc": E_q[log p(x|z) + log p(z) - log q(z)] by the same samples (any q, any prior).
    """
    check_kl(kl)
    check_positive_int(num_samples, "num_samples")
    check_inputs(x, q, decoder, "elbo")
    z = reparameterized_sample(q, num_samples, seed)  # [S, b, d]
    log_lik = decoder(z).log_prob(x)  # [S, b]
    if kl == "analytic":
        return tf.reduce_mean(log_lik, axis=0) - q.kl_divergence(prior)
    return tf.reduce_mean(log_lik + prior.log_prob(z) - q.log_prob(z), axis=0)


def iwae_bound(x, q: tfd.Distribution, decoder, prior: tfd.Distribution, k: int = 100, chunk: int = 100, seed=None) -> tf.Tensor:
    """Importance weighted bound with ``k`` samples per point (notebooks 02 and 03): ``x: [b, D]`` -> ``[b]`` nats.

    Samples are drawn ``chunk`` at a time and combined with a running log-sum-exp, so memory is
    that of ``chunk`` samples, not ``k``.
    """
    check_positive_int(k, "k", " (the number of importance samples)")
    check_positive_int(chunk, "chunk", " (samples drawn at a time)")
    check_inputs(x, q, decoder, "iwae_bound")
    seed = _seed(seed)

    def chunk_lse(i, s):
        """log sum_j w_j over the ``s`` samples of chunk ``i``: ``[b]``."""
        z = reparameterized_sample(q, s, tf.random.experimental.stateless_fold_in(seed, i))  # [s, b, d]
        log_w = decoder(z).log_prob(x) + prior.log_prob(z) - q.log_prob(z)  # [s, b]
        return tf.reduce_logsumexp(log_w, axis=0)

    def add(total, part):
        return part if total is None else tfp.math.log_add_exp(total, part)

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
