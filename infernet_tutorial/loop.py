"""The one training loop: ``fit(objective, variables, data)`` maximizes the mean of ``objective(x, idx, seed)``.

Local VI, amortized VI and test-time inference differ only in ``variables`` (see `inference`).
Three parts, each readable alone:

- `compiled_epoch`: one compiled `tf.function` running many steps over data that lives on the
  device. Shuffling, dynamic binarization and the Monte Carlo noise are drawn from stateless seeds
  derived from (seed, global step), so a run is reproducible and a resumed run continues with exactly
  the randomness it would have used. It stops after the first non-finite ELBO or gradient.
  XLA where it pays (`use_xla`).
- checkpoints (`checkpoints.manager_resumed`): resume from a folder, save after every finite call.
- `fit`: calls the compiled epoch, reports progress, handles divergence (takes the non-finite step
  back, `_take_back`), Ctrl-C and early stopping.

The step count has one source of truth: ``optimizer.iterations`` (the global step).
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from .checkpoints import manager_resumed, step_of
from .checks import check_positive_int, training_data
from .memory import custom_gradient_names, drop_custom_gradients, return_free_memory
from .progress import finish_bar, progress_bar
from .settings import in_jupyter_kernel

Objective = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


class DivergenceWarning(RuntimeWarning):
    """Training produced a non-finite ELBO and was stopped (README, Troubleshooting; every notebook trains with `fit`)."""


@dataclass
class History:
    """What `fit` returns (its ELBO curves are drawn in every notebook; notebook 01 reads it first).

    ``elbo[t]``: mean ELBO (nats) of this call's step t's batch (NaN where Ctrl-C lost a compiled call's
    values; its steps were applied). ``steps``: steps done towards the requested total, counting those
    restored from a checkpoint and a final step that diverged (which was not applied).
    ``call_times``: (steps, seconds) of each compiled call; the first includes tracing and compilation.
    """

    elbo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    steps: int = 0
    batch_size: int = 0
    seconds: float = 0.0  # wall time of the whole call, compilation included
    call_times: list = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C
    stopped_early: bool = False  # the callback returned True
    diverged_at: int | None = None  # global step (0-based) whose ELBO or gradient was not finite
    message: str = ""

    @property
    def images(self) -> int:
        return self.steps * self.batch_size

    @property
    def compile_seconds(self) -> float:
        """Wall time of the first compiled call (tracing, compilation and its steps)."""
        return self.call_times[0][1] if self.call_times else 0.0

    @property
    def final_elbo(self) -> float:
        """Mean ELBO over the last min(100, steps) finite steps."""
        finite = self.elbo[np.isfinite(self.elbo)]
        return float(np.mean(finite[-100:])) if len(finite) else float("nan")

    @property
    def images_per_second(self) -> float:
        """Throughput after the first (compiling) call; over the whole run if there was one call."""
        warm = self.call_times[1:] or self.call_times
        steps, secs = sum(s for s, _ in warm), sum(t for _, t in warm)
        return steps * self.batch_size / secs if secs > 0 else float("nan")


XLA_MIN_STEPS = 1000  # about where XLA's extra compilation (~2 s) pays back on a CPU (benchmarks/results.md)
XLA_MIN_PARAMETERS = 100_000  # smaller models' steps are too short for that compilation to pay back
XLA_KERNEL_BUDGET = 1  # XLA-compiled `fit` calls that a Jupyter kernel's default choice allows (memory, see `use_xla`)
xla_fits = 0  # `fit` calls of this process compiled with XLA (`fit` counts them; benchmarks set it to act as a later run)


def use_xla(jit_compile: bool | None = None, variables: Sequence[tf.Variable] = (), steps: int = 0) -> bool:
    """``jit_compile=None`` means "where it pays": always when TensorFlow sees a GPU; on a CPU, for a
    training run of at least `XLA_MIN_STEPS` steps whose ``variables`` hold at least
    `XLA_MIN_PARAMETERS` numbers and no convolution kernel, and in a Jupyter kernel only while the
    process has made fewer than `XLA_KERNEL_BUDGET` XLA fits.

    On a CPU, XLA runs a dense model's step about twice as fast as TensorFlow's own kernels but
    compiles a few seconds longer (longer than a small model's whole run takes), and its
    convolutions are many times slower than TensorFlow's (oneDNN) ones. XLA's compiled functions stay
    in memory for the life of the process (TensorFlow's compilation cache never evicts): its
    compiler's code and state at first use, then each XLA `fit` call's executable. A script makes a
    few `fit` calls; a notebook's kernel makes dozens, so a kernel gets XLA for its first such run
    only (``XLA_KERNEL_BUDGET = 1``; in notebooks 01 and 02 the main training run), then TensorFlow's
    kernels (``jit_compile=True`` still gives XLA). With the allocator settings of `startup` every
    notebook stays under its 1.5 GB so; without them it did not.
    benchmarks/results.md ("What limits the library's loop") holds the measurements.
    Without ``steps`` (an evaluation, not a training run) a CPU gets TensorFlow's kernels.
    """
    if jit_compile is not None:
        return bool(jit_compile)
    if tf.config.list_logical_devices("GPU"):
        return True
    if steps < XLA_MIN_STEPS or any(len(v.shape) > 2 for v in variables):
        return False
    if sum(v.shape.num_elements() for v in variables) < XLA_MIN_PARAMETERS:
        return False
    return not in_jupyter_kernel() or xla_fits < XLA_KERNEL_BUDGET


def batch_rows(n: int, batch_size: int, steps_per_epoch: int, seed: int, step0: int, num: int) -> tf.Tensor:
    """Row numbers of the ``num`` batches that start at global step ``step0``: ``[num, batch] int32``.

    Each epoch is a fresh permutation drawn from (seed, epoch); a call never crosses an epoch end.
    Computed outside the compiled loop, so that a step finds its batch by the loop counter alone.
    """
    epoch, pos = divmod(step0, steps_per_epoch)
    perm = tf.argsort(tf.random.stateless_uniform([n], seed=[seed, epoch]))
    if steps_per_epoch == 1:  # full batch: every step sees every point
        return tf.tile(perm[None, :batch_size], [num, 1])
    return tf.reshape(perm[pos * batch_size : (pos + num) * batch_size], [num, batch_size])


def _all_finite(tensors) -> tf.Tensor:
    flags = [tf.reduce_all(tf.math.is_finite(t.values if isinstance(t, tf.IndexedSlices) else t)) for t in tensors if t is not None]
    return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)


def _replica_step(objective: Objective, variables, replicas: int, xla: bool):
    """``step(x, idx, seed) -> (value, grads)``: this replica's share of the batch, scaled so that the
    sum over replicas is the whole batch's mean and its gradient."""

    def step(x, idx, seed):
        if replicas > 1:
            local = x.shape[0] // replicas
            r = tf.distribute.get_replica_context().replica_id_in_sync_group
            x, idx = x[r * local : (r + 1) * local], idx[r * local : (r + 1) * local]
            seed = tf.random.experimental.stateless_fold_in(seed, r)
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(objective(x, idx, seed)) / replicas
            loss = -value  # inside the tape: the gradient flows through the negation
        return value, tape.gradient(loss, variables)

    if replicas == 1:
        return step
    # XLA (if asked) compiles each replica's step; the loop around it holds the all-reduce
    step = tf.function(step, jit_compile=xla)
    return lambda x, idx, seed: tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, step(x, idx, seed))


def compiled_epoch(objective: Objective, variables, optimizer, *, seed: int, binarize: bool, strategy, xla: bool):
    """``run(data, batches, step0, limit) -> (values [num], steps_run, all_finite)``, one compiled call.

    data: ``[N, D] float32``; batches: ``[num, batch] int32`` rows (`batch_rows`); step0: the global
    step of batches[0]; limit: run at most this many of the batches. ``data`` is an argument, not a
    captured constant: TensorFlow keeps every traced function for the life of the process, and a
    captured data set would stay in memory with it.
    Every step is applied; the call stops after the first step whose ELBO or gradient is not finite,
    and `fit` takes that step back by replaying the call's finite steps (`_take_back`). A guard inside
    the loop (a `tf.cond` or a select around the update) cost every step 6-20 % under XLA on a CPU
    (benchmarks/results.md), to serve a step that happens once if ever.
    """
    replicas = strategy.num_replicas_in_sync
    step = _replica_step(objective, variables, replicas, xla)
    seed_t = tf.constant(int(seed), tf.int32)
    loop_xla = xla and replicas == 1  # with replicas, XLA compiles each replica's step, not the loop
    # Under XLA on a CPU, Threefry draws the binarization noise at a fraction of Philox's cost (and
    # TensorFlow's default generator is slower still); TensorFlow's own kernels have Philox only.
    noise_alg = "threefry" if loop_xla else "philox"

    @tf.function(jit_compile=loop_xla)
    def run(data, batches, step0, limit):
        def body(i, ok, values):
            x = tf.gather(data, batches[i])
            step_seed = tf.stack([seed_t + 1, step0 + i])
            if binarize:
                noise = tf.random.stateless_uniform(tf.shape(x), seed=tf.random.experimental.stateless_fold_in(step_seed, 1), alg=noise_alg)
                x = tf.cast(noise < x, tf.float32)
            noise_seed = tf.random.experimental.stateless_fold_in(step_seed, 2)
            if replicas == 1:
                value, grads = step(x, batches[i], noise_seed)
            else:  # every local replica holds the same all-reduced sums: take the first
                value, grads = strategy.experimental_local_results(strategy.run(step, args=(x, batches[i], noise_seed)))[0]
            optimizer.apply_gradients(zip(grads, variables))
            return i + 1, tf.math.is_finite(value) & _all_finite(grads), values.write(i, value)

        values = tf.TensorArray(tf.float32, size=batches.shape[0])
        i, ok, values = tf.while_loop(lambda i, ok, _: (i < limit) & ok, body, (tf.constant(0), tf.constant(True), values))
        return values.stack(), i, ok

    return run


def _count_xla_fit(xla: bool) -> None:
    global xla_fits
    xla_fits += bool(xla)


def _total_steps(epochs, steps, steps_per_epoch: int) -> int:
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs=... or steps=...")
    if epochs is not None:
        return check_positive_int(epochs, "epochs", " (passes over the data)") * steps_per_epoch
    return check_positive_int(steps, "steps", " (gradient steps)")


def _take_back(run, args, ran: int, state, snapshot) -> None:
    """Undo a call that ended on a non-finite step: restore ``state`` (model and optimizer variables)
    as the call found it and replay its ``ran - 1`` finite steps. The replay draws the same batches
    and noise (they are functions of the global step): it ends where the last finite step ended.
    If those steps left non-finite weights (an update that overflowed), the call's start is kept."""
    for v, old in zip(state, snapshot):
        v.assign(old)
    if ran > 1:
        run(*args, tf.constant(ran - 1))
    if not bool(_all_finite([v for v in state if tf.as_dtype(v.dtype).is_floating])):  # a finite step overflowed the weights
        for v, old in zip(state, snapshot):
            v.assign(old)


def _diverged(history: History, optimizer, last: float) -> None:
    """Say what happened; the failed step was taken back (`_take_back`)."""
    history.diverged_at = step_of(optimizer)
    what = f"the ELBO became {last:g} (not finite)" if not np.isfinite(last) else f"the gradient of the ELBO ({last:g}) was not finite"
    lr = float(optimizer.learning_rate)
    history.message = (
        f"Training stopped at step {history.diverged_at}: {what}. The weights of the last finite step are kept. "
        f"Try a smaller learning rate (this run used {lr:g}; e.g. {lr / 10:g})."
    )
    warnings.warn(history.message, DivergenceWarning, stacklevel=3)


def fit(
    objective: Objective,
    variables: Sequence[tf.Variable],
    data,
    *,
    epochs: int | None = None,
    steps: int | None = None,
    batch_size: int = 100,
    learning_rate: float = 1e-3,
    optimizer: keras.optimizers.Optimizer | None = None,
    seed: int = 0,
    binarize: bool = False,
    steps_per_call: int = 100,
    jit_compile: bool | None = None,
    progress: bool = True,
    desc: str = "fit",
    callback: Callable[[History], bool | None] | None = None,
    checkpoint_dir: str | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> History:
    """Maximize the mean of ``objective(x, idx, seed) -> [batch]`` over ``variables`` with Adam.

    The one loop of every notebook (notebook 01 builds its objective by hand; notebook 06 passes sleep
    and wake objectives to it).

    data: ``[N, D] float32``; ``idx`` are the batch's row numbers in ``data``.
    Give ``epochs`` (passes over the data) or ``steps`` (gradient steps). ``binarize=True`` draws
    fresh Bernoulli pixels for every batch (data must be grey levels in [0, 1]).
    ``optimizer``: reuse one (e.g. to continue training); otherwise Adam(learning_rate).
    The global step is ``optimizer.iterations``: a restored optimizer resumes the same random stream.
    ``callback(history)`` runs after every compiled call (an epoch, or ``steps_per_call`` steps
    when the batch is the whole data set); if it returns True, fit stops there (``stopped_early``).
    ``jit_compile``: compile the loop with XLA (None: where it pays, see `use_xla`: on a GPU, and on a
    CPU for runs of at least 1,000 steps of a model with at least 100,000 parameters and no
    convolutions; in a Jupyter kernel, only for the kernel's first `XLA_KERNEL_BUDGET` such runs).
    ``checkpoint_dir``: save variables and optimizer there after every finite call (2 kept) and, if
    a checkpoint is already there, resume from it: the run then takes only the steps still missing,
    with the randomness it would have used (see `checkpoints`).
    ``strategy``: a `tf.distribute.Strategy` (e.g. ``MirroredStrategy()`` over several GPUs,
    ``MultiWorkerMirroredStrategy()`` over machines); create the variables inside ``strategy.scope()``.
    Each step's batch (same rows, same binarization) is split across the replicas, whose gradients
    are summed into the gradient of the whole batch's mean: the same step as on one device, up to
    the Monte Carlo noise, which each replica draws from its own stream.
    The loop stops at the first non-finite ELBO and keeps finite weights; Ctrl-C returns the history so far.
    """
    data = training_data(data, batch_size, binarize)
    n = int(data.shape[0])
    steps_per_epoch = n // batch_size
    total = _total_steps(epochs, steps, steps_per_epoch)
    variables = list(variables)
    if not variables:
        raise ValueError("no variables to optimize")
    strategy = strategy or tf.distribute.get_strategy()
    if batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size={batch_size} must be divisible by the {strategy.num_replicas_in_sync} replicas of the strategy")
    with strategy.scope():
        optimizer = optimizer or keras.optimizers.Adam(learning_rate)
        optimizer.build(variables)
    state = variables + list(optimizer.variables)  # all that a step changes
    gradients_before = custom_gradient_names()  # this call's tracing adds some; dropped when it returns
    xla = use_xla(jit_compile, variables, total)
    run = compiled_epoch(objective, variables, optimizer, seed=seed, binarize=binarize, strategy=strategy, xla=xla)
    _count_xla_fit(xla)
    manager, resumed = manager_resumed(checkpoint_dir, optimizer, variables) if checkpoint_dir is not None else (None, False)
    restored = min(step_of(optimizer), total) if resumed else 0
    first_step = step_of(optimizer) - restored  # global step of this run's step 0
    chunk = steps_per_epoch if steps_per_epoch > 1 else steps_per_call
    history, values = History(batch_size=batch_size), []
    start, bar = time.perf_counter(), progress_bar(total, restored, desc, progress)
    try:
        while (done := step_of(optimizer) - first_step) < total:
            step0 = first_step + done  # the global step (optimizer.iterations) this call starts at
            num = min(chunk - step0 % chunk if steps_per_epoch > 1 else chunk, total - done)
            snapshot = [tf.identity(v) for v in state]
            args = (data, batch_rows(n, batch_size, steps_per_epoch, seed, step0, num), tf.constant(step0))
            t0 = time.perf_counter()
            out, ran, ok = run(*args, tf.constant(num))
            history.call_times.append((int(ran), time.perf_counter() - t0))
            values.append(out.numpy()[: int(ran)])
            _report(bar, values[-1])
            if not bool(ok):
                _take_back(run, args, int(ran), state, snapshot)
                _diverged(history, optimizer, float(values[-1][-1]))
                break
            if manager is not None:
                manager.save(checkpoint_number=step_of(optimizer))
            if callback is not None:
                _record(history, values, step_of(optimizer) - first_step, restored)
                if callback(history):
                    history.stopped_early = True
                    history.message = f"Stopped by the callback after {history.steps} of {total} steps."
                    break
    except KeyboardInterrupt:
        history.interrupted = True
    finally:
        _record(history, values, step_of(optimizer) - first_step + (history.diverged_at is not None), restored)
        if history.interrupted:  # Ctrl-C lands when a compiled call returns: its steps are applied even if not recorded
            history.message = f"Interrupted after {history.steps} of {total} steps; the weights of the last completed step are kept."
            print(history.message)
        history.seconds = time.perf_counter() - start
        finish_bar(bar, f"{desc}: {history.steps:,} steps in {history.seconds:.1f} s, ELBO {history.final_elbo:.2f} nats "
                   f"(mean of the last {min(100, max(1, len(history.elbo)))} steps)", progress)
        drop_custom_gradients(gradients_before)  # else each entry keeps this call's traced graph alive
        return_free_memory()  # the call's freed temporaries, back to the system (a notebook makes dozens of calls)
    return history


def _record(history: History, values: list, steps: int, restored: int) -> None:
    """Set ``history.steps`` and ``history.elbo`` (NaN for steps whose values Ctrl-C lost)."""
    recorded = np.concatenate(values) if values else np.zeros(0, np.float32)
    lost = max(0, steps - restored - len(recorded))
    history.elbo = np.concatenate([recorded, np.full(lost, np.nan, np.float32)])
    history.steps = steps


def _report(bar, values: np.ndarray) -> None:
    bar.update(len(values))
    finite = values[np.isfinite(values)]
    if len(finite):
        bar.set_postfix(elbo=f"{finite.mean():.2f}")
