"""Environment settings shared by the library, notebooks and CLI.

`INFERNET_DATA_DIR`  a folder with MNIST (LeCun's four ``*-idx?-ubyte.gz`` files or ``mnist.npz``).
`INFERNET_QUICK=1`   quick mode: notebooks shrink data and epochs (CI, Binder, a first look).
"""
from __future__ import annotations

import os
import sys

DATA_DIR_ENV = "INFERNET_DATA_DIR"
QUICK_ENV = "INFERNET_QUICK"


def quick_mode() -> bool:
    """True when ``INFERNET_QUICK`` is set to 1/true/yes (case-insensitive); every notebook's setup cell asks."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def in_jupyter_kernel() -> bool:
    """True inside a running Jupyter (IPython) kernel: a notebook, nbconvert, nbval."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def pick(full, quick):
    """Return ``quick`` in quick mode, else ``full`` (for epochs, sizes, step counts in notebooks)."""
    return quick if quick_mode() else full


def set_random_seed(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (``keras.utils.set_random_seed``): a rerun gives the same numbers (every notebook's setup cell).

    Imports TensorFlow through the library, so its start-up notices stay filtered (see `startup`).
    """
    from . import startup  # noqa: F401

    import keras

    keras.utils.set_random_seed(int(seed))
