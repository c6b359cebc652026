"""The exact posterior of a model with a 2-D latent variable, on a grid (notebook 02).

In two dimensions p(z | x) = p(x, z) / p(x) can be computed without any approximation family: evaluate
the log joint log p(z) + log p(x | z) on a fine grid of z and normalize numerically. The normalizer is
log p(x) itself, by quadrature: an exact yardstick for every bound (ELBO, IWAE) of the same model.

    post = posterior_on_grid(x, decoder, prior)     x: [D] one data point
    post.log_evidence                              log p(x) in nats
    post.density                                   p(z | x) on the grid, [n, n] (rows: z2, columns: z1)
    post.mean(), post.cov()                        posterior moments by quadrature

The grid is found in two passes: a coarse one over a wide box locates where the posterior has its
mass, a fine one covers that region (so a narrow posterior is resolved and none of its mass is cut).
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

from dataclasses import dataclass

import numpy as np
import tensorflow as tf


@dataclass
class GridPosterior:
    """p(x, z) of one data point on a regular grid of z = (z1[j], z2[i]) (notebooks 02 and 05)."""

    z1: np.ndarray  # [n] grid points of the first latent coordinate
    z2: np.ndarray  # [n] grid points of the second
    log_joint: np.ndarray  # [n, n] log p(x, z), float64; row i is z2[i], column j is z1[j]

    @property
    def cell_area(self) -> float:
        return float((self.z1[1] - self.z1[0]) * (self.z2[1] - self.z2[0]))

    @property
    def log_evidence(self) -> float:
        """log p(x) = log of the sum of p(x, z) over the cells times the cell area (nats)."""
        return float(tf.reduce_logsumexp(self.log_joint)) + float(np.log(self.cell_area))

    @property
    def density(self) -> np.ndarray:
        """p(z | x) at the grid points: ``[n, n]``, integrates to 1 over the box."""
        return np.exp(self.log_joint - self.log_evidence)

    def weights(self) -> np.ndarray:
        """Posterior probability of each cell, ``[n, n]``, summing to 1."""
        return self.density * self.cell_area

    def mean(self) -> np.ndarray:
        """E[z | x]: ``[2]``."""
        w = self.weights()
        return np.array([(w.sum(0) * self.z1).sum(), (w.sum(1) * self.z2).sum()])

    def cov(self) -> np.ndarray:
        """Cov[z | x]: ``[2, 2]``."""
        w = self.weights()
        Z1, Z2 = np.meshgrid(self.z1, self.z2)
        d1, d2 = Z1 - self.mean()[0], Z2 - self.mean()[1]
        c12 = (w * d1 * d2).sum()
        return np.array([[(w * d1**2).sum(), c12], [c12, (w * d2**2).sum()]])


def log_joint_on_grid(x, decoder, prior, z1: np.ndarray, z2: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """log p(z) + log p(x | z) for ``x: [D]`` at every z = (z1[j], z2[i]): ``[len(z2), len(z1)]`` float64.

    The decoder sees ``chunk`` grid points at a time (memory of ``chunk`` x D likelihood terms).
    """
    Z1, Z2 = np.meshgrid(z1, z2)
    z = np.stack([Z1.ravel(), Z2.ravel()], axis=-1).astype(np.float32)  # [G, 2]
    x = tf.constant(np.asarray(x, np.float32))
    parts = []
    for start in range(0, len(z), chunk):
        zc = tf.constant(z[start : start + chunk])
        parts.append((decoder(zc).log_prob(x) + prior.log_prob(zc)).numpy().astype(np.float64))
    return np.concatenate(parts).reshape(Z1.shape)


def posterior_on_grid(x, decoder, prior, *, limit: float = 6.0, n: int = 241, tail: float = 1e-9) -> GridPosterior:
    """The exact posterior of one data point ``x: [D]`` of a model with ``prior`` event shape [2] (notebooks 02 and 05).

    Pass 1: an ``n`` x ``n`` grid over [-limit, limit]^2, widened (x1.5, up to four times) while
    posterior density above ``tail`` times its maximum touches the border. Pass 2: an ``n`` x ``n``
    grid over the box where pass 1 found such density, widened by two coarse cells.
    """
    if tuple(prior.event_shape) != (2,):
        raise ValueError(f"posterior_on_grid needs a 2-D latent variable, got prior event shape {list(prior.event_shape)}")
    x = np.asarray(x, np.float32)
    if x.ndim != 1:
        raise ValueError(f"posterior_on_grid takes one data point x of shape [D], got {list(x.shape)}")
    for _ in range(5):
        axis = np.linspace(-limit, limit, n)
        coarse = log_joint_on_grid(x, decoder, prior, axis, axis)
        rows, cols = np.nonzero(coarse >= coarse.max() + np.log(tail))
        if min(rows.min(), cols.min()) > 0 and max(rows.max(), cols.max()) < n - 1:
            break
        limit *= 1.5
    step = axis[1] - axis[0]
    z1 = np.linspace(axis[cols.min()] - 2 * step, axis[cols.max()] + 2 * step, n)
    z2 = np.linspace(axis[rows.min()] - 2 * step, axis[rows.max()] + 2 * step, n)
    return GridPosterior(z1, z2, log_joint_on_grid(x, decoder, prior, z1, z2))
