"""Variational families with one signature: ``family(x, idx) -> q(z)`` (the `Family` protocol).

``x: [batch, D] float32`` data points, ``idx: [batch] int`` their positions in the data set.
Every family here returns a diagonal Gaussian with batch shape ``[batch]`` and event shape ``[d]``.

- `LocalFactors(num_points, d)`: ignores ``x``; looks up one (loc, scale) row per data point by
  ``idx``. Mean-field local VI: parameters grow with N, a new point needs new parameters.
- `GaussianInferenceNetwork(trunk, d)`: ignores ``idx``; an inference network lambda_n = NN(x_n; theta)
  with a fixed number of parameters, whatever N: a Keras trunk, then a loc head and a softplus scale head.
  `MLPInferenceNetwork(d, hidden)` (the reference network) and `ConvInferenceNetwork(d)` (for 28x28
  images) are two trunks.
- `LinearInferenceNetwork(d, D)`: loc = A x + c and a learned scale that does not depend on x; optionally
  restricted (``fixed_scale``) so that it *cannot* represent the exact posterior of the
  linear-Gaussian model.

`local_factors_bytes` and `crossover_points` hold the memory arithmetic of the comparison (notebook 01).
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

from typing import Protocol, runtime_checkable

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import check_batch, check_idx, check_index_range, check_latent_dim, check_positive_int
from .data import IMAGE_SIDE, NUM_PIXELS
from .models import Trainable

tfd = tfp.distributions

MIN_SCALE = 1e-5  # added to every scale: q never collapses to a point mass
BYTES_PER_NUMBER = 4  # float32
__all__ = [  # check_batch and check_index_range are re-exported for the families of flows.py
    "BYTES_PER_NUMBER", "ConvInferenceNetwork", "Family", "GaussianInferenceNetwork", "IndexedFamily",
    "LinearInferenceNetwork", "LocalFactors", "MIN_SCALE", "MLPInferenceNetwork", "check_batch",
    "check_family_indices", "check_index_range", "crossover_points", "diag_gaussian", "local_factors_bytes",
]


class Family(Protocol):
    """``family(x, idx) -> q(z)`` with trainable variables: what `fit`, `train` and the bounds accept (notebooks 01 and 02)."""

    def __call__(self, x, idx) -> tfd.Distribution: ...

    @property
    def trainable_variables(self) -> list: ...


@runtime_checkable
class IndexedFamily(Protocol):
    """A local family: its parameters are rows looked up by ``idx``, so the indices must be checked first."""

    num_points: int

    def check_indices(self, idx) -> None: ...


def check_family_indices(family, idx) -> None:
    """Check ``idx`` against a local family's rows before anything is compiled (networks ignore idx).

    Inside a compiled loop an out-of-range gather is clamped silently or fails mid-epoch.
    """
    if isinstance(family, IndexedFamily):
        family.check_indices(idx)


def diag_gaussian(loc: tf.Tensor, scale: tf.Tensor) -> tfd.Distribution:
    """q(z) with batch shape ``loc.shape[:-1]`` and event shape ``[d]``."""
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


def local_factors_bytes(num_points, latent_dim: int = 10) -> np.ndarray:
    """Bytes of mean-field local factors (notebook 01): 2 N d float32 numbers (a loc and a scale per point and dimension)."""
    return 2 * np.asarray(num_points, np.float64) * latent_dim * BYTES_PER_NUMBER


def crossover_points(network_params: int, latent_dim: int = 10) -> float:
    """N* where local factors (2 N d numbers) take as much memory as a network of ``network_params`` (notebook 01)."""
    return network_params / (2 * latent_dim)


class LocalFactors(Trainable):
    """One diagonal Gaussian q(z_n; lambda_n) per data point, lambda_n = (loc_n, scale_n) (notebook 01).

    Parameters: ``loc: [N, d]`` and ``raw_scale: [N, d]`` (scale = softplus(raw_scale) + 1e-5), so
    2 N d numbers. Initialised at the prior N(0, I) unless ``loc``/``scale`` are given.
    """

    def __init__(self, num_points: int, latent_dim: int = 10, loc=None, scale=None, name: str = "local"):
        check_latent_dim(latent_dim)
        self.num_points, self.latent_dim = check_positive_int(num_points, "num_points"), latent_dim
        shape = (self.num_points, latent_dim)
        loc0 = np.zeros(shape, np.float32) if loc is None else np.asarray(loc, np.float32)
        scale0 = np.ones(shape, np.float32) if scale is None else np.asarray(scale, np.float32)
        if loc0.shape != shape or scale0.shape != shape:
            raise ValueError(f"initial loc/scale must have shape {list(shape)}, got {loc0.shape} and {scale0.shape}")
        self.loc = tf.Variable(loc0, name=f"{name}/loc")
        self.raw_scale = tf.Variable(tfp.math.softplus_inverse(np.maximum(scale0, MIN_SCALE)), name=f"{name}/raw_scale")

    @classmethod
    def from_distribution(cls, q: tfd.Distribution, name: str = "local") -> "LocalFactors":
        """Fresh local factors initialised at q's loc and scale (semi-amortized start, notebook 02)."""
        loc, scale = q.mean().numpy(), q.stddev().numpy()
        return cls(loc.shape[0], loc.shape[1], loc=loc, scale=scale, name=name)

    def __call__(self, x, idx) -> tfd.Distribution:
        idx = check_idx(x, idx, "LocalFactors")
        if tf.executing_eagerly():
            self.check_indices(idx)
        loc = tf.gather(self.loc, idx)
        scale = tf.nn.softplus(tf.gather(self.raw_scale, idx)) + MIN_SCALE
        return diag_gaussian(loc, scale)

    def check_indices(self, idx) -> None:
        """Raise ValueError unless every index is in 0..num_points-1 (eager values only)."""
        check_index_range(
            idx, self.num_points, "LocalFactors",
            f" (these factors hold {self.num_points} points; the data set must have exactly that many, "
            f"or create LocalFactors(len(x), {self.latent_dim}))",
        )

    @property
    def trainable_variables(self) -> list:
        return [self.loc, self.raw_scale]


