"""Richer variational families (chapter 5), with the one signature ``family(x, idx) -> q(z)``.

- `LocalFullCovGaussian(N, d)`: one full-covariance Gaussian N(loc_n, L_n L_n^T) per data point,
  gathered by ``idx``. Contains every Gaussian posterior (e.g. the linear-Gaussian model's).
- `LocalFlow(N, d)`: one normalizing flow per data point, gathered by ``idx``: a diagonal Gaussian
  pushed through ``layers`` affine coupling layers (RealNVP, Dinh et al. 2017; TFP bijectors).
- `FlowInferenceNetwork(d)`: the same flow family with its parameters computed from ``x`` by an
  MLP (an amortized flow). Local and amortized flows share `flow_distribution`, so the best local
  flow is the optimum of exactly the family the network outputs: the amortization gap is measured
  within one family.

A flow's parameters per data point are one flat vector ``[P]`` (`flow_param_count`): loc and raw
scale ``[d]`` each, then per coupling layer the weights of a tiny per-point MLP
e_a -> tanh(e_a W1 + b1) W2 + b2 -> (shift, log_scale) of e_b. The coupling layers act on standard
noise e ~ N(0, I) (alternating halves, a reversing permutation between them), and z = loc + scale * T(e)
comes last: the couplings see inputs of scale 1 whatever the width of the posterior, and with
identity couplings q is the diagonal Gaussian N(loc, diag(scale^2)). log_scale = tanh(raw) keeps
each coupling's stretch in [1/e, e].
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import check_batch, check_index_range, check_latent_dim, check_positive_int
from .data import NUM_PIXELS
from .families import MIN_SCALE, diag_gaussian
from .models import Trainable

tfd, tfb = tfp.distributions, tfp.bijectors


def _check_flow_shape(latent_dim: int, layers: int, hidden: int) -> None:
    check_latent_dim(latent_dim)
    if latent_dim < 2:
        raise ValueError(f"a coupling flow needs latent_dim >= 2 (it transforms one half given the other), got {latent_dim}")
    check_positive_int(layers, "layers")
    check_positive_int(hidden, "hidden")


def _halves(latent_dim: int) -> tuple[int, int]:
    """(d_a, d_b): a coupling layer reads the first d_a coordinates and transforms the other d_b."""
    return latent_dim // 2, latent_dim - latent_dim // 2


def _layer_sizes(latent_dim: int, hidden: int) -> list[int]:
    """Sizes of one coupling layer's pieces W1 [d_a*H], b1 [H], W2 [H*2*d_b], b2 [2*d_b]."""
    a, b = _halves(latent_dim)
    return [a * hidden, hidden, hidden * 2 * b, 2 * b]


def flow_param_count(latent_dim: int, layers: int = 2, hidden: int = 8) -> int:
    """P, the numbers that define one data point's flow: 2 d + layers * (coupling layer size)."""
    _check_flow_shape(latent_dim, layers, hidden)
    return 2 * latent_dim + layers * sum(_layer_sizes(latent_dim, hidden))


def _coupling_fn(pieces, latent_dim: int, hidden: int):
    """shift_and_log_scale_fn for RealNVP from one layer's per-point weights (batch ``[b]``)."""
    a, b = _halves(latent_dim)
    w1, b1, w2, b2 = pieces
    w1 = tf.reshape(w1, [-1, a, hidden])
    w2 = tf.reshape(w2, [-1, hidden, 2 * b])

    def fn(z_a, output_units):
        # z_a: [..., b, d_a] (sample axes first); each point uses its own weights
        h = tf.tanh(tf.einsum("...ni,nih->...nh", z_a, w1) + b1)
        out = tf.einsum("...nh,nho->...no", h, w2) + b2
        shift, raw = tf.split(out, 2, axis=-1)
        return shift, tf.tanh(raw)

    return fn


