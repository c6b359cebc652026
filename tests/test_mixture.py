"""The mixture model of notebook 04: exact evidence, exact ELBO, and amortized vs local q(cluster | x)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import infernet_tutorial as it
from infernet_tutorial import mixture


def _brute_log_joint(x, mixing_logits, pixel_logits):
    """log p(x, c=k) by the textbook formula in numpy: [n, K]."""
    pi = np.exp(mixing_logits - np.log(np.sum(np.exp(mixing_logits))))
    mu = 1 / (1 + np.exp(-pixel_logits))
    log_lik = x @ np.log(mu).T + (1 - x) @ np.log1p(-mu).T
    return log_lik + np.log(pi)


@pytest.fixture()
def small_model():
    model = it.BernoulliMixture(3, data_dim=6, seed=1)
    rng = np.random.default_rng(0)
    model.mixing_logits.assign(np.array([0.3, -0.2, 0.5], np.float32))
    model.pixel_logits.assign(rng.normal(scale=2.0, size=(3, 6)).astype(np.float32))
    x = (rng.uniform(size=(20, 6)) < 0.5).astype(np.float32)
    return model, x


def test_log_joint_and_evidence_match_brute_force(small_model):
    model, x = small_model
    expected = _brute_log_joint(x.astype(np.float64), model.mixing_logits.numpy().astype(np.float64),
                                model.pixel_logits.numpy().astype(np.float64))
    np.testing.assert_allclose(model.log_joint(x).numpy(), expected, rtol=1e-5, atol=1e-4)
    ev = np.log(np.sum(np.exp(expected), axis=1))
    np.testing.assert_allclose(model.log_evidence(x).numpy(), ev, rtol=1e-5, atol=1e-4)
    # the evidence of all 2^6 binary vectors sums to one
    grid = np.array([[(i >> j) & 1 for j in range(6)] for i in range(64)], np.float32)
    assert np.exp(model.log_evidence(grid).numpy()).sum() == pytest.approx(1.0, abs=1e-5)


def test_elbo_is_evidence_minus_kl_to_posterior(small_model):
    model, x = small_model
    log_ev = model.log_evidence(x).numpy()
    exact = mixture.mixture_elbo(x, model.posterior(x), model).numpy()
    np.testing.assert_allclose(exact, log_ev, atol=1e-4)
    rng = np.random.default_rng(3)
    q_probs = rng.dirichlet(np.ones(3), size=len(x)).astype(np.float32)
    import tensorflow_probability as tfp

    q = tfp.distributions.Categorical(probs=q_probs)
    post = model.posterior(x).probs_parameter().numpy()
    kl = np.sum(q_probs * (np.log(q_probs) - np.log(post)), axis=1)
    np.testing.assert_allclose(mixture.mixture_elbo(x, q, model).numpy(), log_ev - kl, atol=1e-3)
    assert np.all(kl > 0)
    # a one-hot q (0 log 0 = 0) gives log p(x, c=k) exactly
    one_hot = tfp.distributions.Categorical(probs=np.eye(3, dtype=np.float32)[np.zeros(len(x), int)])
    np.testing.assert_allclose(mixture.mixture_elbo(x, one_hot, model).numpy(), model.log_joint(x).numpy()[:, 0], atol=1e-4)


def test_local_factors_reach_the_exact_posterior_through_fit(small_model):
    model, x = small_model
    local = it.LocalCategorical(len(x), 3)
    assert local.count_params() == 60
    before = mixture.mixture_elbo(x, local(x, np.arange(len(x))), model).numpy()
    history = it.fit_mixture(local, model, x, train_model=False, steps=300, batch_size=len(x), learning_rate=0.1, progress=False)
    assert isinstance(history, it.History) and history.steps == 300
    after = mixture.mixture_elbo(x, local(x, np.arange(len(x))), model).numpy()
    gap = model.log_evidence(x).numpy() - after
    assert np.all(gap >= -1e-4) and gap.max() < 1e-2
    assert np.mean(after) > np.mean(before) + 0.1
    np.testing.assert_allclose(tf.nn.softmax(local.logits).numpy(), model.posterior(x).probs_parameter().numpy(), atol=0.05)
    # the frozen model did not move
    np.testing.assert_allclose(model.mixing_logits.numpy(), [0.3, -0.2, 0.5], atol=1e-7)


def test_maximum_likelihood_and_encoder_on_data_from_a_known_mixture():
    truth = it.BernoulliMixture(4, data_dim=30, seed=0)
    rng = np.random.default_rng(0)
    truth.pixel_logits.assign((3.0 * np.sign(rng.normal(size=(4, 30)))).astype(np.float32))
    x, c = truth.sample(2000, seed=1)
    assert x.shape == (2000, 30) and set(np.unique(x)) <= {0.0, 1.0}
    assert np.bincount(c, minlength=4).min() > 400  # uniform mixing weights

    model = it.BernoulliMixture(4, data_dim=30, init_data=x, seed=2)
    start = float(tf.reduce_mean(model.log_evidence(x)))
    it.fit_mixture(model.posterior, model, x, epochs=20, batch_size=100, learning_rate=0.05, progress=False)
    learned = float(tf.reduce_mean(model.log_evidence(x)))
    true_ll = float(tf.reduce_mean(truth.log_evidence(x)))
    assert learned > start + 1.0
    assert learned > true_ll - 0.5  # maximum likelihood reaches (or beats, on its own data) the truth
    assert it.cluster_purity(np.argmax(model.log_joint(x).numpy(), 1), c) > 0.95

    encoder = it.CategoricalInferenceNetwork(4, hidden=16, input_dim=30)
    assert encoder.count_params() == 30 * 16 + 16 + 16 * 4 + 4
    frozen = [v.numpy().copy() for v in model.trainable_variables]
    it.fit_mixture(encoder, model, x, train_model=False, epochs=20, batch_size=100, learning_rate=1e-2, progress=False)
    for before, v in zip(frozen, model.trainable_variables):
        np.testing.assert_array_equal(before, v.numpy())
    gap = model.log_evidence(x).numpy() - mixture.mixture_elbo(x, encoder(x), model).numpy()
    assert np.all(gap > -1e-3)
    assert gap.mean() < 0.05  # well-separated clusters: the network learns the posterior almost exactly
    agree = np.mean(np.argmax(encoder.logits(x).numpy(), 1) == np.argmax(model.log_joint(x).numpy(), 1))
    assert agree > 0.98


def test_semi_amortized_start_copies_q():
    import tensorflow_probability as tfp

    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    local = it.LocalCategorical.from_distribution(tfp.distributions.Categorical(probs=probs))
    np.testing.assert_allclose(local(None, np.array([0, 1])).probs_parameter().numpy(), probs, atol=1e-6)


def test_errors_are_explained():
    with pytest.raises(ValueError, match="num_components must be an integer >= 2"):
        it.BernoulliMixture(1)
    with pytest.raises(ValueError, match=r"init_data must have shape \[n >= 5, 784\]"):
        it.BernoulliMixture(5, init_data=np.zeros((3, 784)))
    local = it.LocalCategorical(4, 2)
    with pytest.raises(ValueError, match="index out of range: got indices 0..4, valid are 0..3"):
        local(None, np.array([0, 4]))
    with pytest.raises(ValueError, match="initial logits must have shape"):
        it.LocalCategorical(4, 2, logits=np.zeros((4, 3)))
    model = it.BernoulliMixture(3, data_dim=6)
    with pytest.raises(ValueError, match=r"expects x of shape \[batch, 6\]"):
        model.log_joint(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="nothing to train"):
        it.fit_mixture(model.posterior, model, np.zeros((4, 6), np.float32), train_model=False, steps=1, batch_size=2)
    with pytest.raises(ValueError, match="q has 2 categories but the model has 3 components"):
        import tensorflow_probability as tfp

        mixture.mixture_elbo(np.zeros((1, 6), np.float32), tfp.distributions.Categorical(logits=[[0.0, 0.0]]), model)


def test_cluster_purity():
    assert it.cluster_purity([0, 0, 1, 1], [3, 3, 5, 5]) == 1.0
    assert it.cluster_purity([0, 0, 0, 0], [1, 1, 2, 3]) == 0.5
    assert it.cluster_purity([0, 1, 1, 1], [1, 1, 2, 2]) == 0.75
    with pytest.raises(ValueError, match="equal length"):
        it.cluster_purity([0, 1], [1])


def test_gradient_is_finite_when_posterior_probabilities_underflow_to_zero():
    """784 pixels make p(c|x) one-hot in float32 (the other q_k are exactly 0): the ELBO's gradient
    must stay finite, else `fit` stops at step 0 (it did: 0 * log 0 has a NaN derivative)."""
    rng = np.random.default_rng(0)
    x = (rng.uniform(size=(200, 784)) < 0.3).astype(np.float32)
    model = it.BernoulliMixture(5, init_data=x, seed=1)
    assert np.min(model.posterior(x).probs_parameter().numpy()) == 0.0  # really underflows
    with tf.GradientTape() as tape:
        value = tf.reduce_mean(mixture.mixture_elbo(x, model.posterior(x), model))
    grads = tape.gradient(value, model.trainable_variables)
    assert all(np.all(np.isfinite(g.numpy())) for g in grads)
    np.testing.assert_allclose(value.numpy(), np.mean(model.log_evidence(x).numpy()), rtol=1e-5)
    history = it.fit_mixture(model.posterior, model, x, steps=20, batch_size=100, learning_rate=0.05, progress=False)
    assert history.diverged_at is None and history.steps == 20


def test_tempered_start_softens_q_and_keeps_its_ranking():
    import tensorflow_probability as tfp

    probs = np.array([[0.7, 0.2, 0.1], [1.0, 0.0, 0.0]], np.float32)
    q = tfp.distributions.Categorical(probs=probs)
    for t in (1.0, 2.0, 10.0):
        local = it.LocalCategorical.from_distribution(q, temperature=t)
        expected = np.maximum(probs, 1e-6) ** (1 / t)  # softmax(log p / t) is proportional to p^(1/t)
        expected /= expected.sum(1, keepdims=True)
        np.testing.assert_allclose(local(None, np.array([0, 1])).probs_parameter().numpy(), expected, rtol=1e-5, atol=1e-7)
    softened = it.LocalCategorical.from_distribution(q, temperature=10.0).logits.numpy()
    np.testing.assert_allclose(softened[1], [0.0, np.log(1e-6) / 10, np.log(1e-6) / 10], rtol=1e-5)
    for bad in (0, -1.0, float("nan"), True, "2"):
        with pytest.raises(ValueError, match="temperature must be a positive number"):
            it.LocalCategorical.from_distribution(q, temperature=bad)


def test_tempered_start_recovers_from_a_confident_wrong_q():
    """q puts 1 - 1e-6 on the wrong one of two clusters whose likelihoods differ by 20 nats.

    The ELBO's gradient for the right cluster's logit is proportional to its probability, so from
    the copied start Adam hardly moves it; the tempered start reaches the exact posterior."""
    import tensorflow_probability as tfp

    model = it.BernoulliMixture(2, data_dim=20, seed=0)
    model.pixel_logits.assign(np.stack([np.full(20, 2.0), np.full(20, -2.0)]).astype(np.float32))
    x = np.tile(np.r_[np.ones(15), np.zeros(5)].astype(np.float32), (1000, 1))  # 15 of 20 ink: cluster 0
    log_joint = model.log_joint(x).numpy()
    assert np.all(log_joint[:, 0] - log_joint[:, 1] == pytest.approx(20.0, abs=1e-4))  # 15 * 4 - 20 * (softplus(2) - softplus(-2)): one-hot
    wrong = tfp.distributions.Categorical(probs=np.tile([[1e-6, 1 - 1e-6]], (1000, 1)).astype(np.float32))
    gaps = {}
    for t in (1.0, 10.0):
        local = it.LocalCategorical.from_distribution(wrong, temperature=t)
        it.fit_mixture(local, model, x, train_model=False, steps=40, batch_size=1000, learning_rate=0.5, progress=False)
        elbo = it.mixture_elbo(x, local(x, np.arange(1000)), model).numpy()
        gaps[t] = float(np.mean(model.log_evidence(x).numpy() - elbo))
    assert gaps[10.0] < 0.01 < 5.0 < gaps[1.0], gaps
