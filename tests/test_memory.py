"""`memory.return_free_memory`: freed heap pages go back to the system (glibc on Linux)."""
from __future__ import annotations

import ctypes
import os
import sys

import pytest

from infernet_tutorial.memory import _malloc_trim, return_free_memory

MB = 1 << 20


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux") or _malloc_trim() is None, reason="glibc's malloc_trim (Linux)")
def test_freed_small_blocks_are_returned_to_the_system():
    """200 MB in 4 KB blocks (below glibc's mmap threshold, so they live in the heap), freed but for the
    last one, which pins the top of the heap: the allocator keeps the pages until they are trimmed."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = resident_bytes()
    blocks = [libc.malloc(4096) for _ in range(200 * MB // 4096)]
    for b in blocks:
        ctypes.memset(b, 1, 4096)  # touch every page
    for b in blocks[:-1]:
        libc.free(b)
    kept = resident_bytes()
    assert kept - before > 150 * MB, "freed blocks still resident (what the allocator keeps)"
    assert return_free_memory() is True
    after = resident_bytes()
    libc.free(blocks[-1])
    assert kept - after > 150 * MB, (before // MB, kept // MB, after // MB)
