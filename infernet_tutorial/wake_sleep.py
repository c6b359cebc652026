"""Training an inference network without the ELBO: the sleep phase, wake-sleep, reweighted wake-sleep.

Every function here returns an objective for the one loop, ``fit(objective, variables, data)``,
which follows the gradient of ``mean objective(x, idx, seed)`` over ``variables``:

- `sleep_objective`: ignores the data batch (only its size is used), dreams (z, x) ~ p(z) p(x | z)
  from the step's seed and returns log q(z | x). Maximizing it minimizes
  E_p(x)[KL(p(z | x) || q(z | x))] (Hinton et al. 1995; Stuhlmueller et al. 2013; Le et al. 2017):
  q is fitted to the *model's* data, in the mass-covering direction of the KL.
- `wake_objective`: log p(x | z) + log p(z) at z ~ q(z | x) on the *real* batch, z held fixed:
  trains the decoder (and a learnable prior), never q.
- `wake_sleep_objective`: both at once (Hinton et al. 1995): the wake term moves the decoder, the
  sleep term moves q; one `fit` call over q's and the decoder's variables trains both.
- `rws_objective`: reweighted wake-sleep (Bornschein & Bengio 2015): k samples from q, self-normalized
  importance weights w_i (held fixed), wake update sum_i w_i log p(x, z_i) for the model and
  sum_i w_i log q(z_i | x) for q (the wake-phase q update), optionally with the sleep term.

So that `fit`'s curve means the same thing for every method, the *value* of the wake objectives is a
Monte Carlo ELBO estimate on the real batch (what `History.elbo` records); their *gradient* is that of
the algorithm. The two are joined with ``t - stop_gradient(t)``, a term worth 0 nats that carries t's
gradient.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import tensorflow as tf
import tensorflow_probability as tfp

from .checks import check_positive_int
from .families import IndexedFamily

tfd = tfp.distributions

Q_UPDATES = ("wake", "sleep", "both")


def gradient_only(t: tf.Tensor) -> tf.Tensor:
    """A tensor worth exactly 0 whose gradient is that of ``t`` (adds t's gradient, not its value)."""
    return t - tf.stop_gradient(t)


def _fold(seed, i: int) -> tf.Tensor:
    return tf.random.experimental.stateless_fold_in(tf.convert_to_tensor(seed, tf.int32), i)


def _check_amortized(family, who: str) -> None:
    if isinstance(family, IndexedFamily):  # its rows are looked up by index
        raise ValueError(
            f"{who} trains q on dreamed data points, which have no index in the data set; "
            "use an inference network (e.g. MLPInferenceNetwork or LinearInferenceNetwork), not LocalFactors"
        )


def dream(decoder, prior: tfd.Distribution, n, seed) -> tuple[tf.Tensor, tf.Tensor]:
    """(z, x) ~ p(z) p(x | z): ``z: [n, d]``, ``x: [n, D]``, both without gradient (the model's data)."""
    z = prior.sample(n, seed=_fold(seed, 0))
    x = decoder(z).sample(seed=_fold(seed, 1))
    return tf.stop_gradient(z), tf.stop_gradient(tf.cast(x, tf.float32))


def _batch_size(x):
    return x.shape[0] if x.shape[0] is not None else tf.shape(x)[0]


def sleep_objective(family, decoder, prior: tfd.Distribution):
    """objective(x, idx, seed) = log q(z_n | x_n) at dreams (z_n, x_n) ~ p(z) p(x | z): ``[batch]`` nats (notebook 06).

    The batch ``x`` supplies only its size. In expectation this is
    -E_p(x)[KL(p(z | x) || q(z | x))] - E_p(x)[H(p(z | x))], so maximizing it over q's variables
    minimizes the mass-covering KL on the model's own data. The decoder receives no gradient.
    """
    _check_amortized(family, "sleep_objective")

    def objective(x, idx, seed):
        z, x_dream = dream(decoder, prior, _batch_size(x), _fold(seed, 7))
        return family(x_dream, idx).log_prob(z)

    return objective


def _wake_terms(x, q, decoder, prior, seed):
    """One z ~ q(z | x), held fixed: (log p(x, z) [b] with gradient to the model, log q(z | x) [b] without)."""
    z = tf.stop_gradient(q.sample(seed=_fold(seed, 3)))
    log_joint = decoder(z).log_prob(x) + prior.log_prob(z)
    return log_joint, tf.stop_gradient(q.log_prob(z))


def wake_objective(family, decoder, prior: tfd.Distribution):
    """objective(x, idx, seed) (notebook 06): value = one-sample ELBO estimate log p(x, z) - log q(z | x), z ~ q(z | x);
    gradient = that of log p(x | z) + log p(z) at the fixed z (the decoder's wake update; none for q).
    The draw is ``q.sample(seed=tf.random.experimental.stateless_fold_in(seed, 3))``, so a caller can reproduce it."""

    def objective(x, idx, seed):
        log_joint, log_q = _wake_terms(x, family(x, idx), decoder, prior, seed)
        return log_joint - log_q

    return objective


def wake_sleep_objective(family, decoder, prior: tfd.Distribution):
    """Wake-sleep in one objective (Hinton et al. 1995; notebook 06): optimize over family + decoder variables.

    value = one-sample ELBO estimate on the real batch (as `wake_objective`);
    gradient = wake term (decoder: log p(x | z) + log p(z), z ~ q(z | x) fixed)
             + sleep term (q: log q(z' | x') on dreams (z', x') ~ p, see `sleep_objective`).
    """
    wake = wake_objective(family, decoder, prior)
    sleep = sleep_objective(family, decoder, prior)

    def objective(x, idx, seed):
        return wake(x, idx, seed) + gradient_only(sleep(x, idx, seed))

    return objective


def rws_objective(family, decoder, prior: tfd.Distribution, k: int = 5, q_update: str = "wake"):
    """Reweighted wake-sleep (Bornschein & Bengio 2015; notebook 06): optimize over family + decoder variables.

    z_1..z_k ~ q(z | x) held fixed, log w_i = log p(x, z_i) - log q(z_i | x), normalized weights
    w~_i = softmax(log w)_i held fixed. value = mean_i log w_i (a k-sample ELBO estimate);
    gradient = sum_i w~_i grad log p(x, z_i)  (model: an importance-sampled grad log p(x))
             + q's update: ``"wake"``: sum_i w~_i grad log q(z_i | x) (KL(p(z|x) || q) on real x),
               ``"sleep"``: the sleep term, ``"both"``: their average (the paper's wake+sleep q update).
    """
    k = check_positive_int(k, "k", " (the number of importance samples)")
    if q_update not in Q_UPDATES:
        raise ValueError(f"q_update must be one of {Q_UPDATES}, got {q_update!r}")
    sleep = sleep_objective(family, decoder, prior) if q_update != "wake" else None

    def objective(x, idx, seed):
        q = family(x, idx)
        z = tf.stop_gradient(q.sample(k, seed=_fold(seed, 3)))  # [k, b, d]
        log_joint = decoder(z).log_prob(x) + prior.log_prob(z)  # [k, b]
        log_q = q.log_prob(z)  # [k, b]
        log_w = tf.stop_gradient(log_joint - log_q)
        w = tf.nn.softmax(log_w, axis=0)
        model_term = tf.reduce_sum(w * log_joint, axis=0)
        wake_q = tf.reduce_sum(w * log_q, axis=0)
        if q_update == "wake":
            q_term = wake_q
        elif q_update == "sleep":
            q_term = sleep(x, idx, seed)
        else:
            q_term = 0.5 * (wake_q + sleep(x, idx, seed))
        return tf.reduce_mean(log_w, axis=0) + gradient_only(model_term + q_term)

    return objective
