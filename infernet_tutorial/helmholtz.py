"""The Helmholtz machine (Dayan et al. 1995): binary latent units, trained by wake-sleep.

    z ~ prod_j Bernoulli(z_j; sigmoid(b_j))          `bernoulli_prior(d)`, learnable biases b
    x | z ~ prod_i Bernoulli(x_i; logits(z))          `BernoulliDecoder(d)` applied to z in {0, 1}^d
    q(z | x) = prod_j Bernoulli(z_j; logits_j(x))     `BernoulliInferenceNetwork(d)`

A sigmoid belief network with binary latents has no reparameterization, so the ELBO's pathwise
gradient does not exist for q; the sleep phase needs none: it maximizes log q(z | x) at dreams
(z, x) ~ p, a plain supervised log-likelihood. `wake_sleep.wake_sleep_objective` and
`wake_sleep.rws_objective` train these parts as they are, with the prior's biases among the variables.
With few units (d <= 16) `exact_log_evidence` and `exact_posterior_marginals` enumerate all 2^d states.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import check_batch, check_latent_dim
from .data import NUM_PIXELS
from .models import Trainable

tfd = tfp.distributions


def binary_units(logits: tf.Tensor) -> tfd.Distribution:
    """Independent Bernoulli units with float32 samples in {0, 1}: batch ``logits.shape[:-1]``, event ``[d]``."""
    return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32), reinterpreted_batch_ndims=1)


def bernoulli_prior(latent_dim: int, name: str = "prior") -> tfd.Distribution:
    """p(z) = prod_j Bernoulli(z_j; sigmoid(b_j)), event shape ``[d]``, with learnable biases b (zeros at first; notebook 06).

    The biases are a `tf.Variable` inside the distribution: ``prior.trainable_variables`` lists them, so
    the wake phase can fit the prior like the decoder.
    """
    check_latent_dim(latent_dim)
    return binary_units(tf.Variable(tf.zeros([latent_dim]), name=f"{name}/logits"))


class BernoulliInferenceNetwork(Trainable):
    """The recognition network (notebook 06): ``x: [batch, 784]`` -> Dense(hidden, relu) -> Dense(d) logits of q(z | x)."""

    def __init__(self, latent_dim: int, hidden: int = 256, input_dim: int = NUM_PIXELS):
        check_latent_dim(latent_dim)
        self.latent_dim, self.input_dim = latent_dim, input_dim
        self.net = keras.Sequential(
            [keras.Input((input_dim,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(latent_dim)],
            name="bernoulli_inference_network",
        )

    def __call__(self, x, idx=None) -> tfd.Distribution:
        check_batch(x, self.input_dim, "BernoulliInferenceNetwork")
        return binary_units(self.net(x))

    @property
    def trainable_variables(self) -> list:
        return list(self.net.trainable_variables)


MAX_ENUMERATED_UNITS = 16


def all_binary_states(latent_dim: int) -> tf.Tensor:
    """Every z in {0, 1}^d: ``[2^d, d]`` float32 (d <= 16), row r the binary digits of r."""
    check_latent_dim(latent_dim)
    if latent_dim > MAX_ENUMERATED_UNITS:
        raise ValueError(f"exact enumeration needs latent_dim <= {MAX_ENUMERATED_UNITS} (2^d states), got {latent_dim}")
    r = tf.range(2**latent_dim)[:, None]
    return tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(r, tf.range(latent_dim)[None, :]), 1), tf.float32)


def exact_log_joint(x, decoder, prior: tfd.Distribution) -> tf.Tensor:
    """log p(x, z) for every binary z: ``x: [b, D]`` -> ``[b, 2^d]`` nats (small d: the exact yardstick)."""
    z = all_binary_states(int(prior.event_shape[0]))  # [S, d]
    x = tf.convert_to_tensor(x, tf.float32)
    return tf.transpose(decoder(z[:, None, :]).log_prob(x) + prior.log_prob(z)[:, None])  # [S, b] -> [b, S]


def exact_log_evidence(x, decoder, prior: tfd.Distribution) -> tf.Tensor:
    """log p(x) = log sum_z p(x, z) by enumerating all 2^d binary states: ``[b]`` nats."""
    return tf.reduce_logsumexp(exact_log_joint(x, decoder, prior), axis=-1)


def exact_posterior_marginals(x, decoder, prior: tfd.Distribution) -> tf.Tensor:
    """p(z_j = 1 | x) by enumeration: ``[b, d]``. The KL(p || q)-optimal factorized q has exactly these."""
    post = tf.nn.softmax(exact_log_joint(x, decoder, prior), axis=-1)  # [b, S]
    return tf.matmul(post, all_binary_states(int(prior.event_shape[0])))
