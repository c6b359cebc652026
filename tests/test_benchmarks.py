"""Smoke test of the benchmarks: every benchmark runs, tiny, so it cannot rot. No timing is asserted.

Runs ``python -m benchmarks --tiny`` in a subprocess (no PyTorch needed: tiny mode skips the peer
rows) with a one-cell notebook standing in for notebooks/, and checks the tables it writes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO))
from benchmarks import memory, test_time, throughput  # noqa: E402


@pytest.fixture
def one_cell_notebooks(tmp_path):
    import nbformat

    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nprint(os.environ['INFERNET_QUICK'])")])
    nbformat.write(nb, folder / "00_tiny.ipynb")
    return folder


def test_every_benchmark_runs_tiny_and_writes_its_tables(tmp_path, mnist_dir, one_cell_notebooks):
    out, js = tmp_path / "results.md", tmp_path / "results.json"
    env = dict(os.environ, INFERNET_DATA_DIR=str(mnist_dir), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--tiny", "--out", str(out), "--json", str(js),
         "--notebooks-dir", str(one_cell_notebooks)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads(js.read_text())["rows"]
    tables = {r["table"] for r in rows}
    assert tables == {"throughput_mlp", "throughput_conv", "test_time", "memory_params", "memory_rss", "notebooks"}

    def row(table, prefix):
        return next(r for r in rows if r["table"] == table and r["name"].startswith(prefix))

    for kind in ("mlp", "conv"):
        lib, keras = row(f"throughput_{kind}", "infernet_tutorial"), row(f"throughput_{kind}", "Keras")
        assert lib["value"] > 0 and lib["ratio"] == 1.0
        assert keras["value"] > 0 and keras["ratio"] == pytest.approx(keras["value"] / lib["value"])
        assert row(f"throughput_{kind}", "PyTorch")["note"] == "torch skipped (tiny mode)"
    roof = row("throughput_mlp", "roofline")
    assert roof["extra"]["library_fraction"] == pytest.approx(lib_fraction := row("throughput_mlp", "infernet")["value"] / roof["value"])
    assert 0 < lib_fraction
    assert row("throughput_mlp", "bare TF")["value"] > 0

    local = row("test_time", "local VI")
    assert local["value"] > 0 and local["extra"]["steps"] <= local["extra"]["steps_run"]
    assert all(np.isfinite(r["extra"]["mean_elbo"]) for r in rows if r["table"] == "test_time" and "mean_elbo" in r["extra"])

    assert row("memory_params", "crossover")["value"] == 10_306
    rss = row("memory_rss", "training run")
    assert rss["note"] == "" and rss["value"] > 100  # MiB: TensorFlow alone takes more

    nb = row("notebooks", "00_tiny.ipynb (quick)")
    assert nb["extra"]["ok"] and nb["extra"]["peak_rss_mib"] > 10

    md = out.read_text()
    assert "## Machine" in md and "GPU figures are not yet measured" in md or "GPU: /physical_device" in md
    assert "Load average" in md and "library / Keras fit" in md and "local VI / encoder forward pass" in md


# Unit checks of the benchmarks' arithmetic. They come after the subprocess run above, which must
# start while this process has not loaded TensorFlow yet (crossover() builds an encoder).
def test_reference_model_costs_2_45_mflop_per_image():
    # forward: 784*256 + 256*20 + 10*256 + 256*784 multiply-adds; backward ~ twice the forward
    assert throughput.reference_flops() == 6 * (784 * 256 + 256 * 20 + 10 * 256 + 256 * 784) == 2_454_528


def test_crossover_is_where_local_factors_outgrow_the_encoder():
    n, encoder_bytes = memory.crossover()
    assert encoder_bytes == 4 * 206_100
    assert n == 10_306  # 2 * 10 * N > 206,100  <=>  N > 10,305


def test_steps_to_plateau():
    trace = np.concatenate([np.linspace(-200, -100, 101), np.full(899, -100.0)])
    steps, plateau = test_time.steps_to_plateau(trace, tolerance=1.0, window=1)
    assert plateau == pytest.approx(-100.0)
    assert steps == 100  # -101 is reached at index 99: 100 steps taken
