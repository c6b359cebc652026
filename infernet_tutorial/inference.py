"""One training loop for every kind of variational inference in the tutorial.

    fit(objective, variables, data, ...) maximizes mean objective(x_batch, idx_batch, seed)

Local VI, amortized VI and test-time inference differ only in ``variables``:

    local VI        LocalFactors(N, d).trainable_variables (+ decoder's, to learn the model too)
    amortized VI    network.trainable_variables + decoder.trainable_variables
    test time       fresh LocalFactors for the new points (decoder frozen), started at the prior
                    (`infer_local`) or at an inference network's output (semi-amortized, `infer_local(init=network)`)

The loop runs whole epochs inside one compiled `tf.function` over data that lives on the device
(XLA on a GPU; on a CPU TensorFlow's own oneDNN kernels, as fast as an XLA-compiled epoch loop on
a quiet CPU and faster under load, see benchmarks/results.md): shuffling, dynamic binarization and
the Monte Carlo noise are drawn on the device from stateless seeds derived from (seed, global
step), so a run is reproducible and a resumed run continues with exactly the randomness it would
have used. The loop stops at the first non-finite ELBO and keeps finite weights; Ctrl-C returns the
history so far.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from .data import NUM_PIXELS
from .families import LocalFactors, check_batch
from .models import BernoulliDecoder
from .objectives import check_binary, elbo, iwae_bound
from .progress import finish_bar, progress_bar

Objective = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tf.Tensor]


class DivergenceWarning(RuntimeWarning):
    """Training produced a non-finite ELBO and was stopped."""


@dataclass
class History:
    """What `fit` returns. ``elbo[t]``: mean ELBO (nats) of step t's batch."""

    elbo: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    seconds: float = 0.0  # wall time of the whole call, compilation included
    compile_seconds: float = 0.0  # wall time of the first compiled call (tracing, compilation, one chunk)
    steps: int = 0
    images: int = 0
    batch_size: int = 0
    interrupted: bool = False
    diverged_at: int | None = None  # global step (0-based) whose ELBO was not finite
    message: str = ""
    _chunk_times: list = field(default_factory=list, repr=False)  # (steps, seconds) per compiled call

    @property
    def final_elbo(self) -> float:
        """Mean ELBO over the last min(100, steps) finite steps."""
        finite = self.elbo[np.isfinite(self.elbo)]
        return float(np.mean(finite[-100:])) if len(finite) else float("nan")

    @property
    def images_per_second(self) -> float:
        """Throughput after the first (compiling) call; over the whole run if there was one call."""
        warm = self._chunk_times[1:] or self._chunk_times
        steps, secs = sum(s for s, _ in warm), sum(t for _, t in warm)
        return steps * self.batch_size / secs if secs > 0 else float("nan")


def _validate_data(data, batch_size: int, binarize: bool) -> tf.Tensor:
    if isinstance(data, np.ndarray) and data.dtype != np.float32:
        if not np.issubdtype(data.dtype, np.floating):
            raise ValueError(f"data must be float32, got dtype {data.dtype} (convert with .astype('float32'))")
        data = data.astype(np.float32)
    data = tf.convert_to_tensor(data, tf.float32)
    if data.shape.rank != 2:
        raise ValueError(f"data must have shape [N, D], got {data.shape.as_list()}")
    check_finite(data)
    n = int(data.shape[0])
    if not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the data ({n} points); use batch_size <= {n}")
    if binarize:
        lo, hi = float(tf.reduce_min(data)), float(tf.reduce_max(data))
        if lo < 0 or hi > 1:
            raise ValueError(f"binarize=True needs pixel intensities in [0, 1], got values in [{lo:g}, {hi:g}]")
    return data


