"""TensorFlow's start-up notices are dropped from notebook output; everything else still shows."""
import logging

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
