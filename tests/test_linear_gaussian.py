"""The linear-Gaussian model has an exact posterior and evidence: every bound is checked against them.

With orthogonal columns of W the posterior covariance is diagonal, so the mean-field Gaussian family
contains the exact posterior: local VI and a linear inference network must reach log p(x), and an
inference network that cannot express the posterior must stay below by a computable amount.
"""
import numpy as np
import pytest
import tensorflow as tf

import infernet_tutorial as it
from infernet_tutorial.families import diag_gaussian

D, d, N = 8, 3, 200


@pytest.fixture(scope="module")
def model():
    return it.LinearGaussian.orthogonal(data_dim=D, latent_dim=d, sigma=0.5, seed=1)


@pytest.fixture(scope="module")
def x(model):
    return model.sample(N, seed=2)


def exact_objective(model, family):
    return lambda xb, idx, seed: model.exact_elbo(xb, family(xb, idx))


def test_posterior_covariance_is_diagonal(model):
    S = model.posterior_cov().numpy()
    assert np.allclose(S, np.diag(np.diag(S)), atol=1e-6)
    # distinct column lengths give distinct posterior variances, all below the prior's 1
    assert len(set(np.round(np.diag(S), 4))) == d and np.all(np.diag(S) < 1)


def test_log_evidence_matches_numpy(model, x):
    W, b, s2 = model.W.numpy().astype(np.float64), model.b.numpy(), model.sigma**2
    C = W @ W.T + s2 * np.eye(D)
    diff = x - b
    _, logdet = np.linalg.slogdet(C)
    expected = -0.5 * (D * np.log(2 * np.pi) + logdet + np.einsum("ni,ij,nj->n", diff, np.linalg.inv(C), diff))
    np.testing.assert_allclose(model.log_evidence(x).numpy(), expected, rtol=1e-5, atol=1e-4)


def test_elbo_equals_evidence_at_the_exact_posterior(model, x):
    post = model.posterior(x)
    q = diag_gaussian(post.mean(), tf.sqrt(tf.linalg.diag_part(model.posterior_cov())) * tf.ones([N, d]))
    np.testing.assert_allclose(model.exact_elbo(x, q).numpy(), model.log_evidence(x).numpy(), atol=2e-4)


def test_elbo_below_evidence_for_random_q(model, x):
    rng = np.random.default_rng(0)
    logp = model.log_evidence(x).numpy()
    for _ in range(5):
        q = diag_gaussian(rng.normal(size=(N, d)).astype(np.float32), rng.uniform(0.05, 3, size=(N, d)).astype(np.float32))
        gap = logp - model.exact_elbo(x, q).numpy()
        assert np.all(gap > 0), gap.min()


@pytest.mark.parametrize("kl", ["analytic", "mc"])
def test_monte_carlo_elbo_agrees_with_closed_form(model, x, kl):
    rng = np.random.default_rng(3)
    q = diag_gaussian(rng.normal(size=(N, d)).astype(np.float32), rng.uniform(0.2, 1.5, size=(N, d)).astype(np.float32))
    exact = model.exact_elbo(x, q).numpy()
    draws = np.stack([it.elbo(x, q, model, model.prior, kl=kl, seed=s).numpy() for s in range(400)])  # [400, N]
    err = draws.mean(0) - exact
    se = draws.std(0, ddof=1) / np.sqrt(len(draws))
    assert np.all(np.abs(err) < 5 * se + 1e-4)
    assert abs(err.mean()) < 4 * np.sqrt(np.sum(se**2)) / N + 1e-4


def test_iwae_is_exact_at_the_posterior_and_tightens_with_k(model, x):
    logp = model.log_evidence(x).numpy()
    post = model.posterior(x)
    exact_q = diag_gaussian(post.mean(), tf.sqrt(tf.linalg.diag_part(model.posterior_cov())) * tf.ones([N, d]))
    # importance weights are constant when q is the posterior: the bound is exact for every k and chunk
    np.testing.assert_allclose(it.iwae_bound(x, exact_q, model, model.prior, k=50, chunk=7, seed=0).numpy(), logp, atol=1e-3)
    poor_q = diag_gaussian(post.mean() + 0.3, tf.ones([N, d]))
    bounds = [it.iwae_bound(x, poor_q, model, model.prior, k=k, chunk=100, seed=k).numpy().mean() for k in (1, 10, 1000)]
    elbo = model.exact_elbo(x, poor_q).numpy().mean()
    assert abs(bounds[0] - elbo) < 0.1  # IWAE_1 is the ELBO
    assert bounds[0] < bounds[1] < bounds[2] <= logp.mean() + 1e-3
    assert logp.mean() - bounds[2] < 0.25 * (logp.mean() - elbo)


def test_local_vi_reaches_the_evidence(model, x):
    factors = it.LocalFactors(N, d)
    it.fit(exact_objective(model, factors), factors.trainable_variables, x, steps=1500, batch_size=N,
           learning_rate=0.05, progress=False)
    gap = model.log_evidence(x).numpy() - model.exact_elbo(x, factors(x, np.arange(N))).numpy()
    assert np.all(gap > -1e-4)
    assert gap.mean() < 0.01


def test_linear_encoder_reaches_the_evidence(model, x):
    enc = it.LinearInferenceNetwork(d, D)
    it.fit(exact_objective(model, enc), enc.trainable_variables, x, steps=3000, batch_size=N,
           learning_rate=0.03, progress=False)
    gap = model.log_evidence(x).numpy() - model.exact_elbo(x, enc(x)).numpy()
    assert gap.mean() < 0.01
    # and it generalizes: new points from the model get the exact posterior by one forward pass
    x_new = model.sample(100, seed=9)
    assert (model.log_evidence(x_new).numpy() - model.exact_elbo(x_new, enc(x_new)).numpy()).mean() < 0.01


def test_restricted_encoder_stays_below_by_the_predicted_gap(model, x):
    """Scale pinned to 1: the best it can do misses by KL(N(m, I) || N(m, S)), never less."""
    enc = it.LinearInferenceNetwork(d, D, fixed_scale=1.0)
    it.fit(exact_objective(model, enc), enc.trainable_variables, x, steps=3000, batch_size=N,
           learning_rate=0.03, progress=False)
    s2 = np.diag(model.posterior_cov().numpy())
    predicted = 0.5 * np.sum(1 / s2 - 1 + np.log(s2))  # min over means of KL(N(m,1)||N(m,S))
    gap = model.log_evidence(x).numpy() - model.exact_elbo(x, enc(x)).numpy()
    assert predicted > 0.5
    assert np.all(gap >= predicted - 1e-3)
    assert gap.mean() == pytest.approx(predicted, abs=0.01)
