"""The grid posterior against closed forms: the 2-D linear-Gaussian model has an exact p(z | x) and p(x)."""
import numpy as np
import pytest
import tensorflow as tf

import infernet_tutorial as it
from infernet_tutorial.posterior_grid import posterior_on_grid


@pytest.fixture(scope="module")
def model():
    return it.LinearGaussian.orthogonal(data_dim=6, latent_dim=2, sigma=0.3, seed=3)


@pytest.fixture(scope="module")
def x(model):
    return model.sample(3, seed=4)


def test_log_evidence_by_quadrature_is_exact(model, x):
    exact = model.log_evidence(x).numpy()
    for xi, e in zip(x, exact):
        post = posterior_on_grid(xi, model, model.prior)
        assert abs(post.log_evidence - e) < 1e-4, (post.log_evidence, e)
        np.testing.assert_allclose(post.weights().sum(), 1.0, atol=1e-9)


def test_moments_by_quadrature_match_the_exact_posterior(model, x):
    exact = model.posterior(x)
    means, S = exact.mean().numpy(), model.posterior_cov().numpy()
    for xi, m in zip(x, means):
        post = posterior_on_grid(xi, model, model.prior)
        np.testing.assert_allclose(post.mean(), m, atol=1e-4)
        np.testing.assert_allclose(post.cov(), S, atol=1e-4)


def test_a_narrow_posterior_is_resolved_by_the_second_pass():
    # sigma = 0.02: posterior std ~ 0.01, far below the coarse grid's spacing of 0.04
    model = it.LinearGaussian.orthogonal(data_dim=6, latent_dim=2, sigma=0.02, seed=3)
    x = model.sample(1, seed=5)
    post = posterior_on_grid(x[0], model, model.prior)
    assert abs(post.log_evidence - float(model.log_evidence(x)[0])) < 1e-3
    assert post.z1[-1] - post.z1[0] < 0.5  # the fine box hugs the posterior


def test_bounds_of_a_bernoulli_model_sit_below_the_quadrature_evidence():
    """ELBO <= IWAE_k <= log p(x) (up to Monte Carlo error) for an untrained 2-D decoder."""
    tf.keras.utils.set_random_seed(0)
    prior, decoder, net = it.standard_normal_prior(2), it.BernoulliDecoder(2), it.MLPInferenceNetwork(2)
    x = (np.random.default_rng(0).uniform(size=(1, 784)) < 0.2).astype(np.float32)
    log_px = posterior_on_grid(x[0], decoder, prior).log_evidence
    q = net(x)
    e = float(it.elbo(x, q, decoder, prior, num_samples=2000, seed=1)[0])
    w = float(it.iwae_bound(x, q, decoder, prior, k=5000, chunk=500, seed=2)[0])
    assert e < w < log_px + 0.05, (e, w, log_px)
    assert log_px - w < 0.5 * (log_px - e)  # many samples close most of the ELBO's gap


def test_rejects_a_latent_that_is_not_two_dimensional():
    with pytest.raises(ValueError, match="2-D latent"):
        posterior_on_grid(np.zeros(784, np.float32), it.BernoulliDecoder(3), it.standard_normal_prior(3))
