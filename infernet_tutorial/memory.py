"""Hand freed memory back to the operating system (a notebook's kernel lives for dozens of `fit` calls).

TensorFlow frees a compiled call's temporaries (and XLA's compiler its working memory) with
``free``, but glibc's allocator keeps most freed pages in its arenas, so the process's resident
size (what Binder's 2 GB and the notebooks' 1.5 GB budget count) only grows. ``malloc_trim(0)``
returns the free pages; it frees nothing that is still in use.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter (malloc.h)
LARGE = 1 << 20  # bytes: allocations from here up get their own mapping (`map_large_allocations`)


@functools.cache
def _libc(function: str):
    """A glibc function (``malloc_trim``, ``mallopt``), or None (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), function) if name else None
    except (OSError, AttributeError):
        return None


def return_free_memory() -> bool:
    """Give the allocator's free pages back to the system; False where the C library cannot."""
    trim = _libc("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def map_large_allocations(threshold: int = LARGE) -> bool:
    """Serve every allocation of at least ``threshold`` bytes from its own mapping, returned to the
    system when freed; False where the C library cannot.

    glibc raises its mapping threshold each time a mapped block is freed (up to 32 MB), so a kernel's
    data copies, IWAE samples and activations end up in its heaps, which fragment and stay large.
    A fixed threshold keeps them out (`startup` calls this before TensorFlow loads).
    """
    mallopt = _libc("mallopt")
    return mallopt is not None and bool(mallopt(M_MMAP_THRESHOLD, int(threshold)))


def _gradient_registry() -> dict:
    """TensorFlow's global table of gradient functions by op type (a private attribute; {} where it is not there)."""
    from tensorflow.python.framework import ops

    registry = getattr(getattr(ops, "_gradient_registry", None), "_registry", None)
    return registry if isinstance(registry, dict) else {}


def custom_gradient_names() -> set[str]:
    """The names `tf.custom_gradient` has registered so far (``CustomGradient-<n>``)."""
    return {name for name in _gradient_registry() if name.startswith("CustomGradient-")}


def drop_custom_gradients(keep: set[str]) -> int:
    """Drop the custom gradients registered since ``keep = custom_gradient_names()``; returns how many.

    Each time a graph that calls ``all_reduce`` is traced (Keras's optimizer update calls it on every
    `fit` step, even on one device), `tf.custom_gradient` registers a gradient function for it in
    TensorFlow's global registry, and that entry keeps the whole traced graph alive, never freed
    (README, Notebooks, has the measurement). The entries are needed only to differentiate those
    traces, which nothing does once `fit` has returned (its compiled function is gone with it).
    """
    registry = _gradient_registry()
    new = custom_gradient_names() - keep
    for name in new:
        registry.pop(name, None)
    return len(new)
