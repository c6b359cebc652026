"""Inference networks beyond neural decoders: a mixture of product-Bernoulli components.

    c_n ~ Categorical(pi),   x_n | c_n = k ~ prod_i Bernoulli(x_ni; mu_ki)

The local latent variable is a *cluster assignment* c_n. The variational families here return
``tfd.Categorical`` over the K components and keep the one signature ``family(x, idx) -> q(c)``:

- `LocalCategorical(N, K)`: one vector of logits per data point (local VI);
- `CategoricalInferenceNetwork(K)`: a small network x_n -> logits of q(c | x_n) (an inference network);
- `BernoulliMixture.posterior`: the exact p(c | x) (available because K is small).

Because c is discrete with K values, the ELBO is computed exactly by summing over clusters:

    ELBO(x; q) = sum_k q(k) [log pi_k + log p(x | k)] + H(q) = log p(x) - KL(q || p(c | x))

so no sampling and no reparameterization are needed, and the gap to log p(x) is known exactly.
Training reuses the tutorial's one loop, `inference.fit`, with ``objective(x, idx, seed)``.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import check_batch, check_idx, check_index_range, check_positive_int
from .families import check_family_indices
from .inference import fit
from .models import Trainable

tfd = tfp.distributions


def _check_components(k) -> None:
    check_positive_int(k, "num_components", minimum=2)


class BernoulliMixture(Trainable):
    """p(c) p(x | c): K product-Bernoulli components over ``data_dim`` binary pixels (notebook 04).

    Parameters: mixing logits ``[K]`` and pixel logits ``[K, D]``. ``init_data`` (``[n, D]`` in
    [0, 1], n >= K) starts each component at a random data point shrunk towards the data mean,
    which breaks the symmetry between components; without it the pixel logits start as small
    random numbers drawn from ``seed``.
    """

    def __init__(self, num_components: int = 10, data_dim: int = 784, init_data=None, seed: int = 0):
        _check_components(num_components)
        self.num_components, self.data_dim = int(num_components), int(data_dim)
        rng = np.random.default_rng(seed)
        if init_data is None:
            logits0 = 0.1 * rng.normal(size=(num_components, data_dim))
        else:
            data = np.asarray(init_data, np.float32)
            if data.ndim != 2 or data.shape[1] != data_dim or len(data) < num_components:
                raise ValueError(
                    f"init_data must have shape [n >= {num_components}, {data_dim}], got {list(data.shape)}"
                )
            picks = data[rng.choice(len(data), num_components, replace=False)]
            probs = np.clip(0.5 * picks + 0.5 * data.mean(0), 0.05, 0.95)
            logits0 = np.log(probs) - np.log1p(-probs)
        self.mixing_logits = tf.Variable(tf.zeros([num_components]), name="mixture/mixing_logits")
        self.pixel_logits = tf.Variable(logits0.astype(np.float32), name="mixture/pixel_logits")

    @property
    def weights(self) -> tf.Tensor:
        """pi: ``[K]`` mixing proportions."""
        return tf.nn.softmax(self.mixing_logits)

    @property
    def means(self) -> tf.Tensor:
        """mu: ``[K, D]`` pixel probabilities of each component."""
        return tf.sigmoid(self.pixel_logits)

    def log_joint(self, x) -> tf.Tensor:
        """log p(x, c=k) for every k: ``x: [b, D]`` -> ``[b, K]``."""
        check_batch(x, self.data_dim, "BernoulliMixture")
        x = tf.convert_to_tensor(x, tf.float32)
        # log Bernoulli(x; sigmoid(l)) = x l - softplus(l), summed over pixels
        log_lik = tf.matmul(x, self.pixel_logits, transpose_b=True) - tf.reduce_sum(
            tf.nn.softplus(self.pixel_logits), axis=-1
        )
        return log_lik + tf.nn.log_softmax(self.mixing_logits)

    def log_evidence(self, x) -> tf.Tensor:
        """Exact log p(x) = logsumexp_k log p(x, c=k): ``[b]`` nats."""
        return tf.reduce_logsumexp(self.log_joint(x), axis=-1)

    def posterior(self, x, idx=None) -> tfd.Categorical:
        """Exact p(c | x), batch shape ``[b]``. Has the family signature, so it can be "fitted" too."""
        return tfd.Categorical(logits=self.log_joint(x))

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` draws: (x ``[n, D]`` float32 in {0, 1}, c ``[n]`` int)."""
        rng = np.random.default_rng(seed)
        w = self.weights.numpy().astype(np.float64)
        c = rng.choice(self.num_components, size=n, p=w / w.sum())
        x = (rng.uniform(size=(n, self.data_dim)) < self.means.numpy()[c]).astype(np.float32)
        return x, c

    @property
    def trainable_variables(self) -> list:
        return [self.mixing_logits, self.pixel_logits]


