"""Checks of user input, run at the library's entry points so that mistakes get a plain ValueError
(what was wrong, and how to fix it) instead of an error from deep inside TensorFlow."""
from __future__ import annotations

import numpy as np
import tensorflow as tf


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


def training_data(data, batch_size: int, binarize: bool) -> tf.Tensor:
    """``data: [N, D]`` as a float32 tensor, after checking dtype, shape, finiteness, batch size and range."""
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
