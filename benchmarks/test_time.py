"""Test-time inference for new test digits with a trained decoder: time and mean ELBO.

  - inference network forward pass: q(z | x) for all new digits in one call (amortized inference), compiled
    (the reference row) and eager (what a notebook cell costs, Python and TFP included);
  - local VI: fresh factors started at the prior, Adam until the ELBO is within 1 nat of its plateau;
  - semi-amortized: factors started at the inference network's output, ``refine_steps`` Adam steps.

Times exclude compilation (the forward pass is timed warm, the optimizations by their warm steps);
the compile time of each optimization is reported next to it. Mean ELBOs are evaluated afterwards
with 10 samples per digit on the same digits.
"""
from __future__ import annotations

import time

import numpy as np

from .common import Config, Row, median

PLATEAU_TOLERANCE = 1.0  # nats


def steps_to_plateau(trace: np.ndarray, tolerance: float = PLATEAU_TOLERANCE, window: int = 20) -> tuple[int, float]:
    """First step whose running-mean ELBO is within ``tolerance`` of the plateau (mean of the last 10 %)."""
    trace = np.asarray(trace, np.float64)
    plateau = float(trace[-max(len(trace) // 10, 1) :].mean())
    window = max(1, min(window, len(trace) // 10 or 1))
    smooth = np.convolve(trace, np.ones(window) / window, mode="valid")
    reached = np.nonzero(smooth >= plateau - tolerance)[0]
    return int(reached[0] + window) if len(reached) else len(trace), plateau


def warm_seconds_per_step(history) -> float:
    """Seconds per step of the compiled calls after the first (which includes compilation)."""
    warm = history.call_times[1:] or history.call_times
    return sum(t for _, t in warm) / sum(s for s, _ in warm)


def run(cfg: Config) -> list[Row]:
    import infernet_tutorial as it
    import tensorflow as tf

    x_train = it.load_mnist("train", n=cfg.n_train, data_dir=cfg.data_dir).images
    x_test = it.load_mnist("test", n=cfg.n_test, binarize="sample", data_dir=cfg.data_dir, seed=1).images
    encoder, decoder, prior = it.MLPInferenceNetwork(10), it.BernoulliDecoder(10), it.standard_normal_prior(10)
    it.train(encoder, decoder, prior, x_train, epochs=cfg.train_epochs, progress=False)
    xt = tf.constant(x_test)

    def mean_elbo(family):
        return it.evaluate(x_test, family, decoder, prior, num_samples=10)["mean_elbo"]

    def timed(fn, repeats=20):
        fn()  # warm-up (and tracing, for the compiled one)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return median(times)

    params = tf.function(encoder.params)  # compiled like the optimizations' steps
    forward = timed(lambda: params(xt)[0].numpy())
    forward_eager = timed(lambda: encoder(xt).mean().numpy())

    factors, h_local = it.infer_local(x_test, decoder, prior, steps=cfg.local_vi_steps, progress=False)
    needed, plateau = steps_to_plateau(h_local.elbo)
    local_seconds = needed * warm_seconds_per_step(h_local)

    refined, h_refine = it.infer_local(x_test, decoder, prior, steps=cfg.refine_steps, init=encoder, progress=False)
    refine_seconds = forward + cfg.refine_steps * warm_seconds_per_step(h_refine)

    table = "test_time"
    m = len(x_test)
    return [
        Row(table, f"inference network forward pass ({m} digits, compiled tf.function)", forward, "s", 1.0,
            {"mean_elbo": mean_elbo(encoder)}),
        Row(table, "inference network forward pass, eager `network(x)` (a tfd distribution)", forward_eager, "s",
            forward_eager / forward),
        Row(table, f"local VI from the prior, to within {PLATEAU_TOLERANCE:g} nat of its plateau", local_seconds, "s",
            local_seconds / forward,
            {"mean_elbo": mean_elbo(factors), "steps": needed, "steps_run": cfg.local_vi_steps,
             "plateau_batch_elbo": plateau, "compile_seconds": h_local.compile_seconds}),
        Row(table, f"semi-amortized: network + {cfg.refine_steps} refinement steps", refine_seconds, "s",
            refine_seconds / forward,
            {"mean_elbo": mean_elbo(refined), "steps": cfg.refine_steps, "compile_seconds": h_refine.compile_seconds}),
    ]