def flow_distribution(params, latent_dim: int, layers: int = 2, hidden: int = 8) -> tfd.Distribution:
    """``params: [b, P]`` -> q(z): batch ``[b]``, event ``[d]``, a Gaussian pushed through coupling layers."""
    params = tf.convert_to_tensor(params, tf.float32)
    expected = flow_param_count(latent_dim, layers, hidden)
    if params.shape.rank != 2 or (params.shape[-1] is not None and params.shape[-1] != expected):
        raise ValueError(
            f"flow parameters must have shape [batch, {expected}] for latent_dim={latent_dim}, layers={layers}, "
            f"hidden={hidden}; got {params.shape.as_list()}"
        )
    sizes = [latent_dim, latent_dim] + layers * _layer_sizes(latent_dim, hidden)
    parts = tf.split(params, sizes, axis=-1)
    loc, scale = parts[0], tf.nn.softplus(parts[1]) + MIN_SCALE
    reverse = tfb.Permute(list(range(latent_dim))[::-1])
    steps = []  # in the order they act on eps ~ N(0, I)
    for i in range(layers):
        if i:
            steps.append(reverse)
        fn = _coupling_fn(parts[2 + 4 * i : 6 + 4 * i], latent_dim, hidden)
        steps.append(tfb.RealNVP(num_masked=_halves(latent_dim)[0], shift_and_log_scale_fn=fn))
    if layers % 2 == 0:
        steps.append(reverse)  # an odd number of reversals so far: undo it, so loc/scale keep their coordinates
    steps += [tfb.Scale(scale), tfb.Shift(loc)]
    standard = diag_gaussian(tf.zeros_like(loc), tf.ones_like(loc))
    return tfd.TransformedDistribution(standard, tfb.Chain(steps[::-1]))  # Chain applies its last bijector first


def identity_flow_params(loc, scale, layers: int = 2, hidden: int = 8, seed: int = 0) -> np.ndarray:
    """``[n, P]`` parameters of flows that equal N(loc, diag(scale^2)) (``loc, scale: [n, d]``).

    Every coupling layer starts as the identity (W2 = b2 = 0) with random first-layer weights W1
    (scale 1/sqrt(d_a)), so gradients reach the coupling weights from the first step.
    """
    loc, scale = np.asarray(loc, np.float32), np.asarray(scale, np.float32)
    n, d = loc.shape
    _check_flow_shape(d, layers, hidden)
    rng = np.random.default_rng(seed)
    raw = np.log(np.expm1(np.maximum(scale - MIN_SCALE, MIN_SCALE)))  # inverse of softplus(.) + MIN_SCALE
    pieces = [loc, raw]
    a = _halves(d)[0]
    for _ in range(layers):
        w1_size, b1_size, w2_size, b2_size = _layer_sizes(d, hidden)
        pieces += [rng.normal(0, 1 / np.sqrt(a), (n, w1_size)), np.zeros((n, b1_size + w2_size + b2_size))]
    return np.concatenate(pieces, axis=1).astype(np.float32)


class _LocalTable(Trainable):
    """Shared by the local families: a table ``[N, P]`` of parameter rows, gathered by ``idx``."""

    def __init__(self, rows: np.ndarray, name: str):
        self.num_points = int(rows.shape[0])
        self.table = tf.Variable(rows, name=f"{name}/params")

    def rows(self, x, idx) -> tf.Tensor:
        """The rows of the points ``idx: [batch]`` (integers; as many as ``x`` has points, if given)."""
        idx = tf.convert_to_tensor(idx)
        n = None if x is None else x.shape[0]
        if idx.shape.rank != 1 or not idx.dtype.is_integer or None not in (n, idx.shape[0]) and n != idx.shape[0]:
            raise ValueError(
                f"{type(self).__name__} expects integer indices of shape [{n or 'batch'}] (one per data point), "
                f"got {idx.dtype.name} {idx.shape.as_list()}"
            )
        if tf.executing_eagerly():
            self.check_indices(idx)
        return tf.gather(self.table, idx)

    def check_indices(self, idx) -> None:
        check_index_range(idx, self.num_points, type(self).__name__, f" (this family holds {self.num_points} points)")

    @property
    def trainable_variables(self) -> list:
        return [self.table]


def _loc_scale(num_points: int, latent_dim: int, loc, scale) -> tuple[np.ndarray, np.ndarray]:
    shape = (num_points, latent_dim)
    loc = np.zeros(shape, np.float32) if loc is None else np.asarray(loc, np.float32)
    scale = np.ones(shape, np.float32) if scale is None else np.asarray(scale, np.float32)
    if loc.shape != shape or scale.shape != shape:
        raise ValueError(f"initial loc/scale must have shape {list(shape)}, got {list(loc.shape)} and {list(scale.shape)}")
    return loc, scale


