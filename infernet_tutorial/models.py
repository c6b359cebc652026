"""Generative models p(z) p(x | z). They know nothing about the family that approximates p(z | x).

- `standard_normal_prior(d)`: p(z) = N(0, I_d), event shape [d].
- `BernoulliDecoder`: p(x | z) = prod_i Bernoulli(x_i; logits_i(z)), MLP or convolutional network.
- `LinearGaussian`: probabilistic PCA, p(x | z) = N(W z + b, sigma^2 I), with exact evidence and
  posterior; the yardstick every bound in the tests is checked against.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from .checks import check_batch, check_binary, check_latent_dim
from .data import NUM_PIXELS

tfd = tfp.distributions


def standard_normal_prior(latent_dim: int) -> tfd.Distribution:
    """p(z) = N(0, I): batch shape [], event shape [latent_dim] (notebook 01)."""
    check_latent_dim(latent_dim)
    return tfd.Independent(tfd.Normal(tf.zeros(latent_dim), tf.ones(latent_dim)), reinterpreted_batch_ndims=1)


class Trainable:
    """Something with ``trainable_variables`` (a family, a decoder, a mixture): counts its parameters one way."""

    trainable_variables: list

    def count_params(self) -> int:
        """Number of trainable numbers (float32 each): the sum of the variables' sizes."""
        return count_params(self.trainable_variables)


def count_params(variables) -> int:
    """Sum of the sizes of ``variables`` (anything with a ``shape``)."""
    return int(sum(int(np.prod(v.shape)) for v in variables))


def _mlp_decoder_net(latent_dim: int, hidden: int) -> keras.Sequential:
    return keras.Sequential(
        [keras.Input((latent_dim,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(NUM_PIXELS)],
        name="mlp_decoder",
    )


def _conv_decoder_net(latent_dim: int) -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input((latent_dim,)),
            keras.layers.Dense(7 * 7 * 32, activation="relu"),
            keras.layers.Reshape((7, 7, 32)),
            keras.layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu"),  # 14x14
            keras.layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="relu"),  # 28x28
            keras.layers.Conv2D(1, 3, padding="same"),
            keras.layers.Flatten(),
        ],
        name="conv_decoder",
    )


class BernoulliDecoder(Trainable):
    """p(x | z): ``z: [..., d]`` -> Independent Bernoulli over ``x: [..., 784]`` (notebooks 01 and 03).

    ``kind="mlp"``: Dense(hidden, relu) -> Dense(784) logits (the reference decoder, 10-256-784).
    ``kind="conv"``: Dense -> two transposed convolutions -> 28x28 logits.
    `check_data` is the decoder's own check of the data it is asked to explain: binary 784-pixel images.
    """

    def __init__(self, latent_dim: int = 10, hidden: int = 256, kind: str = "mlp"):
        check_latent_dim(latent_dim)
        if kind not in ("mlp", "conv"):
            raise ValueError(f"decoder kind must be 'mlp' or 'conv', got {kind!r}")
        self.latent_dim, self.kind = latent_dim, kind
        self.net = _mlp_decoder_net(latent_dim, hidden) if kind == "mlp" else _conv_decoder_net(latent_dim)

    def logits(self, z: tf.Tensor) -> tf.Tensor:
        """``z: [..., d]`` -> logits ``[..., 784]`` (leading sample/batch axes are flattened and restored)."""
        z = tf.convert_to_tensor(z, tf.float32)
        if z.shape.rank == 0 or (z.shape[-1] is not None and z.shape[-1] != self.latent_dim):
            raise ValueError(
                f"BernoulliDecoder(latent_dim={self.latent_dim}) expects z of shape [..., {self.latent_dim}], "
                f"got {z.shape.as_list() if z.shape.rank is not None else 'unknown'}; use the same latent_dim for prior, family and decoder"
            )
        lead = tf.shape(z)[:-1]
        out = self.net(tf.reshape(z, [-1, self.latent_dim]))
        return tf.reshape(out, tf.concat([lead, [NUM_PIXELS]], axis=0))

    def __call__(self, z: tf.Tensor) -> tfd.Distribution:
        return tfd.Independent(tfd.Bernoulli(logits=self.logits(z), dtype=tf.float32), reinterpreted_batch_ndims=1)

    def check_data(self, x, who: str, binary: bool = True) -> None:
        """``x: [batch, 784]`` and, for eager values with ``binary``, every pixel 0 or 1; else a ValueError
        naming ``who`` and the fix. The shape is checked statically (also while tracing), the values only
        eagerly (inside a compiled loop the data were checked before training started)."""
        check_batch(x, NUM_PIXELS, who, " for a Bernoulli decoder")
        if binary and tf.executing_eagerly():
            check_binary(x, who=f"{who} with a Bernoulli decoder")

    @property
    def trainable_variables(self) -> list:
        return list(self.net.trainable_variables)


