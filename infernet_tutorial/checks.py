"""Checks of user input, run at the library's entry points so that mistakes get a plain ValueError
(what was wrong, and how to fix it) instead of an error from deep inside TensorFlow.

Entry points: the constructors (`check_positive_int`, `check_latent_dim`), the families and bounds
(`check_batch`, `check_index_range`), the models' own ``check_data`` (`check_data` calls it where a model
has one; `check_binary` for Bernoulli likelihoods) and the training loop (`training_data`, `check_finite`).
Shape checks are static, so they also fire while a `tf.function` traces; value checks run eagerly.
TensorFlow is imported only by the checks that take tensors, so `data` can use this module without it.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

FLATTEN_HINT = " (flatten 28x28 images with x.reshape(-1, 784))"


def check_positive_int(value, name: str, hint: str = "", minimum: int = 1) -> int:
    """``value`` as an int; ValueError "``name`` must be a positive integer``hint``, got ..." unless it is an
    integer >= ``minimum`` (booleans are not counts)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {what}{hint}, got {value!r}")
    return int(value)


def check_latent_dim(latent_dim) -> None:
    """The latent dimension d of a prior, family or decoder: a positive integer."""
    check_positive_int(latent_dim, "latent_dim", " (e.g. 10)")


def check_batch(x, width: int, who: str, context: str = "") -> None:
    """Static checks of ``x: [batch, width]`` float; raises ValueError with the expected shape.

    ``context`` follows the expected shape in the message (e.g. " for a Bernoulli decoder"); 28x28
    images get the flattening hint.
    """
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 2 or (shape[1] is not None and shape[1] != width):
        hint = FLATTEN_HINT if width == 784 and shape[-2:] == (28, 28) else ""
        raise ValueError(f"{who} expects x of shape [batch, {width}]{context}, got {list(shape)}{hint}")
    dtype = getattr(x, "dtype", None)
    name = getattr(dtype, "name", str(dtype))
    if dtype is not None and "float" not in name:
        raise ValueError(f"{who} expects float32 inputs, got dtype {name} (convert with x.astype('float32'))")


def check_binary(x, who: str = "A Bernoulli likelihood") -> None:
    """Raise ValueError unless every value of ``x`` is 0 or 1 (eager values only)."""
    arr = np.asarray(x)
    bad = ~((arr == 0) | (arr == 1))
    if bad.any():
        example = arr[bad].flat[0]
        where = "outside [0, 1]" if ((arr < 0) | (arr > 1)).any() else "grey levels"
        raise ValueError(
            f"{who} needs binary pixels (0 or 1), but {int(bad.sum())} values are not ({where}, e.g. {example:g}). "
            "Use load_mnist(binarize='static' or 'sample'), or binarize=True in fit/train for grey levels in [0, 1]."
        )


def check_index_range(idx, num_points: int, who: str, hint: str = "") -> None:
    """Raise ValueError unless every index in ``idx`` is an integer in 0..num_points-1 (eager values).

    Local families look their rows up by index; inside a compiled loop an out-of-range gather is
    clamped silently or fails mid-epoch, so they check their indices before training starts.
    """
    idx = np.asarray(idx)
    if idx.size == 0:
        return
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{who} expects integer indices, got dtype {idx.dtype}")
    lo, hi = int(idx.min()), int(idx.max())
    if lo < 0 or hi >= num_points:
        raise ValueError(f"{who} index out of range: got indices {lo}..{hi}, valid are 0..{num_points - 1}{hint}")


def check_idx(x, idx, who: str):
    """``idx: [batch]`` integers, one per point of ``x`` (static checks, also while tracing): as a tensor."""
    from . import startup  # noqa: F401  (TensorFlow without its start-up lines)
    import tensorflow as tf

    idx = tf.convert_to_tensor(idx)
    if idx.shape.rank != 1:
        raise ValueError(f"{who} expects idx of shape [batch], got {idx.shape.as_list()}")
    if not idx.dtype.is_integer:
        raise ValueError(f"{who} expects integer indices, got dtype {idx.dtype.name}")
    n = None if x is None else x.shape[0]
    if n is not None and idx.shape[0] is not None and n != idx.shape[0]:
        raise ValueError(f"{who} got {n} data points but {idx.shape[0]} indices; they must match")
    return idx


@runtime_checkable
class ChecksItsData(Protocol):
    """A model that knows what data it can explain (e.g. `BernoulliDecoder`: binary 784-pixel images)."""

    def check_data(self, x, who: str, binary: bool = True) -> None: ...


def check_data(model, x, who: str, binary: bool = True) -> None:
    """``model.check_data(x, who, binary)`` where the model has one (a decoder the library does not know has none).

    ``binary=False``: only the shape (data that `fit` will binarize on the fly may hold grey levels).
    """
    if isinstance(model, ChecksItsData):
        model.check_data(x, who, binary)


def as_points(x, who: str, name: str = "x") -> np.ndarray:
    """``x: [points, D]`` as float32 numpy, finite; ValueError naming ``who`` and the shape otherwise."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2:
        raise ValueError(f"{who} expects {name} of shape [points, D], got {list(x.shape)}")
    check_finite(x, name)
    return x


def check_finite(data, who: str = "the training data") -> None:
    """Raise ValueError if ``data: [N, D]`` holds NaN or infinite values: how many, which rows, first positions.

    Checked before training: dynamic binarization would turn a NaN pixel into 0 and train silently.
    """
    from . import startup  # noqa: F401  (TensorFlow without its start-up lines)
    import tensorflow as tf

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


def training_data(data, batch_size: int, binarize: bool) -> tf.Tensor:
    """``data: [N, D]`` as a float32 tensor, after checking dtype, shape, finiteness, batch size and range."""
    from . import startup  # noqa: F401  (TensorFlow without its start-up lines)
    import tensorflow as tf
    if isinstance(data, np.ndarray) and data.dtype != np.float32:
        if not np.issubdtype(data.dtype, np.floating):
            raise ValueError(f"data must be float32, got dtype {data.dtype} (convert with .astype('float32'))")
        data = data.astype(np.float32)
    data = tf.convert_to_tensor(data, tf.float32)
    if data.shape.rank != 2:
        raise ValueError(f"data must have shape [N, D], got {data.shape.as_list()}")
    check_finite(data)
    n = int(data.shape[0])
    check_positive_int(batch_size, "batch_size")
    if batch_size > n:
        raise ValueError(f"batch_size={batch_size} is larger than the data ({n} points); use batch_size <= {n}")
    if binarize:
        lo, hi = float(tf.reduce_min(data)), float(tf.reduce_max(data))
        if lo < 0 or hi > 1:
            raise ValueError(f"binarize=True needs pixel intensities in [0, 1], got values in [{lo:g}, {hi:g}]")
    return data
