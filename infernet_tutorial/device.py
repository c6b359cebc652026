"""Which device TensorFlow computes on. TensorFlow places work on a GPU by itself when it sees one."""
from __future__ import annotations

from . import startup  # noqa: F401  (TensorFlow without its start-up lines; first)

import os

import tensorflow as tf


def gpus() -> list:
    """The GPUs TensorFlow can use (empty on a CPU-only machine)."""
    return tf.config.list_physical_devices("GPU")


def device_summary() -> str:
    """One line for notebooks and the CLI, e.g. 'GPU: NVIDIA H100 (1 visible)' or 'CPU: 2 cores, no GPU visible'."""
    found = gpus()
    if found:
        try:
            name = tf.config.experimental.get_device_details(found[0]).get("device_name", found[0].name)
        except Exception:  # details are not available on every platform
            name = found[0].name
        return f"GPU: {name} ({len(found)} visible to TensorFlow {tf.__version__})"
    return f"CPU: {os.cpu_count()} cores, no GPU visible to TensorFlow {tf.__version__}"
