"""Checkpoints for `fit`: find the newest usable one, restore it, save after every finite call.

`tf.train.CheckpointManager` does the saving; what is added here is the reading side a user needs
after a crash: a damaged newest checkpoint falls back to the previous one (with a warning), and a
checkpoint of another model is refused with a message before anything is restored.
"""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import warnings
from pathlib import Path
from typing import Sequence

import keras
import tensorflow as tf


def step_of(optimizer) -> int:
    """optimizer.iterations as an int (also when it is a MirroredVariable under a strategy)."""
    return int(tf.convert_to_tensor(optimizer.iterations.value))


def manager_resumed(folder: str, optimizer, variables: Sequence[tf.Variable]) -> tuple[tf.train.CheckpointManager, bool]:
    """A manager for ``folder`` (2 kept) and whether a checkpoint was restored: the newest usable one,
    if any, into ``optimizer`` and ``variables``. The optimizer keeps the learning rate it was given."""
    ckpt = tf.train.Checkpoint(optimizer=optimizer, variables={f"v{i}": v for i, v in enumerate(variables)})
    manager = tf.train.CheckpointManager(ckpt, folder, max_to_keep=2)
    path = usable_checkpoint(folder, manager.checkpoints or _checkpoints_on_disk(folder), variables)
    if path:
        schedule = isinstance(getattr(optimizer, "_learning_rate", None), keras.optimizers.schedules.LearningRateSchedule)
        given_lr = None if schedule else float(optimizer.learning_rate)
        # checked to match above; expect_partial: no warning per value another optimizer's checkpoint holds
        ckpt.restore(path).assert_existing_objects_matched().expect_partial()
        if given_lr is not None:  # the checkpoint holds the old run's rate; this run uses its own
            optimizer.learning_rate = given_lr
    return manager, bool(path)


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
                stacklevel=4,
            )
        return path
    if damaged:
        raise ValueError(
            f"checkpoint_dir {folder}: none of its checkpoints can be read, the files are damaged or cut short: "
            f"{'; '.join(damaged)}. Delete that folder (or pass a new checkpoint_dir) to start from scratch."
        )
    return None
