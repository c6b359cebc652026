"""Variational families with one signature: ``family(x, idx) -> q(z)``.

``x: [batch, D] float32`` data points, ``idx: [batch] int`` their positions in the data set.
Every family returns a diagonal Gaussian with batch shape ``[batch]`` and event shape ``[d]``.

- `LocalFactors(num_points, d)`: ignores ``x``; looks up one (loc, scale) row per data point by
  ``idx``. Mean-field local VI: parameters grow with N, a new point needs new parameters.
- `MLPInferenceNetwork(d, hidden)`: ignores ``idx``; an inference network lambda_n = NN(x_n; theta) with a
  fixed number of parameters, whatever N.
- `ConvInferenceNetwork(d)`: the same with a small convolutional network for 28x28 images.
- `LinearInferenceNetwork(d, D)`: loc = A x + c and a learned scale that does not depend on x; optionally
  restricted (``fixed_scale``) so that it *cannot* represent the exact posterior of the
  linear-Gaussian model.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .data import IMAGE_SIDE, NUM_PIXELS
from .models import check_latent_dim

tfd = tfp.distributions

SOFTPLUS_INV_ONE = float(np.log(np.expm1(1.0)))  # softplus(x) = 1  <=>  x = log(e - 1)
MIN_SCALE = 1e-5


def diag_gaussian(loc: tf.Tensor, scale: tf.Tensor) -> tfd.Distribution:
    """q(z) with batch shape ``loc.shape[:-1]`` and event shape ``[d]``."""
    return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)


def check_batch(x, width: int, who: str) -> None:
    """Static checks of ``x: [batch, width]`` float; raises ValueError with the expected shape."""
    shape = tuple(x.shape)
    dtype = getattr(x, "dtype", None)
    if len(shape) != 2 or (shape[1] is not None and shape[1] != width):
        hint = " (flatten 28x28 images with x.reshape(-1, 784))" if width == NUM_PIXELS and len(shape) == 3 else ""
        raise ValueError(f"{who} expects x of shape [batch, {width}], got {list(shape)}{hint}")
    name = getattr(dtype, "name", str(dtype))
    if dtype is not None and "float" not in name:
        raise ValueError(f"{who} expects float32 inputs, got dtype {name} (convert with x.astype('float32'))")


def check_index_range(idx, num_points: int, who: str, hint: str = "") -> None:
    """Raise ValueError unless every index in ``idx`` is an integer in 0..num_points-1 (eager values).

    Local families look their rows up by index; inside a compiled loop an out-of-range gather is
    clamped silently or fails mid-epoch, so they check their indices before training starts.
    """
    idx = np.asarray(idx)
    if idx.size == 0:
        return
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{who} expects integer indices, got dtype {idx.dtype}")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= num_points:
        raise ValueError(f"{who} index out of range: got indices {lo}..{hi}, valid are 0..{num_points - 1}{hint}")


class LocalFactors:
    """One diagonal Gaussian q(z_n; lambda_n) per data point, lambda_n = (loc_n, scale_n).

    Parameters: ``loc: [N, d]`` and ``raw_scale: [N, d]`` (scale = softplus(raw_scale)), so
    2 N d numbers. Initialised at the prior N(0, I) unless ``loc``/``scale`` are given.
    """

    def __init__(self, num_points: int, latent_dim: int = 10, loc=None, scale=None, name: str = "local"):
        check_latent_dim(latent_dim)
        if not isinstance(num_points, (int, np.integer)) or num_points <= 0:
            raise ValueError(f"num_points must be a positive integer, got {num_points!r}")
        self.num_points, self.latent_dim = int(num_points), latent_dim
        shape = (self.num_points, latent_dim)
        loc0 = np.zeros(shape, np.float32) if loc is None else np.asarray(loc, np.float32)
        scale0 = np.ones(shape, np.float32) if scale is None else np.asarray(scale, np.float32)
        if loc0.shape != shape or scale0.shape != shape:
            raise ValueError(f"initial loc/scale must have shape {list(shape)}, got {loc0.shape} and {scale0.shape}")
        raw0 = np.log(np.expm1(np.maximum(scale0, MIN_SCALE)))  # inverse softplus
        self.loc = tf.Variable(loc0, name=f"{name}/loc")
        self.raw_scale = tf.Variable(raw0.astype(np.float32), name=f"{name}/raw_scale")

    @classmethod
    def from_distribution(cls, q: tfd.Distribution, name: str = "local") -> "LocalFactors":
        """Fresh local factors initialised at q's loc and scale (semi-amortized start)."""
        loc, scale = q.mean().numpy(), q.stddev().numpy()
        return cls(loc.shape[0], loc.shape[1], loc=loc, scale=scale, name=name)

    def __call__(self, x, idx) -> tfd.Distribution:
        idx = tf.convert_to_tensor(idx)
        if idx.shape.rank != 1:
            raise ValueError(f"LocalFactors expects idx of shape [batch], got {idx.shape.as_list()}")
        if x is not None and x.shape[0] is not None and idx.shape[0] is not None and x.shape[0] != idx.shape[0]:
            raise ValueError(f"LocalFactors got {x.shape[0]} data points but {idx.shape[0]} indices; they must match")
        if not idx.dtype.is_integer:
            raise ValueError(f"LocalFactors expects integer indices, got dtype {idx.dtype.name}")
        if tf.executing_eagerly():
            self.check_indices(idx)
        loc = tf.gather(self.loc, idx)
        scale = tf.nn.softplus(tf.gather(self.raw_scale, idx)) + MIN_SCALE
        return diag_gaussian(loc, scale)

    def check_indices(self, idx) -> None:
        """Raise ValueError unless every index is in 0..num_points-1 (eager values only).

        Inside a compiled (XLA) loop an out-of-range gather is silently clamped, so callers that
        compile (`train`, `evaluate`) should call this on all their indices before starting.
        """
        check_index_range(
            idx, self.num_points, "LocalFactors",
            f" (these factors hold {self.num_points} points; the data set must have exactly that many, "
            f"or create LocalFactors(len(x), {self.latent_dim}))",
        )

    @property
    def trainable_variables(self) -> list:
        return [self.loc, self.raw_scale]

    def count_params(self) -> int:
        return 2 * self.num_points * self.latent_dim