def check_finite(data, who: str = "the training data") -> None:
    """Raise ValueError if ``data: [N, D]`` holds NaN or infinite values: how many, which rows, first positions.

    Checked before training: dynamic binarization would turn a NaN pixel into 0 and train silently.
    """
    if isinstance(data, tf.Tensor) and data.dtype.is_floating:  # checked where it lives; copied only to report
        if bool(tf.reduce_all(tf.math.is_finite(data))):
            return
        data = data.numpy()
    arr = np.asarray(data)
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
    rows = np.flatnonzero(bad.reshape(len(arr), -1).any(axis=1))
    shown = ", ".join(map(str, rows[:10])) + (", ..." if len(rows) > 10 else "")
    first = ", ".join(str(tuple(int(i) for i in p)) for p in np.argwhere(bad)[:5])
    raise ValueError(
        f"{who} holds {nan + inf:,} non-finite values ({nan:,} NaN, {inf:,} infinite) in {len(rows):,} of "
        f"{len(arr):,} rows: rows {shown}; first positions (row, column): {first}. Drop those rows "
        "(x = x[np.isfinite(x).all(axis=1)]) or replace the values (np.nan_to_num) before training."
    )


def _batches(n: int, batch_size: int, steps_per_epoch: int, seed: int, step0: int, num: int) -> tf.Tensor:
    """Row numbers of the ``num`` batches that start at global step ``step0``: ``[num, batch] int32``.

    Each epoch is a fresh permutation drawn from (seed, epoch); a call never crosses an epoch end.
    Computed outside the compiled loop: XLA runs the loop markedly faster when a step's batch is
    found by the loop counter alone.
    """
    epoch, pos = divmod(step0, steps_per_epoch)
    perm = tf.argsort(tf.random.stateless_uniform([n], seed=[seed, epoch]))
    if steps_per_epoch == 1:  # full batch: every step sees every point
        return tf.tile(perm[None, :batch_size], [num, 1])
    return tf.reshape(perm[pos * batch_size : (pos + num) * batch_size], [num, batch_size])


def use_xla(jit_compile: bool | None = None) -> bool:
    """``jit_compile=None`` means "where it pays": XLA when TensorFlow sees a GPU, not on a CPU.

    Measured on a 2-core CPU (benchmarks/results.md): the reference model's epoch loop as a plain
    TensorFlow graph (oneDNN kernels) ran as fast as an XLA-compiled epoch loop of the same model on
    a quiet machine (1.03x) and 1.4-1.7x faster under load from other jobs; it also compiles faster.
    """
    if jit_compile is None:
        return bool(tf.config.list_logical_devices("GPU"))
    return bool(jit_compile)


def _global_step(optimizer) -> int:
    """optimizer.iterations as an int (also when it is a MirroredVariable under a strategy)."""
    return int(tf.convert_to_tensor(optimizer.iterations.value))


def _all_finite(tensors) -> tf.Tensor:
    flags = [tf.reduce_all(tf.math.is_finite(t.values if isinstance(t, tf.IndexedSlices) else t)) for t in tensors if t is not None]
    return tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)


def _read_checkpoint(path: str) -> dict[str, tuple]:
    """Shapes of every value saved at ``path``, after reading each one (a truncated file fails here)."""
    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    for key in shapes:
        reader.get_tensor(key)
    return {key: tuple(shape) for key, shape in shapes.items()}


def _model_difference(saved: dict[str, tuple], variables: Sequence[tf.Variable]) -> str | None:
    """How the checkpoint's ``variables/v<i>`` differ from ``variables`` (None when they match)."""
    theirs = {k.split("/")[1]: v for k, v in saved.items() if k.startswith("variables/") and k.endswith("VARIABLE_VALUE")}
    theirs = [theirs.get(f"v{i}") for i in range(len(theirs))]
    ours = [tuple(v.shape) for v in variables]
    if len(theirs) != len(ours):
        return f"it holds {len(theirs)} variables, the variables given to fit are {len(ours)}"
    for i, (a, b) in enumerate(zip(theirs, ours)):
        if a != b:
            return f"its variable {i} has shape {a}, the model's has shape {b}"
    return None


def _checkpoints_on_disk(folder: str) -> list[str]:
    """``ckpt-<step>`` prefixes in ``folder``, oldest first: for a folder whose ``checkpoint`` list is unreadable."""
    found = [Path(p).name[: -len(".index")] for p in tf.io.gfile.glob(str(Path(folder) / "ckpt-*.index"))]
    numbered = [name for name in found if name[len("ckpt-"):].isdigit()]
    return [str(Path(folder) / name) for name in sorted(numbered, key=lambda name: int(name[len("ckpt-"):]))]


