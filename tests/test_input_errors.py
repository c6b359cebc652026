"""Wrong inputs to families, objectives and training, and bad settings: each a ValueError that states
the expected shape, range or valid choices, raised before any training step changes a weight.

The tests check the facts a message must state (`conftest.raises_with`: the wrong value, the expected
shape or range, the fix keyword), not whole sentences."""
from __future__ import annotations

import re

import numpy as np
import pytest
import tensorflow as tf

import infernet_tutorial as it

from conftest import raises_with, small_model, unchanged, weights

D = 2  # latent dimension: small keeps these tests fast


@pytest.fixture(scope="module")
def digits(mnist_dir):
    """40 real training digits: grey levels and a static binarization."""
    grey = it.load_mnist("train", n=40, binarize=None, data_dir=mnist_dir).images
    return grey, (grey > 0.5).astype(np.float32)


@pytest.fixture()
def model():
    return small_model(D)


# ---------------------------------------------------------------- families: shape and dtype


@pytest.mark.parametrize("make", [lambda: it.MLPInferenceNetwork(D, hidden=8), lambda: it.ConvInferenceNetwork(D, filters=(2, 2))], ids=["mlp", "conv"])
def test_encoders_reject_unflattened_images(make, digits):
    _, x = digits
    with raises_with("expects x of shape [batch, 784]", "got [40, 28, 28]", "x.reshape(-1, 784)"):
        make()(x.reshape(-1, 28, 28))


@pytest.mark.parametrize("shape", [(3, 785), (3, 783), (784,), (2, 3, 784)])
def test_mlp_encoder_rejects_wrong_width_or_rank(shape):
    with raises_with("MLPInferenceNetwork", "[batch, 784]", f"got {list(shape)}"):
        it.MLPInferenceNetwork(D, hidden=8)(np.zeros(shape, np.float32))


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64, bool])
def test_encoders_reject_non_float_pixels(dtype):
    x = np.ones((3, 784), dtype)
    with raises_with("float32", f"dtype {np.dtype(dtype).name}", "x.astype('float32')"):
        it.MLPInferenceNetwork(D, hidden=8)(x)


def test_linear_encoder_rejects_wrong_width():
    with raises_with("LinearInferenceNetwork", "[batch, 8]", "got [3, 9]"):
        it.LinearInferenceNetwork(3, 8)(np.zeros((3, 9), np.float32))


def test_local_factors_batch_size_mismatch(digits):
    _, x = digits
    with raises_with("LocalFactors", "5 data points", "4 indices"):
        it.LocalFactors(40, D)(x[:5], np.arange(4))


@pytest.mark.parametrize("idx, shown", [(np.arange(38, 43), "38..42"), (np.array([-1, 0, 1]), "-1..1")])
def test_local_factors_index_out_of_range(digits, idx, shown):
    _, x = digits
    with raises_with("index out of range", f"got indices {shown}", "valid are 0..39", f"LocalFactors(len(x), {D})"):
        it.LocalFactors(40, D)(x[: len(idx)], idx)


def test_local_factors_index_dtype_and_rank(digits):
    _, x = digits
    factors = it.LocalFactors(40, D)
    with raises_with("LocalFactors", "integer indices", "dtype float"):
        factors(x[:3], np.arange(3.0))
    with raises_with("LocalFactors", "idx of shape [batch]", "got [3, 1]"):
        factors(x[:3], np.zeros((3, 1), np.int64))


def test_local_factors_initial_values_shape():
    with raises_with("initial loc/scale", "[4, 2]"):
        it.LocalFactors(4, 2, loc=np.zeros((4, 3)))


def test_decoder_rejects_z_of_another_latent_dim():
    with raises_with("BernoulliDecoder(latent_dim=2)", "[..., 2]", "got [3, 5]", "the same latent_dim"):
        it.BernoulliDecoder(D, hidden=8)(np.zeros((3, 5), np.float32))


# ---------------------------------------------------------------- objectives: Bernoulli data and batch


@pytest.mark.parametrize("bound", ["elbo", "iwae_bound"])
def test_bounds_reject_grey_levels_for_bernoulli(bound, digits, model):
    grey, binary = digits
    enc, dec, prior = model
    f = getattr(it, bound)
    assert np.all(np.isfinite(f(binary, enc(binary), dec, prior).numpy()))  # binary is fine
    with raises_with(bound, "Bernoulli decoder", "binary pixels (0 or 1)", "grey levels", "binarize"):
        f(grey, enc(grey), dec, prior)


def test_bounds_reject_values_outside_0_1(digits, model):
    _, binary = digits
    enc, dec, prior = model
    with raises_with("binary pixels", "outside [0, 1]", "e.g. 255"):
        it.elbo(binary * 255, enc(binary), dec, prior)
    with raises_with("outside [0, 1]", "e.g. -1"):
        it.elbo(binary * 2 - 1, enc(binary), dec, prior)