class MLPInferenceNetwork:
    """The reference inference network: ``x: [batch, 784]`` -> q(z | x).

    hidden = Dense(hidden, relu)(x); loc = Dense(d)(hidden); scale = Dense(d, softplus)(hidden).
    With d=10, hidden=256: 784*256+256 + 2*(256*10+10) = 206,100 parameters.
    """

    def __init__(self, latent_dim: int = 10, hidden: int = 256, input_dim: int = NUM_PIXELS):
        check_latent_dim(latent_dim)
        self.latent_dim, self.input_dim = latent_dim, input_dim
        self.hidden = keras.layers.Dense(hidden, activation="relu", name="hidden")
        self.loc_layer = keras.layers.Dense(latent_dim, name="loc")
        self.scale_layer = keras.layers.Dense(latent_dim, activation="softplus", name="scale")
        self.hidden.build((None, input_dim))
        self.loc_layer.build((None, hidden))
        self.scale_layer.build((None, hidden))

    def params(self, x) -> tuple[tf.Tensor, tf.Tensor]:
        """``x: [batch, 784]`` -> (loc, scale), each ``[batch, d]``."""
        check_batch(x, self.input_dim, "MLPInferenceNetwork")
        h = self.hidden(x)
        return self.loc_layer(h), self.scale_layer(h) + MIN_SCALE

    def __call__(self, x, idx=None) -> tfd.Distribution:
        return diag_gaussian(*self.params(x))

    @property
    def layers(self) -> list:
        return [self.hidden, self.loc_layer, self.scale_layer]

    @property
    def trainable_variables(self) -> list:
        return [v for layer in self.layers for v in layer.trainable_variables]

    def count_params(self) -> int:
        return int(sum(layer.count_params() for layer in self.layers))


class ConvInferenceNetwork:
    """A small convolutional inference network for 28x28 images: ``x: [batch, 784]`` -> q(z | x).

    Conv(16, 3x3, stride 2, relu) -> Conv(32, 3x3, stride 2, relu) -> flatten -> Dense(loc),
    Dense(scale, softplus).
    """

    def __init__(self, latent_dim: int = 10, filters: tuple[int, int] = (16, 32)):
        check_latent_dim(latent_dim)
        self.latent_dim = latent_dim
        self.trunk = keras.Sequential(
            [
                keras.Input((NUM_PIXELS,)),
                keras.layers.Reshape((IMAGE_SIDE, IMAGE_SIDE, 1)),
                keras.layers.Conv2D(filters[0], 3, strides=2, padding="same", activation="relu"),  # 14x14
                keras.layers.Conv2D(filters[1], 3, strides=2, padding="same", activation="relu"),  # 7x7
                keras.layers.Flatten(),
            ],
            name="conv_trunk",
        )
        self.loc_layer = keras.layers.Dense(latent_dim, name="loc")
        self.scale_layer = keras.layers.Dense(latent_dim, activation="softplus", name="scale")
        width = 7 * 7 * filters[1]
        self.loc_layer.build((None, width))
        self.scale_layer.build((None, width))

    def params(self, x) -> tuple[tf.Tensor, tf.Tensor]:
        check_batch(x, NUM_PIXELS, "ConvInferenceNetwork")
        h = self.trunk(x)
        return self.loc_layer(h), self.scale_layer(h) + MIN_SCALE

    def __call__(self, x, idx=None) -> tfd.Distribution:
        return diag_gaussian(*self.params(x))

    @property
    def trainable_variables(self) -> list:
        return [*self.trunk.trainable_variables, *self.loc_layer.trainable_variables, *self.scale_layer.trainable_variables]

    def count_params(self) -> int:
        return int(self.trunk.count_params() + self.loc_layer.count_params() + self.scale_layer.count_params())


class LinearInferenceNetwork:
    """loc = x A + c, scale = softplus(s) (one learned vector, the same for every x).

    This can represent the exact posterior of `LinearGaussian` (mean linear in x, covariance
    independent of x). ``fixed_scale=v`` pins every scale to ``v`` instead: a deliberately
    restricted inference network that cannot reach log p(x) unless the posterior scale is ``v``.
    """

    def __init__(self, latent_dim: int, input_dim: int, fixed_scale: float | None = None):
        check_latent_dim(latent_dim)
        self.latent_dim, self.input_dim, self.fixed_scale = latent_dim, input_dim, fixed_scale
        self.A = tf.Variable(tf.zeros([input_dim, latent_dim]), name="linear/A")
        self.c = tf.Variable(tf.zeros([latent_dim]), name="linear/c")
        self.raw_scale = None if fixed_scale is not None else tf.Variable(tf.fill([latent_dim], SOFTPLUS_INV_ONE))

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

    def count_params(self) -> int:
        return int(sum(int(np.prod(v.shape)) for v in self.trainable_variables))


FAMILIES = ("local", "mlp", "conv")