def usable_checkpoint(folder: str, paths: Sequence[str], variables: Sequence[tf.Variable]) -> str | None:
    """The newest of ``paths`` (oldest first) that can be read and fits ``variables``; None if ``paths`` is empty.

    A damaged newest checkpoint (disk full, a copy cut short) is skipped with a warning naming it;
    a checkpoint of another model, or none readable, raises ValueError naming ``folder``.
    """
    damaged = []
    for path in reversed(list(paths)):
        try:
            saved = _read_checkpoint(path)
        except Exception as err:  # DataLossError, NotFoundError, IndexError("Read less bytes than requested"), ...
            damaged.append(f"{path} ({type(err).__name__}: {(str(err).splitlines() or [''])[0]})")
            continue
        difference = _model_difference(saved, variables)
        if difference:
            raise ValueError(
                f"checkpoint_dir {folder} holds a checkpoint of a different model ({Path(path).name}: {difference}). "
                "Pass a new checkpoint_dir for this model, or delete that folder to start this model from scratch."
            )
        if damaged:
            warnings.warn(
                f"Resuming from the previous checkpoint {path}: the newer checkpoint {damaged[0]} cannot be read "
                "(damaged or cut short, e.g. a full disk).",
                RuntimeWarning,
                stacklevel=3,
            )
        return path
    if damaged:
        raise ValueError(
            f"checkpoint_dir {folder}: none of its checkpoints can be read, the files are damaged or cut short: "
            f"{'; '.join(damaged)}. Delete that folder (or pass a new checkpoint_dir) to start from scratch."
        )
    return None


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
    callback: Callable[[History], None] | None = None,
    checkpoint_dir: str | None = None,
    strategy: tf.distribute.Strategy | None = None,
) -> History:
    """Maximize the mean of ``objective(x, idx, seed) -> [batch]`` over ``variables`` with Adam.

    data: ``[N, D] float32``; ``idx`` are the batch's row numbers in ``data``.
    Give ``epochs`` (passes over the data) or ``steps`` (gradient steps). ``binarize=True`` draws
    fresh Bernoulli pixels for every batch (data must be grey levels in [0, 1]).
    ``optimizer``: reuse one (e.g. to continue training); otherwise Adam(learning_rate).
    The global step is ``optimizer.iterations``: a restored optimizer resumes the same random stream.
    ``callback(history)`` runs after every compiled call (an epoch, or ``steps_per_call`` steps
    when the batch is the whole data set).
    ``jit_compile``: compile the loop with XLA (None: on a GPU only, see `use_xla`).
    ``checkpoint_dir``: save variables and optimizer there after every finite call
    (`tf.train.CheckpointManager`, 2 kept) and, if a checkpoint is already there, resume from it:
    the run then takes only the steps still missing, with the randomness it would have used.
    A damaged newest checkpoint falls back to the previous one (with a warning); a checkpoint of
    another model, or none readable, raises ValueError before anything is restored.
    ``strategy``: a `tf.distribute.Strategy` (e.g. ``MirroredStrategy()`` over several GPUs,
    ``MultiWorkerMirroredStrategy()`` over machines); create the variables inside ``strategy.scope()``.
    Each step's batch (same rows, same binarization) is split across the replicas, whose gradients
    are summed into the gradient of the whole batch's mean: the same step as on one device, up to
    the Monte Carlo noise, which each replica draws from its own stream.
    """
    data = _validate_data(data, batch_size, binarize)
    n = int(data.shape[0])
    steps_per_epoch = n // batch_size
    if (epochs is None) == (steps is None):
        raise ValueError("give exactly one of epochs=... or steps=...")
    total = epochs * steps_per_epoch if epochs is not None else steps
    if not isinstance(total, (int, np.integer)) or isinstance(total, bool) or total <= 0 or (epochs is not None and epochs <= 0):
        raise ValueError(f"epochs/steps must be positive integers, got epochs={epochs!r}, steps={steps!r}")
    variables = list(variables)
    if not variables:
        raise ValueError("no variables to optimize")
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise ValueError(f"batch_size={batch_size} must be divisible by the {replicas} replicas of the strategy")
    with strategy.scope():
        if optimizer is None:
            optimizer = keras.optimizers.Adam(learning_rate)
        optimizer.build(variables)
    chunk = steps_per_epoch if steps_per_epoch > 1 else steps_per_call
    seed_t = tf.constant(int(seed), tf.int32)
    xla = use_xla(jit_compile)
    local = batch_size // replicas

    def replica_step(x, idx, seed):
        """This replica's share of the batch: its objective and gradients, scaled for a global mean."""
        if replicas > 1:
            r = tf.distribute.get_replica_context().replica_id_in_sync_group
            x, idx = x[r * local : (r + 1) * local], idx[r * local : (r + 1) * local]
            seed = tf.random.experimental.stateless_fold_in(seed, r)
        with tf.GradientTape() as tape:
            value = tf.reduce_mean(objective(x, idx, seed)) / replicas
            loss = -value
        return value, tape.gradient(loss, variables)

    if replicas > 1:  # XLA (if asked) compiles each replica's step; the loop around it holds the all-reduces
        replica_step = tf.function(replica_step, jit_compile=xla)

    def summed_step(x, idx, seed):
        """Every replica's share, summed over all replicas (all workers) by one batched all-reduce."""
        return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, replica_step(x, idx, seed))

    @tf.function(jit_compile=xla and replicas == 1)
    def run(data, batches, step0):
        """``batches: [num_steps, batch] int32`` row numbers; ``step0``: global step of batches[0].

        ``data`` is an argument, not a captured constant: TensorFlow keeps every traced function for
        the life of the process, and a captured data set would stay in memory with it (one copy per call
        of `fit`)."""
        num_steps = batches.shape[0]
        values = tf.TensorArray(tf.float32, size=num_steps)

        def body(i, ok, values):
            step = step0 + i
            idx = batches[i]
            x = tf.gather(data, idx)
            step_seed = tf.stack([seed_t + 1, step])
            if binarize:
                noise = tf.random.stateless_uniform(tf.shape(x), seed=tf.random.experimental.stateless_fold_in(step_seed, 1))
                x = tf.cast(noise < x, tf.float32)
            noise_seed = tf.random.experimental.stateless_fold_in(step_seed, 2)
            if replicas == 1:
                value, grads = replica_step(x, idx, noise_seed)
            else:  # sum over replicas (all-reduce); every local replica holds the same sums, take the first
                summed = strategy.run(summed_step, args=(x, idx, noise_seed))
                value, grads = strategy.experimental_local_results(summed)[0]
            finite = tf.math.is_finite(value) & _all_finite(grads)

            def apply():
                optimizer.apply_gradients(zip(grads, variables))
                return tf.constant(True)

            ok = tf.cond(finite, apply, lambda: tf.constant(False))
            return i + 1, ok, values.write(i, value)

        i, ok, values = tf.while_loop(
            lambda i, ok, _: (i < num_steps) & ok, body, (tf.constant(0), tf.constant(True), values)
        )
        return values.stack(), i, ok

    history = History(batch_size=batch_size)
    chunks: list[np.ndarray] = []
    done = 0
    manager = None
    if checkpoint_dir is not None:
        ckpt = tf.train.Checkpoint(optimizer=optimizer, variables={f"v{i}": v for i, v in enumerate(variables)})
        manager = tf.train.CheckpointManager(ckpt, checkpoint_dir, max_to_keep=2)
        resume_from = usable_checkpoint(checkpoint_dir, manager.checkpoints or _checkpoints_on_disk(checkpoint_dir), variables)
        if resume_from:
            schedule = isinstance(getattr(optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule)
            given_lr = None if schedule else float(optimizer.learning_rate)
            # checked to match above; expect_partial: no warning per value another optimizer's checkpoint holds
            ckpt.restore(resume_from).assert_existing_objects_matched().expect_partial()
            if given_lr is not None:  # the checkpoint holds the old run's rate; this run uses its own
                optimizer.learning_rate = given_lr
            done = min(_global_step(optimizer), total)
    first_step = _global_step(optimizer) - done  # global step of this run's step 0
    start = time.perf_counter()
    bar = progress_bar(total, done, desc, progress)
    try:
        while done < total:
            offset = _global_step(optimizer) % chunk if steps_per_epoch > 1 else 0
            num = int(min(chunk - offset, total - done))
            snapshot = [tf.identity(v) for v in variables]
            t0 = time.perf_counter()
            step0 = _global_step(optimizer)
            values, ran, ok = run(data, _batches(n, batch_size, steps_per_epoch, seed, step0, num), tf.constant(step0))
            ran, ok = int(ran), bool(ok)
            dt = time.perf_counter() - t0
            if not history._chunk_times:
                history.compile_seconds = dt
            history._chunk_times.append((ran, dt))
            chunks.append(values.numpy()[:ran])
            done += ran
            bar.update(ran)
            finite = chunks[-1][np.isfinite(chunks[-1])]
            if len(finite):
                bar.set_postfix(elbo=f"{finite.mean():.2f}")
            if not ok:
                if not bool(_all_finite(variables)):
                    for v, old in zip(variables, snapshot):
                        v.assign(old)
                step = _global_step(optimizer)  # the failed step was not applied
                history.diverged_at = step
                last = float(values[ran - 1])
                what = f"the ELBO became {last:g} (not finite)" if not np.isfinite(last) else f"the gradient of the ELBO ({last:g}) was not finite"
                history.message = (
                    f"Training stopped at step {step}: {what}. "
                    f"The weights of the last finite step are kept. Try a smaller learning rate "
                    f"(this run used {float(optimizer.learning_rate):g}; e.g. {float(optimizer.learning_rate) / 10:g})."
                )
                warnings.warn(history.message, DivergenceWarning, stacklevel=2)
                break
            if manager is not None:
                manager.save(checkpoint_number=_global_step(optimizer))
            if callback is not None:
                history.elbo = np.concatenate(chunks)
                history.steps = done
                callback(history)
    except KeyboardInterrupt:
        # Ctrl-C lands when a compiled call returns: its steps are applied even if not yet counted
        done = _global_step(optimizer) - first_step
        history.interrupted = True
        history.message = f"Interrupted after {done} of {total} steps; the weights of the last completed step are kept."
        print(history.message)
    finally:
        history.elbo = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        history.steps = done
        history.images = done * batch_size
        history.seconds = time.perf_counter() - start
        finish_bar(bar, f"{desc}: {history.steps:,} steps in {history.seconds:.1f} s, ELBO {history.final_elbo:.2f} nats "
                   f"(mean of the last {min(100, max(1, len(history.elbo)))} steps)", progress)
    return history


def elbo_objective(family, decoder, prior, kl: str = "analytic", num_samples: int = 1) -> Objective:
    """objective(x, idx, seed) = ELBO of every point of the batch under ``family(x, idx)``: ``[batch]``."""

    def objective(x, idx, seed):
        return elbo(x, family(x, idx), decoder, prior, kl=kl, num_samples=num_samples, seed=seed)

    return objective


def train(
    family,
    decoder,
    prior,
    x,
    *,
    epochs: int,
    batch_size: int = 100,
    learning_rate: float = 1e-3,
    seed: int = 0,
    train_decoder: bool = True,
    binarize: bool = True,
    kl: str = "analytic",
    **fit_kwargs,
) -> History:
    """Fit a family (local factors or an inference network) and, unless ``train_decoder=False``, the decoder.

    x: ``[N, 784] float32``; grey levels with ``binarize=True`` (dynamic binarization), else {0, 1}.
    """
    check_batch(x, NUM_PIXELS, "train")
    check_finite(x)
    if not binarize:
        check_binary(x)
    if hasattr(family, "check_indices"):  # LocalFactors: one row per data point, checked before compiling
        family.check_indices(np.arange(len(x)))
    variables = family.trainable_variables + (decoder.trainable_variables if train_decoder else [])
    return fit(
        elbo_objective(family, decoder, prior, kl=kl),
        variables,
        x,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        seed=seed,
        binarize=binarize,
        **fit_kwargs,
    )


def infer_local(
    x_new,
    decoder,
    prior,
    *,
    steps: int = 1000,
    init=None,
    learning_rate: float = 1e-2,
    seed: int = 0,
    progress: bool = True,
    desc: str | None = None,
    **fit_kwargs,
) -> tuple[LocalFactors, History]:
    """Test-time inference for new points with the decoder frozen.

    x_new: ``[M, D]`` binary. Creates fresh `LocalFactors(M, d)`, started at the prior
    (``init=None``: local VI from scratch) or at ``init(x_new)`` (an inference network: semi-amortized
    refinement), and takes ``steps`` full-batch Adam steps on their ELBO.
    """
    x_new = np.asarray(x_new, np.float32)
    if x_new.ndim != 2:
        raise ValueError(f"infer_local expects x_new of shape [points, D], got {list(x_new.shape)}")
    if isinstance(decoder, BernoulliDecoder):
        check_batch(x_new, NUM_PIXELS, "infer_local")
        check_finite(x_new, "x_new")
        check_binary(x_new)
    d = int(prior.event_shape[0])
    if init is None:
        factors = LocalFactors(len(x_new), d)
    else:
        factors = LocalFactors.from_distribution(init(tf.constant(x_new)))
    history = fit(
        elbo_objective(factors, decoder, prior),
        factors.trainable_variables,
        x_new,
        steps=steps,
        batch_size=len(x_new),
        learning_rate=learning_rate,
        seed=seed,
        progress=progress,
        desc=desc or ("refine network output" if init is not None else "local VI (new points)"),
        **fit_kwargs,
    )
    return factors, history


def evaluate(
    x,
    family,
    decoder,
    prior,
    *,
    idx=None,
    num_samples: int = 1,
    iwae_k: int = 0,
    batch_size: int | None = None,
    seed: int = 0,
) -> dict:
    """Per-point ELBO (and IWAE bound when ``iwae_k > 0``) over a whole data set, batched.

    x: ``[N, D]`` binary for Bernoulli decoders. Returns ``{"elbo": [N], "iwae": [N] or None,
    "mean_elbo": float, "mean_iwae": float or None}`` in nats. ``batch_size``: points per compiled
    call; by default 500, or 100 with an IWAE bound, whose samples (100 at a time) multiply the memory.
    """
    batch_size = batch_size or (100 if iwae_k else 500)
    x = np.asarray(x, np.float32)
    if isinstance(decoder, BernoulliDecoder):
        check_batch(x, NUM_PIXELS, "evaluate")
        check_binary(x)
    n = len(x)
    idx = np.arange(n) if idx is None else np.asarray(idx)
    if len(idx) != n:
        raise ValueError(f"evaluate got {n} data points but {len(idx)} indices; they must match")
    if hasattr(family, "check_indices"):
        family.check_indices(idx)

    @tf.function(jit_compile=use_xla())
    def batch_bounds(xb, ib, s):
        q = family(xb, ib)
        e = elbo(xb, q, decoder, prior, num_samples=num_samples, seed=s)
        w = iwae_bound(xb, q, decoder, prior, k=iwae_k, seed=tf.random.experimental.stateless_fold_in(s, 1)) if iwae_k else e
        return e, w

    elbos, iwaes = [], []
    for b, start in enumerate(range(0, n, batch_size)):
        e, w = batch_bounds(tf.constant(x[start : start + batch_size]), tf.constant(idx[start : start + batch_size]), tf.constant([seed, b]))
        elbos.append(e.numpy())
        iwaes.append(w.numpy())
    e = np.concatenate(elbos)
    w = np.concatenate(iwaes) if iwae_k else None
    return {"elbo": e, "iwae": w, "mean_elbo": float(e.mean()), "mean_iwae": None if w is None else float(w.mean())}