def test_bounds_reject_unflattened_images_and_batch_mismatch(digits, model):
    _, binary = digits
    enc, dec, prior = model
    with raises_with("elbo", "[batch, 784]", "Bernoulli decoder", "got [40, 28, 28]", "x.reshape(-1, 784)"):
        it.elbo(binary.reshape(-1, 28, 28), enc(binary), dec, prior)
    with raises_with("iwae_bound", "5 data points", "q describes 4", "q = family(x, idx)"):
        it.iwae_bound(binary[:5], enc(binary[:4]), dec, prior, k=2)


def test_bound_settings(digits, model):
    """Bad settings of the bounds and of the objective built from them: the setting, the wrong value, the choices."""
    _, binary = digits
    enc, dec, prior = model
    q = enc(binary[:3])
    for call in (lambda: it.elbo(binary[:3], q, dec, prior, kl="exact"), lambda: it.elbo_objective(enc, dec, prior, kl="exact"),
                 lambda: it.evaluate(binary[:3], enc, dec, prior, kl="exact")):
        with pytest.raises(ValueError, match=r"kl must be one of \('analytic', 'mc'\), got 'exact'"):
            call()
    for call in (lambda: it.elbo(binary[:3], q, dec, prior, num_samples=0), lambda: it.elbo_objective(enc, dec, prior, num_samples=0)):
        with pytest.raises(ValueError, match="num_samples must be a positive integer, got 0"):
            call()
    with pytest.raises(ValueError, match=r"k must be a positive integer \(the number of importance samples\), got 0"):
        it.iwae_bound(binary[:3], q, dec, prior, k=0)
    with pytest.raises(ValueError, match=r"chunk must be a positive integer.*got -1"):
        it.iwae_bound(binary[:3], q, dec, prior, k=5, chunk=-1)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
@pytest.mark.parametrize(
    "name, call",
    [
        ("num_points", lambda v: it.LocalFactors(v, D)),
        ("num_points", lambda v: it.LocalCategorical(v, 3)),
        ("num_samples", lambda v: it.elbo_objective(it.LocalFactors(3, D), None, None, num_samples=v)),
        ("k", lambda v: it.importance_sample(np.zeros((2, 4), np.float32), None, None, None, k=v)),
        ("k", lambda v: it.rws_objective(it.MLPInferenceNetwork(D, hidden=8), None, None, k=v)),
        ("batch_size", lambda v: it.importance_sample(np.zeros((2, 4), np.float32), None, None, None, batch_size=v)),
        ("n", lambda v: it.load_mnist("test", n=v)),
    ],
)
def test_counts_must_be_positive_integers(name, call, bad):
    """One check for every count the library takes: its name and the wrong value in the message."""
    with pytest.raises(ValueError, match=rf"^{name} must be a positive integer.*, got {re.escape(repr(bad))}$"):
        call(bad)


# ---------------------------------------------------------------- training entry points: before any step


def test_train_rejects_grey_levels_without_binarize(digits, model):
    grey, _ = digits
    enc, dec, prior = model
    before = weights(enc, dec)
    with raises_with("binary pixels (0 or 1)", "binarize=True"):
        it.train(enc, dec, prior, grey, epochs=1, batch_size=20, binarize=False, progress=False)
    assert unchanged(before, enc, dec)


def test_train_rejects_pixels_outside_0_1_with_binarize(digits, model):
    grey, _ = digits
    enc, dec, prior = model
    before = weights(enc, dec)
    with raises_with("binarize=True", "[0, 1]", "got values in [0, 255]"):
        it.train(enc, dec, prior, grey * 255, epochs=1, batch_size=20, progress=False)
    assert unchanged(before, enc, dec)


def test_train_rejects_unflattened_images(digits, model):
    grey, _ = digits
    enc, dec, prior = model
    with raises_with("train", "[batch, 784]", "got [40, 28, 28]", "x.reshape(-1, 784)"):
        it.train(enc, dec, prior, grey.reshape(-1, 28, 28), epochs=1, batch_size=20, progress=False)


def test_fit_rejects_integer_data(digits, model):
    _, binary = digits
    enc, dec, prior = model
    with raises_with("float32", "dtype uint8", ".astype('float32')"):
        it.fit(it.elbo_objective(enc, dec, prior), enc.trainable_variables, binary.astype(np.uint8), steps=1, progress=False)


def test_infer_local_and_evaluate_reject_grey_levels(digits, model):
    grey, _ = digits
    enc, dec, prior = model
    with pytest.raises(ValueError, match=r"needs binary pixels"):
        it.infer_local(grey[:5], dec, prior, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"needs binary pixels"):
        it.evaluate(grey[:5], enc, dec, prior)
    with raises_with("infer_local", "x_new of shape [points, D]", "got [5, 28, 28]"):
        it.infer_local(grey[:5].reshape(-1, 28, 28), dec, prior, steps=1, progress=False)


