"""The loop's bookkeeping (early stopping from a callback, per-call timings, one step count) and what
changes with XLA: when it is used, taking back a non-finite step, the binarization noise."""
import sys
import types
import warnings

import keras
import numpy as np
import pytest

import infernet_tutorial as it
from infernet_tutorial import loop


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = it.LinearGaussian.orthogonal(8, 3, 0.5)
    x = model.sample(60)
    net = it.LinearInferenceNetwork(3, 8)
    return it.elbo_objective(net, model, model.prior), net, x


def test_a_callback_that_returns_true_stops_after_that_call():
    objective, net, x = _model()
    start = [v.numpy() for v in net.trainable_variables]
    seen = []
    h = it.fit(objective, net.trainable_variables, x, epochs=10, batch_size=20, progress=False,
               callback=lambda hist: seen.append(hist.steps) or len(seen) == 2)
    assert seen == [3, 6] and h.stopped_early and not h.interrupted
    assert h.steps == 6 == len(h.elbo) and h.message == "Stopped by the callback after 6 of 30 steps."
    for v, s in zip(net.trainable_variables, start):
        v.assign(s)
    whole = it.fit(objective, net.trainable_variables, x, epochs=2, batch_size=20, progress=False)
    np.testing.assert_array_equal(h.elbo, whole.elbo)  # the same steps as a run asked for two epochs


def test_call_times_count_every_step_once():
    objective, net, x = _model()
    h = it.fit(objective, net.trainable_variables, x, steps=25, batch_size=60, steps_per_call=10, progress=False)
    assert [s for s, _ in h.call_times] == [10, 10, 5] and h.steps == 25 == len(h.elbo)
    assert all(t > 0 for _, t in h.call_times) and h.compile_seconds == h.call_times[0][1]
    assert np.isfinite(h.images_per_second) and h.images == 25 * 60


def test_ctrl_c_after_a_compiled_call_pads_its_lost_values_with_nan(monkeypatch):
    """The steps of a call whose values Ctrl-C lost were applied: counted, and their ELBOs are NaN."""
    objective, net, x = _model()
    real, calls = loop.time.perf_counter, {"n": 0}

    def perf_counter():  # call 1: start; per call: t0, then right after the compiled call returns
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real()

    monkeypatch.setattr(loop.time, "perf_counter", perf_counter)
    h = it.fit(objective, net.trainable_variables, x, epochs=5, batch_size=20, progress=False)
    monkeypatch.setattr(loop.time, "perf_counter", real)
    assert h.interrupted and h.steps == 6 == len(h.elbo)
    assert np.all(np.isfinite(h.elbo[:3])) and np.all(np.isnan(h.elbo[3:]))
    assert "after 6 of 15 steps" in h.message


def test_xla_where_it_pays(monkeypatch):
    """jit_compile=None: XLA on a GPU; on a CPU for runs of >= XLA_MIN_STEPS steps of >= XLA_MIN_PARAMETERS
    numbers without conv kernels, in a Jupyter kernel only within its budget of XLA fits."""
    import tensorflow as tf

    dense, conv = [tf.Variable(tf.zeros([784, 256])), tf.Variable(tf.zeros(256))], [tf.Variable(tf.zeros([3, 3, 1, 8]))]
    assert loop.use_xla(True) and not loop.use_xla(False, dense, 10**6)
    if tf.config.list_logical_devices("GPU"):
        assert loop.use_xla(None, conv, 1)
        return
    assert not loop.use_xla() and not loop.use_xla(None, dense, loop.XLA_MIN_STEPS - 1)
    assert loop.use_xla(None, dense, loop.XLA_MIN_STEPS) and not loop.use_xla(None, dense + conv, 10**6)
    small = [tf.Variable(tf.zeros([loop.XLA_MIN_PARAMETERS - 1]))]  # e.g. a linear-Gaussian model: compilation costs more
    assert not loop.use_xla(None, small, 10**6) and loop.use_xla(None, small + [tf.Variable(0.0)], 10**6)
    fake = types.ModuleType("IPython")
    fake.get_ipython = lambda: types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython", fake)  # inside a Jupyter kernel: memory first
    from infernet_tutorial.settings import in_jupyter_kernel

    assert in_jupyter_kernel()
    monkeypatch.setattr(loop, "xla_fits", loop.XLA_KERNEL_BUDGET - 1)  # a kernel's last XLA fit within budget
    assert loop.use_xla(None, dense, 10**6) and not loop.use_xla(None, dense, loop.XLA_MIN_STEPS - 1)
    loop._count_xla_fit(False)
    assert loop.xla_fits == loop.XLA_KERNEL_BUDGET - 1
    loop._count_xla_fit(True)  # the budget spent: memory first
    assert not loop.use_xla(None, dense, 10**6) and loop.use_xla(True, dense, 1)


