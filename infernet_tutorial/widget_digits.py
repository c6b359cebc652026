"""Digits as the explorers use them: input checks, corruption, pixels to draw, q(z|x) per digit."""
from __future__ import annotations

import numpy as np

from .data import IMAGE_SIDE, NUM_PIXELS


def check_digits(x, who: str) -> np.ndarray:
    """``x`` as float32 ``[n, 784]`` with n >= 1, or a ValueError naming ``who`` and the shape given."""
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[1] != NUM_PIXELS or len(x) == 0:
        raise ValueError(f"{who} expects x_test of shape [n, {NUM_PIXELS}], got {list(x.shape)}")
    return x


def corrupt(x, occlude_rows: int = 0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A corrupted copy of one binary digit ``x: [784]``.

    ``occlude_rows``: the bottom rows are blanked (set to 0); ``noise``: each pixel is flipped with
    this probability (a fixed random pattern per ``seed``, so moving the slider adds flips).
    """
    img = np.array(x, np.float32).reshape(IMAGE_SIDE, IMAGE_SIDE)
    if noise > 0:
        u = np.random.default_rng(seed).random(img.shape)
        img = np.where(u < noise, 1 - img, img)
    if occlude_rows > 0:
        img[IMAGE_SIDE - occlude_rows :] = 0
    return img.reshape(NUM_PIXELS).astype(np.float32)


def ink(x, scale: int) -> np.ndarray:
    """``[784]`` values in [0, 1] -> ``[28 scale, 28 scale, 3]`` uint8: ink dark on white paper, each
    pixel a ``scale`` x ``scale`` block (grey level 255 (1 - x), rounded down)."""
    img = (255 * (1 - np.clip(np.asarray(x, np.float32), 0, 1))).astype(np.uint8).reshape(IMAGE_SIDE, IMAGE_SIDE)
    img = np.kron(img, np.ones((scale, scale), np.uint8))
    return np.repeat(img[:, :, None], 3, axis=2)


def q_params(network, x: np.ndarray, batch: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """(loc, scale) of the network's q(z|x), each ``[n, d]``, for ``x: [n, 784]`` in batches."""
    import tensorflow as tf

    locs, scales = [], []
    for start in range(0, len(x), batch):
        q = network(tf.constant(x[start : start + batch]))
        locs.append(np.asarray(q.mean()))
        scales.append(np.asarray(q.stddev()))
    return np.concatenate(locs), np.concatenate(scales)
