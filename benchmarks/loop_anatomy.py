"""Where a step of the library's loop spends its time: A/B variants of one compiled epoch.

    python -m benchmarks.loop_anatomy [--rounds 3]

Builds the reference model (MLP inference network, Bernoulli decoder, d = 10, batch 100) and times
one compiled epoch (243 steps over the 24,345 shared training digits) of `loop.compiled_epoch` in
variants: TensorFlow's kernels or XLA, Adam or plain SGD, with or without dynamic binarization, and,
under XLA, with the loop's earlier choices put back (Philox for the binarization noise, a guard around
the update inside the step: a `tf.cond`, or a `tf.where` select; q's normal noise drawn by TFP's
``q.sample``, whose unnamed generator the library's `objectives.reparameterized_sample` replaced by
Philox: the same numbers), and with that noise drawn by Threefry instead (other numbers).
Then it times the random numbers of a batch's binarization alone, per generator. Variants run in one process, interleaved round by round; the medians of
images/s and images per CPU-second are printed. benchmarks/results.md quotes these figures in
"What limits the library's loop".
"""
from __future__ import annotations

import argparse
import contextlib
import time

import numpy as np

import infernet_tutorial as it
from infernet_tutorial import loop

STEPS, BATCH = 243, 100


@contextlib.contextmanager
def philox_noise():
    """While a variant is traced: Philox for the binarization noise under XLA (the loop's earlier choice)."""
    import tensorflow as tf

    uniform = tf.random.stateless_uniform
    tf.random.stateless_uniform = lambda *a, alg=None, **k: uniform(*a, alg="philox", **k)
    try:
        yield
    finally:
        tf.random.stateless_uniform = uniform


@contextlib.contextmanager
def q_noise(how: str):
    """While a variant is traced: q's reparameterized sample drawn by TFP's ``q.sample`` (``"tfp"``, the
    loop's earlier choice) or by Threefry (``"threefry"``) instead of Philox by name."""
    from infernet_tutorial import objectives

    ours = objectives.reparameterized_sample
    objectives.reparameterized_sample = ((lambda q, n, seed: q.sample(n, seed=seed)) if how == "tfp" else
                                         (lambda q, n, seed: ours(q, n, seed, alg="threefry")))
    try:
        yield
    finally:
        objectives.reparameterized_sample = ours


class Guarded:
    """The optimizer with a guard inside the step, as the loop had before: ``"cond"`` applies the
    update only under a `tf.cond` on finite gradients; ``"select"`` applies it, then puts the model's
    and the optimizer's variables back with `tf.where` where they were not finite. (The loop now takes
    a non-finite step back in `fit` instead, outside the compiled steps.)"""

    def __init__(self, optimizer, kind: str):
        self.optimizer, self.kind = optimizer, kind

    def apply_gradients(self, pairs):
        import tensorflow as tf

        pairs = list(pairs)
        ok = loop._all_finite([g for g, _ in pairs])
        if self.kind == "cond":
            tf.cond(ok, lambda: (self.optimizer.apply_gradients(pairs), tf.constant(True))[1], lambda: tf.constant(False))
            return
        state = [v for _, v in pairs] + list(self.optimizer.variables)
        before = [tf.identity(v) for v in state]
        self.optimizer.apply_gradients(pairs)
        for v, old in zip(state, before):
            v.assign(tf.where(ok, v, old))


def epoch_variant(xla: bool, binarize: bool, adam: bool, guard: str | None = None):
    import keras
    import tensorflow as tf

    it.set_random_seed(0)
    net, dec, prior = it.MLPInferenceNetwork(10), it.BernoulliDecoder(10), it.standard_normal_prior(10)
    variables = net.trainable_variables + dec.trainable_variables
    optimizer = keras.optimizers.Adam(1e-3) if adam else keras.optimizers.SGD(1e-3)
    optimizer.build(variables)
    optimizer = Guarded(optimizer, guard) if guard else optimizer
    return loop.compiled_epoch(it.elbo_objective(net, dec, prior), variables, optimizer, seed=0,
                               binarize=binarize, strategy=tf.distribute.get_strategy(), xla=xla)


def noise_variant(xla: bool, alg: str):
    import tensorflow as tf

    @tf.function(jit_compile=xla)
    def run(data):
        def body(i, acc):
            x = tf.gather(data, tf.range(BATCH) + i * BATCH)
            noise = tf.random.stateless_uniform(tf.shape(x), seed=tf.stack([1, i]), alg=alg)
            return i + 1, acc + tf.reduce_sum(tf.cast(noise < x, tf.float32))

        return tf.while_loop(lambda i, acc: i < STEPS, body, (0, 0.0))[1]

    return run


def race(calls: dict, rounds: int) -> dict:
    """{name: (median wall s, median cpu s)} of each zero-argument call, rounds interleaved."""
    for call in calls.values():  # trace and compile
        call()
    times = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            c0, t0 = time.process_time(), time.perf_counter()
            call()
            times[name].append((time.perf_counter() - t0, time.process_time() - c0))
    return {name: tuple(np.median(np.array(v), axis=0)) for name, v in times.items()}


def main(argv=None) -> None:
    import tensorflow as tf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    x = tf.constant(it.load_mnist("train", binarize=None).images)
    batches = loop.batch_rows(int(x.shape[0]), BATCH, STEPS, 0, 0, STEPS)

    def whole_epoch(run):
        """A zero-argument call of one compiled epoch (all STEPS steps)."""
        return lambda: run(x, batches, tf.constant(0), tf.constant(STEPS))[0].numpy()

    epochs = {}
    for xla in (False, True):
        for binarize in (True, False):
            for adam in (True, False):
                name = f"{'XLA' if xla else 'TF kernels'}, {'Adam' if adam else 'SGD'}, {'binarized' if binarize else 'fixed pixels'}"
                epochs[name] = whole_epoch(epoch_variant(xla, binarize, adam))
    for philox, guard in ((True, None), (False, "select"), (False, "cond"), (True, "cond")):
        what = " + ".join(w for w, on in (("Philox noise", philox), (f"tf.{'cond' if guard == 'cond' else 'where'} guard", guard)) if on)
        with philox_noise() if philox else contextlib.nullcontext():
            epochs[name := f"XLA, Adam, binarized, {what}"] = whole_epoch(epoch_variant(True, True, True, guard))
            epochs[name]()  # traced inside the patch
    for how, what in (("tfp", "q's noise by q.sample (TFP's default)"), ("threefry", "q's noise by Threefry")):
        with q_noise(how):
            epochs[name := f"XLA, Adam, binarized, {what}"] = whole_epoch(epoch_variant(True, True, True))
            epochs[name]()  # traced inside the patch
    print(f"one compiled epoch ({STEPS} steps of {BATCH}), median of {args.rounds} rounds; load {open('/proc/loadavg').read().split()[:3]}")
    for name, (wall, cpu) in race(epochs, args.rounds).items():
        print(f"  {name:60s} {STEPS * BATCH / wall:9,.0f} img/s {STEPS * BATCH / cpu:9,.0f} img per CPU-s")
    noises = {}
    for xla in (False, True):
        for alg in ("auto_select", "philox", "threefry"):
            if alg == "threefry" and not xla:
                continue  # TensorFlow's CPU kernel takes no threefry key of this shape
            run = noise_variant(xla, alg)
            noises[f"{'XLA' if xla else 'TF kernels'}, {alg}"] = lambda run=run: run(x).numpy()
    print(f"binarization noise alone ({BATCH}x784 uniforms per step), ms per step:")
    for name, (wall, _) in race(noises, args.rounds).items():
        print(f"  {name:60s} {wall / STEPS * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