class LocalCategorical(Trainable):
    """Local VI for cluster assignments (notebook 04): one logits vector ``[K]`` per data point, looked up by ``idx``.

    Starts uniform (all logits 0) unless ``logits`` ``[N, K]`` is given. N K parameters.
    """

    def __init__(self, num_points: int, num_components: int, logits=None, name: str = "local_categorical"):
        _check_components(num_components)
        self.num_points, self.num_components = check_positive_int(num_points, "num_points"), int(num_components)
        shape = (self.num_points, self.num_components)
        init = np.zeros(shape, np.float32) if logits is None else np.asarray(logits, np.float32)
        if init.shape != shape:
            raise ValueError(f"initial logits must have shape {list(shape)}, got {list(init.shape)}")
        self.logits = tf.Variable(init, name=f"{name}/logits")

    @classmethod
    def from_distribution(cls, q: tfd.Categorical, temperature: float = 1.0) -> "LocalCategorical":
        """Fresh local factors that start at q, softened: logits = log max(q, 1e-6) / temperature.

        ``temperature=1`` copies q (probabilities floored at 1e-6 so every cluster stays reachable);
        ``temperature > 1`` keeps q's ranking but moves it towards uniform (a tempered start). A
        confident wrong q is a bad start for gradient steps on the logits: the gradient of the
        ELBO with respect to a cluster's logit is proportional to that cluster's probability, so a
        cluster that q nearly excludes is hardly pushed up; tempering restores those gradients.
        """
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)) or not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"temperature must be a positive number (1 copies q, larger is softer), got {temperature!r}")
        logits = tf.math.log(tf.maximum(q.probs_parameter(), 1e-6)).numpy() / float(temperature)
        return cls(logits.shape[0], logits.shape[1], logits=logits)

    def __call__(self, x, idx) -> tfd.Categorical:
        idx = check_idx(x, idx, "LocalCategorical")
        if tf.executing_eagerly():
            self.check_indices(idx)
        return tfd.Categorical(logits=tf.gather(self.logits, idx))

    def check_indices(self, idx) -> None:
        """Raise ValueError unless every index is in 0..num_points-1 (eager values only)."""
        check_index_range(
            idx, self.num_points, "LocalCategorical",
            f" (these factors hold {self.num_points} points; create LocalCategorical(len(x), {self.num_components}))",
        )

    @property
    def trainable_variables(self) -> list:
        return [self.logits]


class CategoricalInferenceNetwork(Trainable):
    """An inference network for cluster assignments (notebook 04): x -> Dense(hidden, relu) -> Dense(K) logits of q(c | x)."""

    def __init__(self, num_components: int, hidden: int = 64, input_dim: int = 784):
        _check_components(num_components)
        self.num_components, self.input_dim = int(num_components), int(input_dim)
        self.hidden = keras.layers.Dense(hidden, activation="relu", name="hidden")
        self.out = keras.layers.Dense(num_components, name="logits")
        self.hidden.build((None, input_dim))
        self.out.build((None, hidden))

    def logits(self, x) -> tf.Tensor:
        check_batch(x, self.input_dim, "CategoricalInferenceNetwork")
        return self.out(self.hidden(x))

    def __call__(self, x, idx=None) -> tfd.Categorical:
        return tfd.Categorical(logits=self.logits(x))

    @property
    def trainable_variables(self) -> list:
        return [*self.hidden.trainable_variables, *self.out.trainable_variables]


def mixture_elbo(x, q: tfd.Categorical, model: BernoulliMixture) -> tf.Tensor:
    """Exact ELBO by summing over the K clusters (notebook 04): sum_k q_k log p(x, k) + H(q): ``[b]`` nats."""
    log_joint = model.log_joint(x)  # [b, K]
    log_q = tf.nn.log_softmax(q.logits_parameter())  # finite even where q_k underflows to 0
    if log_q.shape[-1] != log_joint.shape[-1]:
        raise ValueError(f"q has {log_q.shape[-1]} categories but the model has {log_joint.shape[-1]} components")
    probs = tf.exp(log_q)
    # sum_k q_k (log p(x, k) - log q_k) with 0 log 0 = 0. Taken from log q (finite for logits), not
    # log(probs): where a q_k underflows to 0, log(0) has an infinite derivative and inf * 0 is NaN.
    # A q built from probabilities with exact zeros has log q_k = -inf there: those terms are 0.
    log_q = tf.where(probs > 0, log_q, tf.zeros_like(log_q))
    return tf.reduce_sum(probs * (log_joint - log_q), axis=-1)


def mixture_objective(family, model: BernoulliMixture):
    """objective(x, idx, seed) for `fit`: the exact ELBO of every point; the seed is not needed."""

    def objective(x, idx, seed):
        return mixture_elbo(x, family(x, idx), model)

    return objective


def fit_mixture(family, model: BernoulliMixture, x, *, train_model: bool = True, train_family: bool = True, **fit_kwargs):
    """Maximize the exact ELBO with `fit` (notebook 04; give ``epochs=`` or ``steps=``; other keywords go to fit).

    ``x: [N, D]`` in {0, 1}; a local family (`LocalCategorical`) must hold exactly N rows (checked first).

    ``family``: `LocalCategorical`, `CategoricalInferenceNetwork` or ``model.posterior`` (then the ELBO equals
    log p(x) and this is maximum likelihood). ``train_model=False`` freezes the mixture and fits
    only the family's variables.
    """
    check_batch(x, model.data_dim, "fit_mixture")
    check_family_indices(family, np.arange(len(x)))  # local factors: one row per data point, checked before compiling
    variables = list(getattr(family, "trainable_variables", [])) if train_family else []
    if train_model:
        variables += model.trainable_variables
    if not variables:
        raise ValueError("nothing to train: the family has no variables and train_model=False")
    return fit(mixture_objective(family, model), variables, x, **fit_kwargs)


def cluster_purity(assignments, labels) -> float:
    """(notebook 04) Fraction of points whose label is the most common label of their cluster (1.0 = pure clusters)."""
    assignments, labels = np.asarray(assignments), np.asarray(labels)
    if assignments.shape != labels.shape or assignments.ndim != 1:
        raise ValueError(f"assignments and labels must be 1-D of equal length, got {assignments.shape} and {labels.shape}")
    hits = 0
    for c in np.unique(assignments):
        hits += np.bincount(labels[assignments == c]).max()
    return hits / len(labels)
