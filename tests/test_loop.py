"""The loop's bookkeeping: early stopping from a callback, per-call timings, one step count."""
import keras
import numpy as np

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
