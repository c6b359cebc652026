"""Importance sampling with an inference network as the proposal (Stuhlmueller et al. 2013; Le et al. 2017).

For a data point x and a proposal q(z | x), draw z_1..z_k ~ q and weigh w_i = p(x, z_i) / q(z_i | x):

    log p(x)       ~  log (1/k) sum_i w_i                  (unbiased in p(x); its log is the IWAE_k bound)
    E_p(z|x)[f(z)] ~  sum_i w_i f(z_i) / sum_i w_i        (self-normalized)
    ESS            =  (sum_i w_i)^2 / sum_i w_i^2          (between 1 and k; k when all weights are equal)

The ESS says how many independent posterior draws the k weighted ones are worth. A proposal that is
too narrow somewhere the posterior has mass (mode-seeking, as the ELBO's q) gets rare huge weights and
a small ESS; a wider, mass-covering one (the sleep phase's q) does not.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

from dataclasses import dataclass

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import as_points, check_data, check_positive_int
from .loop import use_xla

tfd = tfp.distributions


@dataclass
class ImportanceSample:
    """What `importance_sample` returns, per data point (numpy, nats for logs; notebook 06)."""

    log_evidence: np.ndarray  # [N]   log (1/k) sum_i w_i
    ess: np.ndarray  # [N]            effective sample size, in 1..k
    posterior_mean: np.ndarray  # [N, d]  self-normalized estimate of E[z | x]
    posterior_var: np.ndarray  # [N, d]   self-normalized estimate of Var[z_j | x]
    k: int

    @property
    def ess_fraction(self) -> np.ndarray:
        """ESS / k: ``[N]`` in (0, 1]; 1 means the proposal is the posterior."""
        return self.ess / self.k


def effective_sample_size(log_w: tf.Tensor, axis: int = 0) -> tf.Tensor:
    """(sum w)^2 / sum w^2 from log-weights, computed in log space (no overflow): ``axis`` reduced (notebook 06)."""
    return tf.exp(2.0 * tf.reduce_logsumexp(log_w, axis=axis) - tf.reduce_logsumexp(2.0 * log_w, axis=axis))


def log_weights(x, q: tfd.Distribution, model, prior: tfd.Distribution, k: int, chunk: int, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """``k`` draws z ~ q and their log-weights log p(x, z) - log q(z): ``z: [k, b, d]``, ``log_w: [k, b]``.

    Drawn ``chunk`` at a time in a sequential loop, so the model's largest intermediate (e.g. decoder
    logits) holds ``chunk`` samples, not ``k`` (a graph would otherwise run independent chunks at once).
    """
    seed = tf.convert_to_tensor(seed, tf.int32)

    def draw(i, n):
        z = q.sample(n, seed=tf.random.experimental.stateless_fold_in(seed, i))
        return z, model(z).log_prob(x) + prior.log_prob(z) - q.log_prob(z)

    full, rest = divmod(int(k), int(chunk))
    zs, ws = tf.TensorArray(tf.float32, size=full), tf.TensorArray(tf.float32, size=full)

    def body(i, zs, ws):
        z, w = draw(i, chunk)
        return i + 1, zs.write(i, z), ws.write(i, w)

    _, zs, ws = tf.while_loop(lambda i, *_: i < full, body, (tf.constant(0), zs, ws), parallel_iterations=1)
    z_all, w_all = zs.concat(), ws.concat()  # [full * chunk, b, d], [full * chunk, b]
    if rest:
        z, w = draw(full, rest)
        z_all, w_all = tf.concat([z_all, z], 0), tf.concat([w_all, w], 0)
    return z_all, w_all


def importance_sample(x, proposal, model, prior: tfd.Distribution, *, k: int = 1000, batch_size: int = 100,
                      chunk: int = 100, seed: int = 0) -> ImportanceSample:
    """Importance sampling for every point of ``x: [N, D]`` with ``proposal(x, idx) -> q(z | x)`` (a family; notebook 06).

    ``model``: z -> p(x | z) (a decoder or `LinearGaussian`). Returns log p(x) estimates, the ESS and
    the self-normalized posterior mean and variance of z (see the module docstring).
    """
    k = check_positive_int(k, "k", " (the number of importance samples)")
    chunk = check_positive_int(chunk, "chunk", " (samples drawn at a time)")
    batch_size = check_positive_int(batch_size, "batch_size")
    x = as_points(x, "importance_sample")
    check_data(model, x, "importance_sample")

    proposal = tf.autograph.experimental.do_not_convert(proposal)  # plain maths: no autograph rewrite of lambdas

    @tf.function(jit_compile=use_xla())
    def one_batch(xb, ib, s):
        z, log_w = log_weights(xb, proposal(xb, ib), model, prior, int(k), int(chunk), s)
        w = tf.nn.softmax(log_w, axis=0)[..., None]  # [k, b, 1]
        mean = tf.reduce_sum(w * z, axis=0)
        var = tf.reduce_sum(w * (z - mean) ** 2, axis=0)
        log_px = tf.reduce_logsumexp(log_w, axis=0) - tf.math.log(float(k))
        return log_px, effective_sample_size(log_w), mean, var

    parts = []
    for b, start in enumerate(range(0, len(x), batch_size)):
        ib = np.arange(start, min(start + batch_size, len(x)))
        parts.append([t.numpy() for t in one_batch(tf.constant(x[ib]), tf.constant(ib), tf.constant([seed, b]))])
    log_px, ess, mean, var = (np.concatenate(p) for p in zip(*parts))
    return ImportanceSample(log_px, ess, mean, var, int(k))


def gaussian_ess_fraction(target_cov, proposal_cov) -> float:
    """Limit of ESS / k (k -> infinity) for target N(m, P) and proposal N(m, Q) with the same mean (notebook 06).

    ESS / k -> (E_q w)^2 / E_q w^2 = 1 / E_q[(p/q)^2], and for Gaussians
    E_q[(p/q)^2] = |Q|^(1/2) / (|P| |2 P^{-1} - Q^{-1}|^(1/2)) when 2 P^{-1} - Q^{-1} is positive
    definite. Otherwise the weights have infinite variance and the limit is 0: the proposal is too
    narrow in some direction (a q narrower than the posterior by a factor sqrt(2) or more there).
    """
    P, Q = np.asarray(target_cov, np.float64), np.asarray(proposal_cov, np.float64)
    if P.shape != Q.shape or P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise ValueError(f"target_cov and proposal_cov must be square matrices of one shape, got {P.shape} and {Q.shape}")
    M = 2 * np.linalg.inv(P) - np.linalg.inv(Q)
    if np.linalg.eigvalsh(M).min() <= 0:
        return 0.0
    log_second_moment = 0.5 * np.linalg.slogdet(Q)[1] - np.linalg.slogdet(P)[1] - 0.5 * np.linalg.slogdet(M)[1]
    return float(np.exp(-log_second_moment))
