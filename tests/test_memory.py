"""`memory.return_free_memory`: freed heap pages go back to the system (glibc on Linux)."""
from __future__ import annotations

import ctypes
import os
import sys

import pytest

from infernet_tutorial.memory import _libc, return_free_memory

MB = 1 << 20


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux") or _libc("malloc_trim") is None, reason="glibc's malloc_trim (Linux)")
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


def live_func_graphs() -> int:
    import gc

    from tensorflow.python.framework.func_graph import FuncGraph

    gc.collect()
    return sum(isinstance(o, FuncGraph) for o in gc.get_objects())


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_leaves_no_traced_graph_alive(jit_compile):
    """Keras's optimizer calls all_reduce on every step; its tf.custom_gradient entry in TensorFlow's
    registry kept each `fit` call's traced graph (~11 MB) alive. After `fit`, none of its graphs or
    entries remain, while a custom gradient registered outside `fit` stays."""
    import numpy as np
    import tensorflow as tf

    import infernet_tutorial as it
    from infernet_tutorial.memory import custom_gradient_names

    @tf.custom_gradient
    def doubled_gradient(t):
        return t, lambda dy: 2 * dy

    @tf.function
    def users_graph(t):
        return doubled_gradient(t)

    users_graph(tf.constant(1.0))  # traced: registers a custom gradient the user's graph needs
    x = np.random.default_rng(0).random([200, 784]).astype(np.float32)

    def one_fit():
        family, decoder, prior = it.MLPInferenceNetwork(2, 16), it.BernoulliDecoder(2, 16), it.standard_normal_prior(2)
        h = it.fit(it.elbo_objective(family, decoder, prior), family.trainable_variables + decoder.trainable_variables,
                   x, steps=4, batch_size=100, binarize=True, jit_compile=jit_compile, progress=False)
        assert h.steps == 4 and np.all(np.isfinite(h.elbo))

    one_fit()  # first use: whatever TensorFlow and Keras keep once
    graphs, names = live_func_graphs(), custom_gradient_names()
    for _ in range(3):
        one_fit()
    assert live_func_graphs() == graphs
    assert custom_gradient_names() == names and len(names) >= 1
    with tf.GradientTape() as tape:
        t = tf.constant(3.0)
        tape.watch(t)
        y = users_graph(t)
    assert float(tape.gradient(y, t)) == 2.0


@pytest.mark.skipif(not sys.platform.startswith("linux") or _libc("mallopt") is None, reason="glibc's mallopt (Linux)")
def test_large_allocations_are_mapped_and_returned_when_freed():
    """After `map_large_allocations` (startup calls it), a freed 20 MB block leaves the process at once,
    even after an earlier mapped block's free, which would otherwise raise glibc's threshold above it."""
    import subprocess

    probe = (
        "import ctypes, ctypes.util\n"
        "from infernet_tutorial.memory import map_large_allocations\n"
        "libc = ctypes.CDLL(ctypes.util.find_library('c')); libc.malloc.restype = ctypes.c_void_p\n"
        "import os; rss = lambda: int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE') >> 20\n"
        "assert map_large_allocations()\n"
        "for size in (20 << 20, 20 << 20):\n"
        "    p = libc.malloc(size); ctypes.memset(p, 1, size); before = rss(); libc.free(ctypes.c_void_p(p))\n"
        "    print(before - rss())\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert [int(v) >= 19 for v in out] == [True, True], out  # each 20 MB block returned on free