class GaussianInferenceNetwork(Trainable):
    """An inference network ``x: [batch, input_dim]`` -> q(z | x), a diagonal Gaussian (notebooks 02 and 03).

    h = trunk(x); loc = Dense(d)(h); scale = Dense(d, softplus)(h) + 1e-5. Two heads rather than one
    Dense(2d) split in halves (the same number of parameters): they are the seed's text, loc = Dense(10),
    scale = Dense(10, softplus), and each head's weights stay a variable of their own.
    ``trunk``: a Keras model from ``[batch, input_dim]`` to ``[batch, width]``, built here.
    """

    def __init__(self, trunk: keras.Sequential, latent_dim: int = 10, input_dim: int = NUM_PIXELS):
        check_latent_dim(latent_dim)
        self.latent_dim, self.input_dim, self.trunk = latent_dim, input_dim, trunk
        width = trunk.compute_output_shape((None, input_dim))[-1]
        self.loc_layer = keras.layers.Dense(latent_dim, name="loc")
        self.scale_layer = keras.layers.Dense(latent_dim, activation="softplus", name="scale")
        self.loc_layer.build((None, width))
        self.scale_layer.build((None, width))

    def params(self, x) -> tuple[tf.Tensor, tf.Tensor]:
        """``x: [batch, input_dim]`` -> (loc, scale), each ``[batch, d]``."""
        check_batch(x, self.input_dim, type(self).__name__)
        h = self.trunk(x)
        return self.loc_layer(h), self.scale_layer(h) + MIN_SCALE

    def __call__(self, x, idx=None) -> tfd.Distribution:
        return diag_gaussian(*self.params(x))

    @property
    def layers(self) -> list:
        """The trunk's layers, then the loc and scale heads."""
        return [*self.trunk.layers, self.loc_layer, self.scale_layer]

    @property
    def trainable_variables(self) -> list:
        return [v for layer in self.layers for v in layer.trainable_variables]


