"""Bounds on log p(x), per data point, in nats.

    ELBO(x; q) = E_q[log p(x | z)] - KL(q(z) || p(z))                   <= log p(x)
    IWAE_k(x; q) = E[log (1/k) sum_i p(x, z_i) / q(z_i)],  z_i ~ q       <= log p(x)

ELBO = IWAE_1 <= IWAE_k <= IWAE_{k+1} (in expectation), and IWAE_k -> log p(x) as k grows
(Burda et al. 2016). Every function takes the variational distribution ``q`` (any family's
output), a ``decoder`` z -> p(x | z) and a ``prior`` p(z); none of them asks what produced q.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

KL_CHOICES = ("analytic", "mc")


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
    seed = _seed(seed)
    total = None
    done = 0
    i = 0
    while done < k:
        s = min(chunk, k - done)
        z = q.sample(s, seed=tf.random.experimental.stateless_fold_in(seed, i))  # [s, b, d]
        log_w = decoder(z).log_prob(x) + prior.log_prob(z) - q.log_prob(z)  # [s, b]
        part = tf.reduce_logsumexp(log_w, axis=0)
        total = part if total is None else tf.reduce_logsumexp(tf.stack([total, part]), axis=0)
        done += s
        i += 1
    return total - tf.math.log(tf.cast(k, tf.float32))
