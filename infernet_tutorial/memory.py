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


@functools.cache
def _malloc_trim():
    """glibc's ``malloc_trim``, or None (macOS, Windows, musl)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


def return_free_memory() -> bool:
    """Give the allocator's free pages back to the system; False where the C library cannot."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
