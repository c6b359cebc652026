"""ELBO and IWAE on the MNIST model: estimators agree, bounds are ordered, shapes are right."""
import numpy as np
import pytest
import tensorflow as tf

import infernet_tutorial as it

from conftest import small_model


@pytest.fixture(scope="module")
def setup(mnist_dir):
    x, _ = it.load_mnist("test", n=64, binarize="sample", data_dir=mnist_dir)
    return (x, *small_model(10, hidden=256, seed=0))


def test_elbo_shapes_and_sign(setup):
    x, enc, dec, prior = setup
    q = enc(x)
    assert q.batch_shape == (64,) and q.event_shape == (10,)
    for kl in ("analytic", "mc"):
        value = it.elbo(x, q, dec, prior, kl=kl, num_samples=3, seed=0)
        assert value.shape == (64,)
        assert np.all(value.numpy() < 0)  # log-probabilities of binary images


def test_analytic_and_monte_carlo_kl_agree_within_standard_error(setup):
    x, enc, dec, prior = setup
    one = np.repeat(x[:1], 4000, axis=0)  # 4,000 independent single-sample estimates for one digit
    q = enc(one)
    a = it.elbo(one, q, dec, prior, kl="analytic", seed=1).numpy()
    m = it.elbo(one, q, dec, prior, kl="mc", seed=2).numpy()
    se = np.sqrt(a.var(ddof=1) / len(a) + m.var(ddof=1) / len(m))
    assert abs(a.mean() - m.mean()) < 4 * se
    assert a.std() < m.std()  # the analytic KL removes part of the noise


def test_analytic_kl_matches_closed_form(setup):
    x, enc, dec, prior = setup
    q = enc(x)
    loc, scale = enc.params(x)
    closed = 0.5 * tf.reduce_sum(loc**2 + scale**2 - 1 - 2 * tf.math.log(scale), -1)
    np.testing.assert_allclose(q.kl_divergence(prior).numpy(), closed.numpy(), rtol=1e-4, atol=1e-4)


def test_iwae_bounds_elbo_and_increases_with_k(setup):
    x, enc, dec, prior = setup
    q = enc(x)
    elbo = np.mean([it.elbo(x, q, dec, prior, kl="mc", num_samples=50, seed=s).numpy().mean() for s in range(10)])
    bounds = {k: it.iwae_bound(x, q, dec, prior, k=k, chunk=50, seed=k).numpy().mean() for k in (1, 10, 100, 1000)}
    assert abs(bounds[1] - elbo) < 1.0
    assert elbo < bounds[10] < bounds[100] < bounds[1000]


def test_iwae_chunking_gives_a_valid_estimate_of_the_same_bound(setup):
    x, enc, dec, prior = setup
    q = enc(x[:8])
    whole = np.mean([it.iwae_bound(x[:8], q, dec, prior, k=200, chunk=200, seed=s).numpy() for s in range(10)], 0)
    parts = np.mean([it.iwae_bound(x[:8], q, dec, prior, k=200, chunk=30, seed=100 + s).numpy() for s in range(10)], 0)
    np.testing.assert_allclose(whole, parts, atol=0.5)


def test_reparameterized_sample_is_tfps_draw_with_and_without_xla(monkeypatch):
    """The Gaussian families' draw names Philox (faster under XLA on a CPU) and gives exactly TFP's
    numbers and gradients, eagerly and compiled; other distributions go through ``q.sample``."""
    from infernet_tutorial.families import diag_gaussian
    from infernet_tutorial.objectives import reparameterized_sample

    loc = tf.Variable(tf.random.normal([7, 3], seed=1))
    raw = tf.Variable(tf.random.normal([7, 3], seed=2))
    seed = tf.constant([4, 2])

    def both():
        with tf.GradientTape(persistent=True) as tape:
            q = diag_gaussian(loc, tf.nn.softplus(raw))  # what every Gaussian family returns
            ours, tfps = reparameterized_sample(q, 5, seed), q.sample(5, seed=seed)
            cost = [tf.reduce_sum(z**2) for z in (ours, tfps)]
        return ours, tfps, [tape.gradient(c, [loc, raw]) for c in cost]

    for run in (both, tf.function(both, jit_compile=True)):
        ours, tfps, (g_ours, g_tfp) = run()
        assert ours.shape == (5, 7, 3)
        np.testing.assert_array_equal(ours.numpy(), tfps.numpy())
        for a, b in zip(g_ours, g_tfp):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    spec = [tf.TensorSpec([None, 3])]  # an unknown batch: the static shape still says d, as q.sample's does
    traced = tf.function(lambda m: reparameterized_sample(diag_gaussian(m, tf.ones_like(m)), 5, seed), input_signature=spec)
    assert traced.get_concrete_function().structured_outputs.shape.as_list() == [5, None, 3]

    def not_tfps(*args, **kwargs):
        raise AssertionError("the Gaussian draw went through TFP's sampler")

    monkeypatch.setattr(type(diag_gaussian(loc, raw).distribution), "_sample_n", not_tfps)
    assert reparameterized_sample(diag_gaussian(loc, tf.nn.softplus(raw)), 2, 7).shape == (2, 7, 3)  # Philox, named
    monkeypatch.undo()
    mvn = it.LinearGaussian.correlated(posterior_std=(0.6, 0.5), correlation=0.9).posterior(np.zeros([2, 6], np.float32))
    np.testing.assert_array_equal(reparameterized_sample(mvn, 4, seed).numpy(), mvn.sample(4, seed=seed).numpy())
