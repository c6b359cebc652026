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


def _log_joint_fn(decoder, prior, budget: int):
    """A compiled log p(x_i, z) for ``x: [m, D]`` and ``z: [c, 2]`` (one grid for all points) or
    ``[m, c, 2]`` (a grid per point): ``[m, c]``. ``budget``: most m*c*D likelihood terms at a time."""

    @tf.function(reduce_retracing=True)
    def chunk(x, z):
        return decoder(z).log_prob(x[:, None, :]) + prior.log_prob(z)

    def log_joint(x, z):
        step = max(1, budget // (len(x) * x.shape[1]))
        parts = [chunk(tf.constant(x), tf.constant(z[..., s : s + step, :])).numpy() for s in range(0, z.shape[-2], step)]
        return np.concatenate(parts, axis=-1).astype(np.float64)

    return log_joint


def _grid_points(z1: np.ndarray, z2: np.ndarray) -> np.ndarray:
    """``[len(z2) * len(z1), 2]`` float32, row-major: row i of a grid is z2[i], column j is z1[j]."""
    Z1, Z2 = np.meshgrid(z1, z2)
    return np.stack([Z1.ravel(), Z2.ravel()], axis=-1).astype(np.float32)


def grid_posteriors(x, decoder, prior, *, n: int = 241, limit: float = 6.0, tail: float = 1e-9, budget: int = 2**22) -> list[GridPosterior]:
    """The exact posteriors of many points at once: ``x: [m, D]`` -> m `GridPosterior`s (notebooks 02 and 05).

    Pass 1 evaluates the decoder once on a coarse grid shared by all points (widened x1.5, up to four
    times, for the points whose mass touches its border); pass 2 puts an ``n`` x ``n`` grid on each
    point's own box. Both passes are compiled and batched over the points (``budget`` terms at a time).
    """
    if tuple(prior.event_shape) != (2,):
        raise ValueError(f"quadrature needs a 2-D latent variable, got prior event shape {list(prior.event_shape)}")
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"grid_posteriors expects x of shape [points, D], got {list(x.shape)}")
    log_joint = _log_joint_fn(decoder, prior, budget)
    boxes, pending = [None] * len(x), np.arange(len(x))
    for _ in range(5):
        axis = np.linspace(-limit, limit, n)
        coarse = log_joint(x[pending], _grid_points(axis, axis)).reshape(len(pending), n, n)
        step, widen = axis[1] - axis[0], []
        for i, lj in zip(pending, coarse):
            rows, cols = np.nonzero(lj >= lj.max() + np.log(tail))
            boxes[i] = (axis[cols.min()] - 2 * step, axis[cols.max()] + 2 * step, axis[rows.min()] - 2 * step, axis[rows.max()] + 2 * step)
            if min(rows.min(), cols.min()) == 0 or max(rows.max(), cols.max()) == n - 1:
                widen.append(i)
        if not widen:
            break
        pending, limit = np.array(widen), limit * 1.5
    axes = [(np.linspace(a, b, n), np.linspace(c, d, n)) for a, b, c, d in boxes]
    fine = log_joint(x, np.stack([_grid_points(z1, z2) for z1, z2 in axes]))
    return [GridPosterior(z1, z2, lj.reshape(n, n)) for (z1, z2), lj in zip(axes, fine)]


def posterior_on_grid(x, decoder, prior, *, limit: float = 6.0, n: int = 241, tail: float = 1e-9) -> GridPosterior:
    """The exact posterior of one data point ``x: [D]`` of a model with ``prior`` event shape [2] (notebooks 02 and 05).

    Pass 1: an ``n`` x ``n`` grid over [-limit, limit]^2, widened (x1.5, up to four times) while
    posterior density above ``tail`` times its maximum touches the border. Pass 2: an ``n`` x ``n``
    grid over the box where pass 1 found such density, widened by two coarse cells (`grid_posteriors`).
    """
    if tuple(prior.event_shape) != (2,):
        raise ValueError(f"posterior_on_grid needs a 2-D latent variable, got prior event shape {list(prior.event_shape)}")
    x = np.asarray(x, np.float32)
    if x.ndim != 1:
        raise ValueError(f"posterior_on_grid takes one data point x of shape [D], got {list(x.shape)}")
    return grid_posteriors(x[None], decoder, prior, n=n, limit=limit, tail=tail)[0]
