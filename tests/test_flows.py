"""Richer variational families: shapes, their starting points, one family shared by local and amortized flows."""
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import infernet_tutorial as it
from infernet_tutorial.flows import (
    FlowInferenceNetwork, LocalFlow, LocalFullCovGaussian, flow_distribution, flow_param_count, identity_flow_params,
)

tfd = tfp.distributions


def test_param_count_matches_the_layout():
    # d=2, H=8: base 4; per layer W1 1*8, b1 8, W2 8*2, b2 2 -> 34
    assert flow_param_count(2, layers=2, hidden=8) == 4 + 2 * 34
    # d=5: halves 2 and 3; W1 2*4, b1 4, W2 4*6, b2 6 -> 42 per layer
    assert flow_param_count(5, layers=3, hidden=4) == 10 + 3 * 42


@pytest.mark.parametrize("d", [2, 5])
def test_local_flow_starts_at_its_base_gaussian(d):
    rng = np.random.default_rng(0)
    loc, scale = rng.normal(size=(4, d)), rng.uniform(0.2, 2.0, size=(4, d))
    flow = LocalFlow(4, d, layers=3, loc=loc, scale=scale)
    q, base = flow(None, tf.constant([2, 0])), it.LocalFactors(4, d, loc=loc, scale=scale)(None, tf.constant([2, 0]))
    assert q.batch_shape == [2] and q.event_shape == [d]
    z = q.sample(2000, seed=[1, 2])
    assert z.shape == (2000, 2, d)
    np.testing.assert_allclose(q.log_prob(z).numpy(), base.log_prob(z).numpy(), atol=1e-3)
    np.testing.assert_allclose(z.numpy().mean(0), loc[[2, 0]], atol=0.2)
    np.testing.assert_allclose(z.numpy().std(0), scale[[2, 0]], rtol=0.1)


def test_flow_log_prob_is_a_normalized_density():
    """Random (non-identity) coupling weights: the density still integrates to 1 over the plane."""
    rng = np.random.default_rng(1)
    params = identity_flow_params(np.zeros((1, 2)), np.ones((1, 2)))
    params += rng.normal(0, 0.5, params.shape).astype(np.float32)
    q = flow_distribution(params, 2)
    g = np.linspace(-9, 9, 401)
    Z1, Z2 = np.meshgrid(g, g)
    z = np.stack([Z1.ravel(), Z2.ravel()], -1).astype(np.float32)[:, None, :]  # [G, 1, 2]
    mass = np.exp(q.log_prob(z).numpy()).sum() * (g[1] - g[0]) ** 2
    assert mass == pytest.approx(1.0, abs=2e-3)
    # and it is not Gaussian-with-diagonal-covariance any more: the samples are correlated or skewed
    s = q.sample(20_000, seed=[0, 1]).numpy()[:, 0]
    assert abs(np.corrcoef(s.T)[0, 1]) > 0.05 or abs(((s - s.mean(0)) ** 3).mean(0) / s.std(0) ** 3).max() > 0.1


def test_amortized_and_local_flows_are_one_family():
    """A network whose output layer ignores x (kernel 0) and a local flow with the same row give the same q."""
    net = FlowInferenceNetwork(2, hidden=16, layers=2)
    x = tf.constant(np.random.default_rng(2).uniform(size=(3, 784)).astype(np.float32))
    row = identity_flow_params(np.array([[0.5, -1.0]]), np.array([[0.3, 0.7]]), seed=4)[0]
    row[10:14] = [0.3, -0.2, 0.1, 0.4]  # some non-zero coupling weights
    net.head.kernel.assign(tf.zeros_like(net.head.kernel))
    net.head.bias.assign(row)
    local = LocalFlow.from_network(net, x)
    z = tf.random.stateless_normal([7, 3, 2], seed=[3, 4])
    np.testing.assert_allclose(net(x).log_prob(z).numpy(), local(x, tf.range(3)).log_prob(z).numpy(), atol=1e-5)
    assert local.count_params() == 3 * flow_param_count(2)


