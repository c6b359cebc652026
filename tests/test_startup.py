"""TensorFlow's start-up notices are dropped from notebook output; everything else still shows."""
import logging
from pathlib import Path

import pytest

import tensorflow as tf

from infernet_tutorial import startup

NOTICES = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1795607782.120370   31414 port.cc:153] oneDNN custom operations are on. You may see slightly different numerical results.
I0000 00:00:1795607782.121429   31414 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
E0000 00:00:1795607784.743448   31414 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)
"""


def test_known_start_up_notices_are_dropped_and_other_lines_kept():
    real_error = "E0000 00:00:1795607784.1 12 some_kernel.cc:9] Out of memory while allocating 3 GB\n"
    assert startup.filtered(NOTICES) == ""
    assert startup.filtered(NOTICES + real_error) == real_error


def test_retracing_notices_are_filtered_from_the_tensorflow_logger_only():
    logger = tf.get_logger()
    assert any(isinstance(f, startup.NoRetracingNotices) for f in logger.filters)
    seen = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        logger.warning("5 out of the last 5 calls to <function f> triggered tf.function retracing. Tracing is expensive")
        logger.warning("a real warning")
    finally:
        logger.removeHandler(handler)
    assert seen == ["a real warning"]


ONEDNN_PROBE = """
from infernet_tutorial import startup
import os
from tensorflow.python.util import _pywrap_util_port
print(os.environ.get("TF_ENABLE_ONEDNN_OPTS"), _pywrap_util_port.IsMklEnabled())
"""


def test_onednn_is_on_unless_the_user_set_the_variable():
    """TensorFlow turns oneDNN on by itself only on newer CPUs; the library turns it on everywhere,
    and a user's own setting (0: TensorFlow's choice off) wins."""
    import os
    import subprocess
    import sys

    def probe(value):
        env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
        if value is not None:
            env["TF_ENABLE_ONEDNN_OPTS"] = value
        out = subprocess.run([sys.executable, "-c", ONEDNN_PROBE], env=env, capture_output=True, text=True, check=True)
        return out.stdout.split()

    assert probe(None) == ["1", "True"]
    assert probe("0") == ["0", "False"]


KERNEL_OR_SCRIPT = """
import sys, types
if sys.argv[1] == "kernel":  # what `settings.in_jupyter_kernel` looks for: an IPython shell with a kernel
    sys.modules["IPython"] = types.SimpleNamespace(get_ipython=lambda: types.SimpleNamespace(kernel=object()))
"""

FREE_PROBE = KERNEL_OR_SCRIPT + """
import gc, os, numpy as np
from infernet_tutorial import startup
import tensorflow as tf

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20

tf.reduce_sum(tf.ones([10, 10]))  # the runtime's own first allocations
before = rss_mb()
t = tf.convert_to_tensor(np.ones([200_000, 256], np.float32))  # ~195 MB, a copy owned by TensorFlow
held = rss_mb()
del t
gc.collect()
print(held - before, rss_mb() - before, startup.in_jupyter_kernel())
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident size from /proc (Linux)")
def test_a_kernel_gives_freed_tensors_back_to_the_system_unless_the_user_set_the_allocator():
    """With oneDNN on, TensorFlow's own CPU allocator keeps freed tensors' memory for the process's
    life. In a Jupyter kernel the library's default hands it back (a kernel's later peaks then do not
    stack on its earlier ones); a script keeps TensorFlow's faster pool. A user's own setting wins."""
    import os
    import subprocess
    import sys

    def probe(where, value=None):
        env = {k: v for k, v in os.environ.items() if k != "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"}
        if value is not None:
            env["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = value
        args = [sys.executable, "-c", FREE_PROBE, where]
        held, after, kernel = subprocess.run(args, env=env, capture_output=True, text=True, check=True).stdout.split()
        assert kernel == str(where == "kernel")
        return int(held), int(after)

    held, after = probe("kernel")
    assert held > 150 and after < 30, (held, after)  # the 195 MB were held, then returned
    held, after = probe("kernel", "0")
    assert held > 150 and after > 150, (held, after)  # TensorFlow's pool keeps them
    held, after = probe("script")
    assert held > 150 and after > 150, (held, after)  # a script's default: the pool


def test_hidden_module_fails_inside_the_block_and_imports_after():
    import importlib
    import sys

    import pytest

    name = "infernet_tutorial_never_loaded_probe"  # not a real module: only the block's entry can exist
    with startup.hidden_module(name):
        assert name in sys.modules and sys.modules[name] is None
        with pytest.raises(ImportError):
            importlib.import_module(name)
    assert name not in sys.modules
    with startup.hidden_module("json"):  # loaded already: left alone
        import json

        assert json.dumps([1]) == "[1]"


SKLEARN_PROBE = """
import sys
from infernet_tutorial import startup  # loads TensorFlow and Keras
loaded_with_tf = "sklearn" in sys.modules
import sklearn.base
print(loaded_with_tf, "tensorflow" in sys.modules, sklearn.base.BaseEstimator.__name__)
"""


def test_tensorflow_loads_without_scikit_learn_which_still_imports_after():
    """Keras would import scikit-learn (~60 MB) at start-up; the library hides it then, not later."""
    import subprocess
    import sys

    import pytest

    pytest.importorskip("sklearn")
    out = subprocess.run([sys.executable, "-c", SKLEARN_PROBE], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True", "BaseEstimator"]


KERNEL_IMPORT_PROBE = KERNEL_OR_SCRIPT + """
import infernet_tutorial
loaded = "tensorflow" in sys.modules
import tensorflow as tf  # a notebook's own import, before any library call
tf.zeros([2]).numpy()
print(loaded)
"""


def test_in_a_kernel_the_package_loads_tensorflow_quietly_at_import_elsewhere_lazily():
    """A notebook that imports the package and then TensorFlow itself sees no start-up lines (TensorFlow
    writes them when it loads); a script still gets the lazy package (the CLI's --help needs no TensorFlow)."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    kernel = subprocess.run([sys.executable, "-c", KERNEL_IMPORT_PROBE, "kernel"], env=env, capture_output=True, text=True, check=True)
    assert kernel.stdout.split() == ["True"]
    assert not startup.STARTUP_NOISE.search(kernel.stderr), kernel.stderr
    script = subprocess.run([sys.executable, "-c", KERNEL_IMPORT_PROBE, "script"], env=env, capture_output=True, text=True, check=True)
    assert script.stdout.split() == ["False"]
    if not startup.STARTUP_NOISE.search(script.stderr):  # the control: the lines the kernel case must not show
        pytest.skip("this TensorFlow build printed no start-up lines, so the kernel case shows nothing either way")