class LocalFullCovGaussian(_LocalTable):
    """One Gaussian N(loc_n, L_n L_n^T) per data point: rows [loc (d) | raw lower triangle (d(d+1)/2)].

    L = FillScaleTriL(softplus diagonal)(raw). Started at N(``loc``, diag(``scale``^2)) (default N(0, I)).
    """

    def __init__(self, num_points: int, latent_dim: int = 2, loc=None, scale=None, name: str = "local_fullcov"):
        check_latent_dim(latent_dim)
        self.latent_dim = latent_dim
        loc, scale = _loc_scale(check_positive_int(num_points, "num_points"), latent_dim, loc, scale)
        self._tril = tfb.FillScaleTriL(diag_bijector=tfb.Softplus(), diag_shift=MIN_SCALE)
        raw = self._tril.inverse(tf.linalg.diag(np.maximum(scale, 2 * MIN_SCALE))).numpy()
        super().__init__(np.concatenate([loc, raw], axis=1), name)

    @classmethod
    def from_distribution(cls, q: tfd.Distribution, name: str = "local_fullcov") -> "LocalFullCovGaussian":
        """Started at a diagonal Gaussian q's loc and scale (semi-amortized start)."""
        return cls(*q.batch_shape, *q.event_shape, loc=q.mean().numpy(), scale=q.stddev().numpy(), name=name)

    def __call__(self, x, idx) -> tfd.Distribution:
        rows = self.rows(x, idx)
        return tfd.MultivariateNormalTriL(rows[:, : self.latent_dim], self._tril.forward(rows[:, self.latent_dim :]))


class LocalFlow(_LocalTable):
    """One normalizing flow per data point (`flow_distribution`), its ``[P]`` parameters gathered by ``idx``.

    Started at N(``loc``, diag(``scale``^2)) pushed through identity coupling layers (default N(0, I)).
    """

    def __init__(self, num_points: int, latent_dim: int = 2, layers: int = 2, hidden: int = 8, loc=None, scale=None, seed: int = 0, name: str = "local_flow"):
        _check_flow_shape(latent_dim, layers, hidden)
        self.latent_dim, self.layers, self.hidden = latent_dim, layers, hidden
        loc, scale = _loc_scale(check_positive_int(num_points, "num_points"), latent_dim, loc, scale)
        super().__init__(identity_flow_params(loc, scale, layers, hidden, seed), name)

    @classmethod
    def from_distribution(cls, q: tfd.Distribution, layers: int = 2, hidden: int = 8, seed: int = 0, name: str = "local_flow") -> "LocalFlow":
        """Started at a diagonal Gaussian q (e.g. an inference network's output) with identity couplings."""
        loc, scale = q.mean().numpy(), q.stddev().numpy()
        return cls(loc.shape[0], loc.shape[1], layers, hidden, loc=loc, scale=scale, seed=seed, name=name)

    @classmethod
    def from_network(cls, network: "FlowInferenceNetwork", x, name: str = "local_flow") -> "LocalFlow":
        """Started at an amortized flow's output for ``x: [n, D]`` (the same family: semi-amortized start)."""
        rows = network.params(tf.convert_to_tensor(x, tf.float32)).numpy()
        family = cls(len(rows), network.latent_dim, network.layers, network.hidden, name=name)
        family.table.assign(rows)
        return family

    def __call__(self, x, idx) -> tfd.Distribution:
        return flow_distribution(self.rows(x, idx), self.latent_dim, self.layers, self.hidden)


class FlowInferenceNetwork(Trainable):
    """An amortized flow: ``x: [batch, D]`` -> Dense(hidden, relu) -> Dense(P) -> `flow_distribution`.

    The output layer starts at the identity flow around N(0, softplus(0)^2 I) (its bias holds
    `identity_flow_params`, its kernel is small), so training starts like an MLP inference network.
    """

    def __init__(self, latent_dim: int = 2, hidden: int = 256, layers: int = 2, flow_hidden: int = 8, input_dim: int = NUM_PIXELS, seed: int = 0):
        _check_flow_shape(latent_dim, layers, flow_hidden)
        self.latent_dim, self.layers, self.hidden, self.input_dim = latent_dim, layers, flow_hidden, input_dim
        d = latent_dim
        bias = identity_flow_params(np.zeros((1, d)), np.full((1, d), np.log(2.0)), layers, flow_hidden, seed)[0]
        self.trunk = keras.layers.Dense(hidden, activation="relu", name="flow_trunk")
        self.head = keras.layers.Dense(
            len(bias), name="flow_params",
            kernel_initializer=keras.initializers.VarianceScaling(0.01),
            bias_initializer=keras.initializers.Constant(bias),
        )
        self.net = keras.Sequential([keras.Input((input_dim,)), self.trunk, self.head], name="flow_inference_network")

    def params(self, x) -> tf.Tensor:
        """``x: [batch, D]`` -> flow parameters ``[batch, P]``."""
        check_batch(x, self.input_dim, "FlowInferenceNetwork")
        return self.net(x)

    def __call__(self, x, idx=None) -> tfd.Distribution:
        return flow_distribution(self.params(x), self.latent_dim, self.layers, self.hidden)

    @property
    def trainable_variables(self) -> list:
        return list(self.net.trainable_variables)