def test_evaluate_index_count_mismatch(digits, model):
    _, binary = digits
    enc, dec, prior = model
    with raises_with("evaluate", "5 data points", "4 indices"):
        it.evaluate(binary[:5], enc, dec, prior, idx=range(4))


def test_train_rejects_local_factors_of_another_size(digits, model):
    _, binary = digits
    _, dec, prior = model
    factors = it.LocalFactors(30, D)  # 40 data points, 30 rows of factors
    before = weights(factors, dec)
    try:
        it.train(factors, dec, prior, binary, epochs=1, batch_size=20, binarize=False, progress=False)
    except ValueError as err:
        assert "index out of range" in str(err) and "valid are 0..29" in str(err)
        assert unchanged(before, factors, dec)
    else:
        raise AssertionError("train accepted LocalFactors(30) for 40 data points")


def test_evaluate_rejects_local_factor_indices_out_of_range(digits, model):
    _, binary = digits
    _, dec, prior = model
    try:
        it.evaluate(binary[:10], it.LocalFactors(5, D), dec, prior)
    except ValueError as err:
        assert "index out of range" in str(err) and "valid are 0..4" in str(err)
    else:
        raise AssertionError("evaluate accepted indices 0..9 for LocalFactors(5)")


# ---------------------------------------------------------------- bad settings


@pytest.mark.parametrize("kw", [dict(epochs=0), dict(epochs=-1), dict(epochs=1.5)])
def test_non_positive_epochs(digits, model, kw):
    grey, _ = digits
    enc, dec, prior = model
    with raises_with("epochs", "positive integer", repr(kw["epochs"])):
        it.train(enc, dec, prior, grey, batch_size=20, progress=False, **kw)


def test_fit_needs_exactly_one_of_epochs_and_steps(digits, model):
    grey, _ = digits
    enc, dec, prior = model
    objective = it.elbo_objective(enc, dec, prior)
    for kw in (dict(), dict(epochs=1, steps=1)):
        with raises_with("epochs=", "steps=", "exactly one"):
            it.fit(objective, enc.trainable_variables, grey, batch_size=20, progress=False, **kw)
    with raises_with("steps", "positive integer", "0"):
        it.fit(objective, enc.trainable_variables, grey, steps=0, batch_size=20, progress=False)


@pytest.mark.parametrize("batch_size, message", [(41, r"batch_size=41 is larger than the data \(40 points\); use batch_size <= 40"),
                                                 (0, "batch_size must be a positive integer, got 0")])
def test_bad_batch_size(digits, model, batch_size, message):
    grey, _ = digits
    enc, dec, prior = model
    with pytest.raises(ValueError, match=message):
        it.train(enc, dec, prior, grey, epochs=1, batch_size=batch_size, progress=False)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
@pytest.mark.parametrize(
    "make",
    [it.standard_normal_prior, it.BernoulliDecoder, it.MLPInferenceNetwork, it.ConvInferenceNetwork, lambda d: it.LocalFactors(5, d), lambda d: it.LinearInferenceNetwork(d, 4)],
    ids=["prior", "decoder", "mlp", "conv", "local", "linear"],
)
def test_latent_dim_must_be_positive(make, bad):
    with raises_with("latent_dim", "positive integer", "e.g. 10", f"got {bad!r}"):
        make(bad)


def test_unknown_choices_are_listed():
    with raises_with("decoder kind", "'mlp' or 'conv'", "got 'cnn'"):
        it.BernoulliDecoder(D, kind="cnn")
    with raises_with("binarize", "('dynamic', 'static', 'sample', None)", "got 'yes'"):
        it.load_mnist("train", binarize="yes")
    with raises_with("split", "'train' or 'test'", "got 'val'"):
        it.load_mnist("val")


def test_bad_n(mnist_dir):
    with raises_with("n must be a positive integer", "got 0"):
        it.load_mnist("test", n=0, data_dir=mnist_dir)
    with raises_with("n=10001", "only 10000 are available"):
        it.load_mnist("test", n=10001, data_dir=mnist_dir)


def test_local_factors_num_points():
    with raises_with("num_points", "positive integer", "got 0"):
        it.LocalFactors(0, D)


def test_graph_mode_keeps_static_checks():
    """Inside tf.function the shape checks still fire at trace time (values are checked eagerly before)."""
    enc = it.MLPInferenceNetwork(D, hidden=8)

    @tf.function
    def f(x):
        return enc(x).mean()

    with raises_with("[batch, 784]", "got [None, 785]"):
        f.get_concrete_function(tf.TensorSpec([None, 785], tf.float32))


def test_raises_with_fails_when_a_fact_is_missing():
    with pytest.raises(AssertionError, match=r"does not state \['got 42'\]"):
        with raises_with("x", "got 42"):
            raise ValueError("x: got 41")