class LinearGaussian:
    """Probabilistic PCA: z ~ N(0, I_d), x | z ~ N(W z + b, sigma^2 I_D) (notebooks 04 and 06).

    Exact marginal: p(x) = N(b, W W^T + sigma^2 I). Exact posterior: N(m(x), S) with
    S = (I + W^T W / sigma^2)^{-1}, m(x) = S W^T (x - b) / sigma^2. With orthogonal columns of W
    (`orthogonal` below) W^T W is diagonal, so S is diagonal and the mean-field Gaussian family
    contains the exact posterior.
    """

    def __init__(self, W: np.ndarray, b: np.ndarray, sigma: float):
        self.W = tf.constant(W, tf.float32)  # [D, d]
        self.b = tf.constant(b, tf.float32)  # [D]
        self.sigma = float(sigma)
        self.data_dim, self.latent_dim = W.shape
        self.prior = standard_normal_prior(self.latent_dim)

    @classmethod
    def orthogonal(cls, data_dim: int = 8, latent_dim: int = 3, sigma: float = 0.5, seed: int = 0) -> "LinearGaussian":
        """W with orthogonal columns of distinct lengths (posterior covariance diagonal)."""
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(data_dim, latent_dim)))
        lengths = np.linspace(2.0, 0.5, latent_dim)
        return cls(q * lengths, rng.normal(size=data_dim), sigma)

    @classmethod
    def correlated(
        cls, posterior_std=(0.6, 0.5), correlation: float = 0.9, data_dim: int = 6, sigma: float = 0.5, seed: int = 0
    ) -> "LinearGaussian":
        """A non-orthogonal W whose posterior covariance S is the given one (d = len(posterior_std)).

        S = [[s1^2, r s1 s2], [r s1 s2, s2^2]] for d = 2 (every pair gets correlation ``r`` for d > 2).
        From S = (I + W^T W / sigma^2)^{-1}: W^T W = sigma^2 (S^{-1} - I) = L L^T, and W = Q L^T with
        Q: [D, d] orthonormal columns. Needs S^{-1} - I positive definite (the posterior narrower than
        the prior in every direction).
        """
        std = np.asarray(posterior_std, np.float64)
        d = len(std)
        if std.ndim != 1 or d < 1 or np.any(std <= 0) or not -1 < correlation < 1 or data_dim < d:
            raise ValueError(
                f"need positive posterior_std, -1 < correlation < 1 and data_dim >= {d}; got {posterior_std!r}, {correlation!r}, {data_dim!r}"
            )
        corr = np.full((d, d), float(correlation)) + (1 - correlation) * np.eye(d)
        S = corr * np.outer(std, std)
        gram = sigma**2 * (np.linalg.inv(S) - np.eye(d))  # W^T W
        if np.linalg.eigvalsh(gram).min() <= 0:
            raise ValueError(
                f"posterior covariance {S.round(3).tolist()} is not narrower than the prior N(0, I) in every direction; "
                "use smaller posterior_std or a weaker correlation"
            )
        rng = np.random.default_rng(seed)
        q, _ = np.linalg.qr(rng.normal(size=(data_dim, d)))
        W = q @ np.linalg.cholesky(gram).T
        return cls(W.astype(np.float32), rng.normal(size=data_dim).astype(np.float32), sigma)

    def factorized_optimum_variances(self, divergence: str) -> tf.Tensor:
        """Variances ``[d]`` of the best factorized Gaussian q = prod_i N(m_i, v_i) for the posterior N(m, S).

        ``"kl_qp"`` (the ELBO's KL(q || p), mode-seeking): v_i = 1 / (S^{-1})_ii, never wider than S_ii.
        ``"kl_pq"`` (KL(p || q), the sleep phase, mass-covering): v_i = S_ii, the true marginal variances.
        In both directions the best mean is the exact posterior mean m(x).
        """
        S = self.posterior_cov()
        if divergence == "kl_qp":
            return 1.0 / tf.linalg.diag_part(tf.linalg.inv(S))
        if divergence == "kl_pq":
            return tf.linalg.diag_part(S)
        raise ValueError(f"divergence must be 'kl_qp' or 'kl_pq', got {divergence!r}")

    def check_data(self, x, who: str, binary: bool = True) -> None:
        """``x: [batch, D]`` float (static check; any real values)."""
        check_batch(x, self.data_dim, who)

    def __call__(self, z: tf.Tensor) -> tfd.Distribution:
        """p(x | z): ``z: [..., d]`` -> Independent Normal over ``x: [..., D]``."""
        loc = tf.linalg.matvec(self.W, tf.convert_to_tensor(z, tf.float32)) + self.b
        return tfd.Independent(tfd.Normal(loc, self.sigma), reinterpreted_batch_ndims=1)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` draws of x: [n, D] float32."""
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(n, self.latent_dim))
        eps = rng.normal(size=(n, self.data_dim))
        return (z @ self.W.numpy().T + self.b.numpy() + self.sigma * eps).astype(np.float32)

    def marginal(self) -> tfd.Distribution:
        cov = tf.matmul(self.W, self.W, transpose_b=True) + self.sigma**2 * tf.eye(self.data_dim)
        return tfd.MultivariateNormalTriL(self.b, tf.linalg.cholesky(cov))

    def log_evidence(self, x) -> tf.Tensor:
        """Exact log p(x): ``x: [n, D]`` -> ``[n]`` nats."""
        return self.marginal().log_prob(tf.convert_to_tensor(x, tf.float32))

    def posterior_cov(self) -> tf.Tensor:
        """S = (I + W^T W / sigma^2)^{-1}: [d, d]."""
        prec = tf.eye(self.latent_dim) + tf.matmul(self.W, self.W, transpose_a=True) / self.sigma**2
        return tf.linalg.inv(prec)

    def posterior(self, x) -> tfd.Distribution:
        """Exact p(z | x): batch [n], event [d] (full covariance)."""
        S = self.posterior_cov()
        x = tf.convert_to_tensor(x, tf.float32)
        mean = tf.linalg.matvec(tf.matmul(S, self.W, transpose_b=True), x - self.b) / self.sigma**2
        return tfd.MultivariateNormalTriL(mean, tf.linalg.cholesky(S))

    def exact_elbo(self, x, q: tfd.Distribution) -> tf.Tensor:
        """The ELBO of a diagonal Gaussian q in closed form (no sampling): ``[n]`` nats.

        E_q[log N(x; W z + b, sigma^2 I)] = log N(x; W m + b, sigma^2 I) - tr(W^T W diag(s^2)) / (2 sigma^2),
        minus the analytic KL(q || p(z)).
        """
        x = tf.convert_to_tensor(x, tf.float32)
        m, s = q.mean(), q.stddev()
        expected_ll = self(m).log_prob(x) - tf.reduce_sum(
            tf.reduce_sum(self.W**2, axis=0) * s**2, axis=-1
        ) / (2 * self.sigma**2)
        return expected_ll - q.kl_divergence(self.prior)

