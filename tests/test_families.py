"""The families' shared parts: one Gaussian inference network with a trunk, one way of counting parameters,
the local-family protocol, the memory arithmetic, and the models' own data checks."""
from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import infernet_tutorial as it
from infernet_tutorial import checks, families
from infernet_tutorial.flows import LocalFlow
from infernet_tutorial.helmholtz import BernoulliInferenceNetwork

from conftest import unchanged, weights


def test_a_network_is_a_trunk_with_the_seeds_loc_and_scale_heads():
    """Any Keras trunk: loc = Dense(d), scale = Dense(d, softplus) + 1e-5 on its output, computed here by hand."""
    trunk = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, activation="tanh")])
    net = it.GaussianInferenceNetwork(trunk, latent_dim=3, input_dim=6)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype(np.float32)
    h = trunk(x).numpy()
    (wl, bl), (ws, bs) = net.loc_layer.get_weights(), net.scale_layer.get_weights()
    q = net(x)
    assert q.batch_shape == [4] and q.event_shape == [3]
    np.testing.assert_allclose(q.mean().numpy(), h @ wl + bl, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q.stddev().numpy(), np.logaddexp(0, h @ ws + bs) + 1e-5, rtol=1e-5, atol=1e-6)
    assert net.count_params() == 6 * 5 + 5 + 2 * (5 * 3 + 3)
    with pytest.raises(ValueError, match=r"GaussianInferenceNetwork expects x of shape \[batch, 6\], got \[4, 7\]"):
        net(np.zeros((4, 7), np.float32))


def test_mlp_network_keeps_the_seeds_three_layers():
    """Notebook 02 copies its hand-written Dense layers into these three, in this order."""
    net = it.MLPInferenceNetwork(10)
    assert [layer.name for layer in net.layers] == ["hidden", "loc", "scale"] and net.hidden is net.layers[0]
    assert [tuple(w.shape) for layer in net.layers for w in layer.get_weights()] == [(784, 256), (256,), (256, 10), (10,), (256, 10), (10,)]
    assert isinstance(net, it.GaussianInferenceNetwork) and isinstance(it.ConvInferenceNetwork(2), it.GaussianInferenceNetwork)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: it.LocalFactors(7, 3), 2 * 7 * 3),
        (lambda: it.MLPInferenceNetwork(10), 784 * 256 + 256 + 2 * (256 * 10 + 10)),
        (lambda: it.ConvInferenceNetwork(10), (9 * 16 + 16) + (9 * 16 * 32 + 32) + 2 * (7 * 7 * 32 * 10 + 10)),
        (lambda: it.LinearInferenceNetwork(3, 8), 8 * 3 + 3 + 3),
        (lambda: it.LinearInferenceNetwork(3, 8, fixed_scale=0.5), 8 * 3 + 3),
        (lambda: it.BernoulliDecoder(10), 10 * 256 + 256 + 256 * 784 + 784),
        (lambda: it.BernoulliMixture(3, data_dim=6), 3 * 6 + 3),
        (lambda: it.LocalCategorical(5, 3), 5 * 3),
        (lambda: it.CategoricalInferenceNetwork(3, hidden=4, input_dim=6), 6 * 4 + 4 + 4 * 3 + 3),
        (lambda: BernoulliInferenceNetwork(4, hidden=8), 784 * 8 + 8 + 8 * 4 + 4),
    ],
    ids=["local", "mlp", "conv", "linear", "linear-fixed", "decoder", "mixture", "local-categorical", "categorical-net", "bernoulli-net"],
)
def test_every_part_counts_its_parameters_one_way(make, expected):
    part = make()
    assert part.count_params() == expected == sum(int(np.prod(v.shape)) for v in part.trainable_variables)


def test_local_families_are_recognised_by_the_protocol():
    for local in (it.LocalFactors(3, 2), it.LocalCategorical(3, 2), LocalFlow(3, 2)):
        assert isinstance(local, families.IndexedFamily)
        with pytest.raises(ValueError, match=r"index out of range: got indices 0..3, valid are 0..2"):
            families.check_family_indices(local, np.arange(4))
    for network in (it.MLPInferenceNetwork(2, hidden=4), it.LinearInferenceNetwork(2, 4), it.CategoricalInferenceNetwork(2)):
        assert not isinstance(network, families.IndexedFamily)
        families.check_family_indices(network, np.arange(10**6))  # networks take any index


def test_memory_arithmetic_matches_the_variables():
    """Bytes of local factors are 2 N d float32 numbers; at N* they equal the network's bytes."""
    for n in (1, 100, 12_345):
        measured = sum(v.numpy().nbytes for v in it.LocalFactors(n, 10).trainable_variables)
        assert it.local_factors_bytes(n, 10) == measured == 2 * n * 10 * 4
    params = it.MLPInferenceNetwork(10).count_params()
    n_star = it.crossover_points(params, 10)
    assert n_star == 10_305 and it.local_factors_bytes(n_star, 10) == 4 * params
    np.testing.assert_array_equal(it.local_factors_bytes([10, 20], 2), [160, 320])