def test_fit_counts_its_xla_runs(monkeypatch):
    """The kernel's budget counts the `fit` calls compiled with XLA, whatever chose it."""
    import tensorflow as tf

    monkeypatch.setattr(loop, "xla_fits", 0)
    v = tf.Variable(tf.zeros([3]))
    objective = lambda x, idx, seed: -tf.reduce_sum((x - v) ** 2, axis=-1)  # noqa: E731
    x = np.ones([10, 3], np.float32)
    loop.fit(objective, [v], x, steps=2, batch_size=5, jit_compile=False, progress=False)
    assert loop.xla_fits == 0
    loop.fit(objective, [v], x, steps=2, batch_size=5, jit_compile=True, progress=False)
    assert loop.xla_fits == 1


@pytest.mark.parametrize("jit_compile", [False, True])
def test_a_non_finite_step_is_not_applied_to_weights_or_optimizer(jit_compile):
    """Taking a non-finite step back (restore the call's start, replay its finite steps) leaves the
    weights, Adam's moments and its step count exactly as after the last finite step, with and
    without XLA. The objective turns NaN once w passes 5 (its gradient stays finite there: an Adam
    update with it would still move the moments)."""
    import tensorflow as tf

    x = np.zeros((1, 1), np.float32)

    def run(steps):
        w = tf.Variable([0.0])
        opt = keras.optimizers.Adam(1.0)

        def objective(x, idx, seed):
            return tf.where(w[0] > 5.0, np.nan, -tf.reduce_sum((w - 10.0) ** 2)) + 0.0 * tf.reduce_sum(x, -1)

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            h = it.fit(objective, [w], x, steps=steps, batch_size=1, optimizer=opt, jit_compile=jit_compile, progress=False)
        return h, [v.numpy() for v in [w, *opt.variables]], caught

    h, after, caught = run(50)
    assert h.diverged_at is not None and 3 < h.diverged_at < 20, h.diverged_at
    assert len([c for c in caught if c.category is it.DivergenceWarning]) == 1
    ref, before, _ = run(h.diverged_at)  # exactly the finite steps
    assert ref.diverged_at is None and int(before[1]) == h.diverged_at  # optimizer.iterations
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_binarization_noise_is_fresh_and_unbiased_with_and_without_xla(mnist_dir, jit_compile):
    """SGD on sum_n x_n . w_n with learning rate N/T makes w the mean of the T binarized batches
    (rows in data order): with either generator (Philox, Threefry under XLA) it is the grey level."""
    import tensorflow as tf

    grey, _ = it.load_mnist("test", n=50, data_dir=mnist_dir)
    steps = 200
    w = tf.Variable(tf.zeros([50, 784]))

    def objective(x, idx, seed):
        return tf.reduce_sum(x * tf.gather(w, idx), -1)

    it.fit(objective, [w], grey, steps=steps, batch_size=50, binarize=True, jit_compile=jit_compile,
           optimizer=keras.optimizers.SGD(50 / steps), progress=False)
    mean = w.numpy()
    np.testing.assert_allclose(mean * steps, np.round(mean * steps), atol=1e-3)  # counts of on-pixels
    assert np.abs(mean - grey).mean() < 0.01  # a biased or frozen generator misses by far more
    grey_pixels = (grey > 0.2) & (grey < 0.8)
    assert np.all(mean[grey_pixels] > 0) and np.all(mean[grey_pixels] < 1)  # fresh pixels every step
