"""Families, the one training loop, test-time inference and evaluation on real MNIST digits."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import infernet_tutorial as it

from conftest import small_model


@pytest.fixture(scope="module")
def digits(mnist_dir):
    x, _ = it.load_mnist("train", n=1000, data_dir=mnist_dir)
    x_test, _ = it.load_mnist("test", n=200, binarize="sample", data_dir=mnist_dir)
    return x, x_test


@pytest.fixture(scope="module")
def trained(digits):
    """A reference model trained briefly (amortized VI: encoder + decoder)."""
    x, _ = digits
    enc, dec, prior = small_model(10, hidden=256, seed=0)  # the reference sizes
    history = it.train(enc, dec, prior, x, epochs=8, progress=False)
    return enc, dec, prior, history


def test_reference_encoder_has_206100_parameters():
    enc = it.MLPInferenceNetwork(latent_dim=10, hidden=256)
    assert enc.count_params() == 206_100 == sum(int(np.prod(v.shape)) for v in enc.trainable_variables)
    assert [tuple(v.shape) for v in enc.trainable_variables] == [(784, 256), (256,), (256, 10), (10,), (256, 10), (10,)]


@pytest.mark.parametrize("make", [lambda: it.MLPInferenceNetwork(10), lambda: it.ConvInferenceNetwork(10), lambda: it.LocalFactors(50, 10)])
def test_every_family_has_the_same_signature(make):
    family = make()
    x = np.random.default_rng(0).random((7, 784)).astype(np.float32)
    q = family(x, np.arange(7))
    assert q.batch_shape == (7,) and q.event_shape == (10,)
    assert np.all(q.stddev().numpy() > 0)
    assert q.sample(seed=(1, 2)).shape == (7, 10)


def test_local_factor_parameters_grow_linearly_but_encoders_do_not():
    sizes = [it.LocalFactors(n, 10).count_params() for n in (10, 100, 1000)]
    assert sizes == [200, 2000, 20000]
    assert it.ConvInferenceNetwork(10).count_params() < it.MLPInferenceNetwork(10).count_params()


def test_local_factors_look_up_their_rows():
    loc = np.arange(20, dtype=np.float32).reshape(10, 2)
    f = it.LocalFactors(10, 2, loc=loc, scale=np.full((10, 2), 0.5, np.float32))
    q = f(None, np.array([3, 7]))
    np.testing.assert_allclose(q.mean().numpy(), loc[[3, 7]])
    np.testing.assert_allclose(q.stddev().numpy(), 0.5, rtol=1e-4)


def test_decoder_shapes():
    for kind in ("mlp", "conv"):
        dec = it.BernoulliDecoder(4, kind=kind)
        assert dec.logits(tf.zeros([3, 5, 4])).shape == (3, 5, 784)
        p = dec(tf.zeros([5, 4]))
        assert p.batch_shape == (5,) and p.event_shape == (784,)


def test_amortized_training_improves_the_elbo(trained):
    enc, dec, prior, history = trained
    assert history.steps == 80 and history.elbo.shape == (80,)
    assert np.all(np.isfinite(history.elbo))
    assert history.elbo[-10:].mean() > history.elbo[:10].mean() + 150  # from ~-540 towards ~-200
    assert history.images_per_second > 0 and history.seconds > 0 and not history.interrupted


def test_decoder_frozen_means_decoder_unchanged(digits, trained):
    _, dec, prior, _ = trained
    x, _ = digits
    before = [v.numpy().copy() for v in dec.trainable_variables]
    it.train(it.LocalFactors(len(x), 10), dec, prior, x, epochs=1, train_decoder=False, progress=False)
    for b, v in zip(before, dec.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())


def test_local_vi_learns_decoder_jointly(digits):
    keras.utils.set_random_seed(1)
    x, _ = digits
    factors, dec, prior = it.LocalFactors(len(x), 10), it.BernoulliDecoder(10), it.standard_normal_prior(10)
    before = factors.loc.numpy().copy()
    h = it.train(factors, dec, prior, x, epochs=5, progress=False)
    assert h.elbo[-10:].mean() > h.elbo[:10].mean() + 100
    assert not np.allclose(before, factors.loc.numpy())


def test_test_time_inference_local_and_semi_amortized(digits, trained):
    enc, dec, prior, _ = trained
    _, x_test = digits
    amortized = it.evaluate(x_test, enc, dec, prior, num_samples=20)["mean_elbo"]
    scratch, h0 = it.infer_local(x_test, dec, prior, steps=300, progress=False)
    refined, h1 = it.infer_local(x_test, dec, prior, steps=300, init=enc, progress=False)
    # refinement starts at the encoder's answer ...
    assert abs(h1.elbo[0] - amortized) < 3.0
    # ... and only improves on it: with the decoder fixed, local factors are at least as good
    e_refined = it.evaluate(x_test, refined, dec, prior, num_samples=20)["mean_elbo"]
    e_scratch = it.evaluate(x_test, scratch, dec, prior, num_samples=20)["mean_elbo"]
    assert e_refined > amortized + 0.5
    assert e_refined > e_scratch  # same step budget: the encoder's start is ahead
    assert h0.elbo[-20:].mean() > h0.elbo[:20].mean()


def test_evaluate_returns_per_point_bounds(digits, trained):
    enc, dec, prior, _ = trained
    _, x_test = digits
    r = it.evaluate(x_test, enc, dec, prior, iwae_k=50, batch_size=64)
    assert r["elbo"].shape == (200,) and r["iwae"].shape == (200,)
    assert r["mean_iwae"] > r["mean_elbo"]
    assert r["mean_elbo"] == pytest.approx(float(r["elbo"].mean()))


def test_same_seed_same_numbers(digits):
    x, _ = digits
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        enc, dec, prior = it.MLPInferenceNetwork(10), it.BernoulliDecoder(10), it.standard_normal_prior(10)
        runs.append(it.train(enc, dec, prior, x, epochs=2, seed=3, progress=False).elbo)
    np.testing.assert_allclose(runs[0], runs[1], rtol=1e-5)


def test_device_summary_names_the_device():
    line = it.device_summary()
    assert line.startswith("GPU:") == bool(tf.config.list_physical_devices("GPU"))
    assert "TensorFlow 2.21" in line