def test_fit_mixture_checks_local_indices_before_training():
    """The path that used to skip the index check: LocalCategorical(30) for 40 points."""
    model = it.BernoulliMixture(2, data_dim=6)
    x = (np.random.default_rng(0).random((40, 6)) < 0.5).astype(np.float32)
    local = it.LocalCategorical(30, 2)
    before = weights(local, model)
    with pytest.raises(ValueError, match=r"LocalCategorical index out of range: got indices 0..39, valid are 0..29.*LocalCategorical\(len\(x\), 2\)"):
        it.fit_mixture(local, model, x, steps=5, batch_size=10, progress=False)
    assert unchanged(before, local, model)
    with pytest.raises(ValueError, match=r"fit_mixture expects x of shape \[batch, 6\], got \[40, 5\]"):
        it.fit_mixture(it.LocalCategorical(40, 2), model, x[:, :5], steps=1, batch_size=10, progress=False)


def test_models_check_their_own_data():
    decoder = it.BernoulliDecoder(2, hidden=4)
    decoder.check_data(np.ones((3, 784), np.float32), "here")
    decoder.check_data(np.full((3, 784), 0.5, np.float32), "here", binary=False)  # grey levels for dynamic binarization
    with pytest.raises(ValueError, match=r"^here with a Bernoulli decoder needs binary pixels \(0 or 1\), but 2352 values are not \(grey levels, e.g. 0.5\)"):
        decoder.check_data(np.full((3, 784), 0.5, np.float32), "here")
    with pytest.raises(ValueError, match=r"here expects x of shape \[batch, 784\] for a Bernoulli decoder, got \[3, 28, 28\] \(flatten"):
        decoder.check_data(np.ones((3, 28, 28), np.float32), "here", binary=False)
    model = it.LinearGaussian.orthogonal(8, 3)
    model.check_data(np.full((2, 8), 0.3, np.float32), "there")  # any real values
    with pytest.raises(ValueError, match=r"there expects x of shape \[batch, 8\], got \[2, 9\]"):
        model.check_data(np.zeros((2, 9), np.float32), "there")
    with pytest.raises(ValueError, match=r"elbo expects x of shape \[batch, 8\], got \[2, 9\]"):
        it.elbo(np.zeros((2, 9), np.float32), it.LinearInferenceNetwork(3, 9)(np.zeros((2, 9), np.float32)), model, model.prior)


def test_positive_integer_check():
    assert checks.check_positive_int(np.int64(3), "n") == 3 and checks.check_positive_int(2, "k", minimum=2) == 2
    for bad in (0, -1, 1.0, True, None, "3"):
        with pytest.raises(ValueError, match=rf"^n must be a positive integer \(hint\), got {re.escape(repr(bad))}$"):
            checks.check_positive_int(bad, "n", " (hint)")
    with pytest.raises(ValueError, match=r"^num_components must be an integer >= 2, got 1$"):
        it.BernoulliMixture(1)


def test_entry_points_check_points_and_values(mnist_dir):
    """evaluate and infer_local take [points, D] finite data; the message names the argument and the fix."""
    enc, dec, prior = it.MLPInferenceNetwork(2, hidden=4), it.BernoulliDecoder(2, hidden=4), it.standard_normal_prior(2)
    x = np.ones((4, 784), np.float32)
    with pytest.raises(ValueError, match=r"evaluate expects x of shape \[points, D\], got \[784\]"):
        it.evaluate(x[0], enc, dec, prior)
    x[1, 3] = np.nan
    for call, who in ((lambda: it.evaluate(x, enc, dec, prior), "x"), (lambda: it.infer_local(x, dec, prior, steps=1, progress=False), "x_new")):
        with pytest.raises(ValueError, match=rf"^{who} holds 1 non-finite values \(1 NaN, 0 infinite\) in 1 of 4 rows: rows 1; .*np.nan_to_num"):
            call()
    with pytest.raises(ValueError, match=r"evaluate got 4 data points but 3 indices"):
        it.evaluate(np.ones((4, 784), np.float32), enc, dec, prior, idx=tf.range(3))


@pytest.mark.parametrize("make", [lambda: it.LocalFactors(6, 2), lambda: it.LocalCategorical(6, 2)], ids=["gaussian", "categorical"])
def test_local_families_check_their_indices_one_way(make):
    family, x = make(), np.zeros((3, 784), np.float32)
    who = type(family).__name__
    with pytest.raises(ValueError, match=rf"^{who} got 3 data points but 2 indices; they must match$"):
        family(x, np.arange(2))
    with pytest.raises(ValueError, match=rf"^{who} expects integer indices, got dtype float"):
        family(x, np.arange(3.0))
    with pytest.raises(ValueError, match=rf"^{who} expects idx of shape \[batch\], got \[3, 1\]$"):
        family(x, np.zeros((3, 1), np.int64))
    assert family(x, np.array([5, 0, 2])).batch_shape == [3]