class MLPInferenceNetwork(GaussianInferenceNetwork):
    """The reference inference network (notebook 02): x -> Dense(hidden, relu) -> loc, softplus scale.

    With d=10, hidden=256: 784*256+256 + 2*(256*10+10) = 206,100 parameters.
    """

    def __init__(self, latent_dim: int = 10, hidden: int = 256, input_dim: int = NUM_PIXELS):
        check_latent_dim(latent_dim)
        trunk = keras.Sequential(
            [keras.Input((input_dim,)), keras.layers.Dense(hidden, activation="relu", name="hidden")], name="mlp_trunk"
        )
        super().__init__(trunk, latent_dim, input_dim)

    @property
    def hidden(self) -> keras.layers.Dense:
        """The hidden layer (the trunk's only layer)."""
        return self.trunk.layers[0]


class ConvInferenceNetwork(GaussianInferenceNetwork):
    """A small convolutional inference network for 28x28 images (notebook 03): ``x: [batch, 784]`` -> q(z | x).

    Conv(16, 3x3, stride 2, relu) -> Conv(32, 3x3, stride 2, relu) -> flatten -> loc, softplus scale.
    """

    def __init__(self, latent_dim: int = 10, filters: tuple[int, int] = (16, 32)):
        check_latent_dim(latent_dim)
        trunk = keras.Sequential(
            [
                keras.Input((NUM_PIXELS,)),
                keras.layers.Reshape((IMAGE_SIDE, IMAGE_SIDE, 1)),
                keras.layers.Conv2D(filters[0], 3, strides=2, padding="same", activation="relu"),  # 14x14
                keras.layers.Conv2D(filters[1], 3, strides=2, padding="same", activation="relu"),  # 7x7
                keras.layers.Flatten(),
            ],
            name="conv_trunk",
        )
        super().__init__(trunk, latent_dim, NUM_PIXELS)


class LinearInferenceNetwork(Trainable):
    """loc = x A + c, scale = softplus(s) (one learned vector, the same for every x) (notebooks 04 and 06).

    This can represent the exact posterior of `LinearGaussian` (mean linear in x, covariance
    independent of x). ``fixed_scale=v`` pins every scale to ``v`` instead: a deliberately
    restricted inference network that cannot reach log p(x) unless the posterior scale is ``v``.
    """

    def __init__(self, latent_dim: int, input_dim: int, fixed_scale: float | None = None):
        check_latent_dim(latent_dim)
        self.latent_dim, self.input_dim, self.fixed_scale = latent_dim, input_dim, fixed_scale
        self.A = tf.Variable(tf.zeros([input_dim, latent_dim]), name="linear/A")
        self.c = tf.Variable(tf.zeros([latent_dim]), name="linear/c")
        start = tf.fill([latent_dim], tfp.math.softplus_inverse(1.0))  # scale 1, the prior's
        self.raw_scale = None if fixed_scale is not None else tf.Variable(start)

    def __call__(self, x, idx=None) -> tfd.Distribution:
        check_batch(x, self.input_dim, "LinearInferenceNetwork")
        loc = tf.matmul(x, self.A) + self.c
        if self.raw_scale is None:
            scale = tf.fill(tf.shape(loc), tf.constant(self.fixed_scale, tf.float32))
        else:
            scale = tf.ones_like(loc) * (tf.nn.softplus(self.raw_scale) + MIN_SCALE)
        return diag_gaussian(loc, scale)

    @property
    def trainable_variables(self) -> list:
        return [self.A, self.c] + ([] if self.raw_scale is None else [self.raw_scale])