def test_network_flow_depends_on_x_and_trains_with_the_one_loop():
    it.set_random_seed(0)  # seeded weights: the rise below varies with the initialization (about 40 to 150 nats)
    net = FlowInferenceNetwork(2, hidden=16)
    x = np.random.default_rng(3).integers(0, 2, size=(20, 784)).astype(np.float32)
    prior, decoder = it.standard_normal_prior(2), it.BernoulliDecoder(2, hidden=16)
    q = net(tf.constant(x))
    assert q.batch_shape == [20] and q.event_shape == [2]
    before = it.elbo(x, q, decoder, prior, kl="mc", num_samples=200, seed=0).numpy().mean()
    history = it.train(net, decoder, prior, x, epochs=60, batch_size=10, binarize=False, kl="mc", learning_rate=1e-2, progress=False)
    after = it.elbo(x, net(tf.constant(x)), decoder, prior, kl="mc", num_samples=200, seed=0).numpy().mean()
    assert np.all(np.isfinite(history.elbo)) and after > before + 30, (before, after)


def test_full_covariance_starts_diagonal_and_gathers_rows():
    fam = LocalFullCovGaussian(3, 3, loc=np.arange(9).reshape(3, 3), scale=np.full((3, 3), 0.5))
    q = fam(None, tf.constant([1]))
    np.testing.assert_allclose(q.mean().numpy(), [[3, 4, 5]])
    np.testing.assert_allclose(q.covariance().numpy()[0], 0.25 * np.eye(3), atol=1e-5)
    assert fam.count_params() == 3 * (3 + 6)


def test_errors_users_can_cause():
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        LocalFlow(3, 1)
    with pytest.raises(ValueError, match="index out of range"):
        LocalFlow(3, 2)(None, tf.constant([0, 3]))
    with pytest.raises(ValueError, match="shape \\[batch, 72\\]"):
        flow_distribution(tf.zeros([2, 5]), 2)
    with pytest.raises(ValueError, match="layers must be a positive integer"):
        FlowInferenceNetwork(2, layers=0)
    with pytest.raises(ValueError, match="expects x of shape \\[batch, 784\\]"):
        FlowInferenceNetwork(2)(tf.zeros([2, 28, 28]))
    with pytest.raises(ValueError, match="must have shape \\[2, 2\\]"):
        LocalFullCovGaussian(2, 2, loc=np.zeros((3, 2)))


def test_full_covariance_from_a_diagonal_gaussian_is_that_gaussian():
    loc, scale = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]), np.array([[0.2, 1.5, 0.7], [2.0, 0.3, 1.0]])
    q = it.LocalFactors(2, 3, loc=loc, scale=scale)(None, tf.range(2))
    fam = LocalFullCovGaussian.from_distribution(q)
    assert fam.num_points == 2 and fam.latent_dim == 3
    full = fam(None, tf.constant([1, 0]))
    np.testing.assert_allclose(full.mean().numpy(), loc[[1, 0]], atol=1e-6)
    np.testing.assert_allclose(full.covariance().numpy(), np.stack([np.diag(scale[i] ** 2) for i in (1, 0)]), atol=1e-4)


def test_identity_flow_draws_its_base_gaussians_samples_from_one_seed():
    """Common random numbers: with one seed, a flow at identity couplings and its FFG draw the same z, so the
    notebook's L[q*_FFG] and L[q*_flow] (same seed) differ by the flow's change, not by fresh noise."""
    rng = np.random.default_rng(1)
    loc, scale = rng.normal(size=(3, 2)), rng.uniform(0.2, 2.0, size=(3, 2))
    idx = tf.range(3)
    flow = LocalFlow(3, 2, loc=loc, scale=scale)(None, idx)
    ffg = it.LocalFactors(3, 2, loc=loc, scale=scale)(None, idx)
    np.testing.assert_allclose(flow.sample(500, seed=[3, 4]).numpy(), ffg.sample(500, seed=[3, 4]).numpy(), atol=1e-3)
    assert not np.allclose(flow.sample(500, seed=[3, 5]).numpy(), ffg.sample(500, seed=[3, 4]).numpy(), atol=1e-2)
