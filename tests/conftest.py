"""Shared fixtures and helpers. The whole test run is offline (pytest-socket, set in pyproject.toml).

``--disable-socket`` makes every socket a test opens fail, name lookups included; the test files in
`LOOPBACK_TESTS` talk to servers they start themselves (JupyterLab, TensorFlow workers) and may connect to
127.0.0.1 only (the ``allow_hosts`` marker added below).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

try:  # urllib3 (imported by TensorFlow) opens a socket once on import to probe for IPv6: let it, before tests run
    import urllib3  # noqa: F401
except ImportError:  # pragma: no cover
    pass

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
LOOPBACK = ["127.0.0.1", "::1"]
LOOPBACK_TESTS = {"test_browser.py", "test_distribute.py", "test_offline_stage.py"}


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.name in LOOPBACK_TESTS:
            item.add_marker(pytest.mark.allow_hosts(LOOPBACK))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder: $INFERNET_DATA_DIR, else ../shared/data/mnist next to the checkout."""
    folder = Path(os.environ.get("INFERNET_DATA_DIR") or SHARED_MNIST)
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(f"real MNIST not found in {folder}; set INFERNET_DATA_DIR (see README)")
    return folder


@pytest.fixture(autouse=True, scope="module")
def _release_memory_between_modules():
    """Drop each module's models and compiled functions before the next one (keeps the suite < 2 GB)."""
    yield
    import gc
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].backend.clear_session()
    gc.collect()


# ---------------------------------------------------------------- helpers shared by the test modules


def small_model(latent_dim: int = 2, hidden: int = 8, seed: int | None = None):
    """(MLPInferenceNetwork, BernoulliDecoder, prior) with few units; seeded weights when ``seed`` is given."""
    import keras

    import infernet_tutorial as it

    if seed is not None:
        keras.utils.set_random_seed(seed)
    return it.MLPInferenceNetwork(latent_dim, hidden=hidden), it.BernoulliDecoder(latent_dim, hidden=hidden), it.standard_normal_prior(latent_dim)


def weights(*parts) -> list[np.ndarray]:
    """Copies of the trainable variables of every part (families, decoders, models), in order."""
    return [v.numpy().copy() for p in parts for v in p.trainable_variables]


def unchanged(before: list[np.ndarray], *parts) -> bool:
    """True when the parts' variables still equal ``before`` (from `weights`) exactly."""
    now = weights(*parts)
    return len(now) == len(before) and all(np.array_equal(a, b) for a, b in zip(before, now))


def assign_weights(parts, values) -> None:
    """Put ``values`` (from `weights`) back into the parts' variables."""
    for v, a in zip([v for p in parts for v in p.trainable_variables], values):
        v.assign(a)


@contextlib.contextmanager
def raises_with(*facts: str, error: type[Exception] = ValueError):
    """Like ``pytest.raises(error)``, and the message must contain every fact (plain substrings): the wrong
    value, the expected shape or range, the fix keyword. Rewording the rest of a message breaks no test."""
    with pytest.raises(error) as info:
        yield info
    message = str(info.value)
    missing = [fact for fact in facts if fact not in message]
    assert not missing, f"the message {message!r} does not state {missing}"
