"""Tests of the benchmarks: every benchmark runs (tiny, so it cannot rot), the race's rules, its peers'
protocol, and where results go. No timing is asserted.

The tiny run races the library against Keras fit, each in its own process (the other peers are
skipped in tiny mode); each other installed peer is run once on its own below.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks import __main__ as cli
from benchmarks import memory, test_time, throughput
from benchmarks.throughput import Peer, PeerError
from conftest import REPO


@pytest.fixture
def one_cell_notebooks(tmp_path):
    import nbformat

    folder = tmp_path / "notebooks"
    folder.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os\nprint(os.environ['INFERNET_QUICK'])")])
    nbformat.write(nb, folder / "00_tiny.ipynb")
    return folder


def test_every_benchmark_runs_tiny_and_leaves_results_md_alone(tmp_path, mnist_dir, one_cell_notebooks):
    committed = cli.RESULTS.read_bytes()
    js = tmp_path / "results.json"
    env = dict(os.environ, INFERNET_DATA_DIR=str(mnist_dir), TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(  # no --out: a tiny (or --quick) run writes to a temporary file
        [sys.executable, "-m", "benchmarks", "--tiny", "--json", str(js), "--notebooks-dir", str(one_cell_notebooks)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert cli.RESULTS.read_bytes() == committed
    written = proc.stdout.strip().splitlines()[-2].removeprefix("results written to ")
    assert written != str(cli.RESULTS) and os.path.basename(written).startswith("benchmarks-quick-")
    md = open(written).read()
    os.remove(written)
    rows = json.loads(js.read_text())["rows"]
    tables = {r["table"] for r in rows}
    assert tables == {"throughput_mlp", "throughput_conv", "test_time", "memory_params", "memory_rss", "notebooks"}

    def row(table, prefix):
        return next(r for r in rows if r["table"] == table and r["name"].startswith(prefix))

    for kind in ("mlp", "conv"):
        lib, keras = row(f"throughput_{kind}", "infernet_tutorial"), row(f"throughput_{kind}", "Keras 3 fit, jit")
        assert lib["value"] > 0 and lib["ratio"] == 1.0 and len(lib["extra"]["runs"]) == (2 if kind == "mlp" else 1)
        assert keras["value"] > 0 and keras["ratio"] == pytest.approx(keras["value"] / lib["value"])
        assert "jit_compile=True" in keras["note"]
        assert row(f"throughput_{kind}", "PyTorch")["note"] == "skipped (tiny mode)"
        assert np.isfinite(lib["extra"]["elbo"]) and np.isfinite(keras["extra"]["elbo"])
    roof = row("throughput_mlp", "roofline")
    lib_value = row("throughput_mlp", "infernet")["value"]
    assert roof["extra"]["library_fraction"] == pytest.approx(lib_value / roof["value"]) and lib_value > 0

    local = row("test_time", "local VI")
    assert local["value"] > 0 and local["extra"]["steps"] <= local["extra"]["steps_run"]
    assert all(np.isfinite(r["extra"]["mean_elbo"]) for r in rows if r["table"] == "test_time" and "mean_elbo" in r["extra"])

    assert row("memory_params", "crossover")["value"] == 10_306
    rss = row("memory_rss", "training run")
    assert rss["note"] == "" and rss["value"] > 100  # MiB: TensorFlow alone takes more

    nb = row("notebooks", "00_tiny.ipynb (quick)")
    assert nb["extra"]["ok"] and nb["extra"]["peak_rss_mib"] > 10

    assert "## Machine" in md and ("GPU figures are not yet measured" in md or "GPU: /physical_device" in md)
    assert "Load average" in md and "library / JAX + optax: not measured" in md
    assert "library / Keras fit (XLA, one epoch per call) = **" in md and "local VI / inference network forward pass" in md


# ---------------------------------------------------------------------------- where results go
def test_quick_never_writes_results_md():
    assert cli.output_path(cli.parse([])) == cli.RESULTS
    assert cli.output_path(cli.parse(["--out", "x.md"])) == cli.Path("x.md")
    assert cli.output_path(cli.parse(["--quick", "--out", "/tmp/q.md"])) == cli.Path("/tmp/q.md")
    quick = cli.output_path(cli.parse(["--quick"]))
    assert quick != cli.RESULTS and quick.name.startswith("benchmarks-quick-") and quick.exists()
    quick.unlink()
    with pytest.raises(SystemExit):
        cli.parse(["--quick", "--out", str(cli.RESULTS)])


# ---------------------------------------------------------------------------- the race's rules
def test_race_runs_rounds_interleaved_in_a_fixed_order():
    calls = []

    def step(name):
        def run():
            calls.append(name)
            return {"round": calls.count(name)}

        return run

    records, errors = throughput.race({n: step(n) for n in "ABC"}, rounds=3)
    assert calls == list("ABCABCABC")
    assert records == {n: [{"round": 1}, {"round": 2}, {"round": 3}] for n in "ABC"} and errors == {}


def test_a_failing_peer_sits_out_the_later_rounds_and_the_others_go_on():
    calls = []

    def fails_in_round_2():
        calls.append("B")
        if calls.count("B") == 2:
            raise PeerError("exited with code 1")
        return {"ok": True}

    def fine():
        calls.append("A")
        return {"ok": True}

    records, errors = throughput.race({"A": fine, "B": fails_in_round_2}, rounds=4)
    assert calls == ["A", "B", "A", "B", "A", "A"]
    assert len(records["A"]) == 4 and len(records["B"]) == 1 and errors == {"B": "exited with code 1"}


def test_targets_are_judged_from_the_rows_and_flagged_on_a_busy_machine():
    from benchmarks.common import Row
    from benchmarks.throughput import LIBRARY, LIBRARY_JUPYTER

    def row(name, value, per_cpu):
        return Row("throughput_mlp", name, value, "img/s", extra={"img_per_cpu_second": per_cpu})

    rows = [row(LIBRARY.label, 33_000, 16_000), row(LIBRARY_JUPYTER.label, 40_000, 20_000), row("JAX + optax", 32_000, 16_000)]
    quiet, busy = cli.targets(rows), cli.targets(rows, busy=True)
    assert quiet[0] == "- library / JAX + optax = **1.03x** (target >= 1.1x): NOT met (per CPU-second: 1.00x)"
    assert quiet[1].endswith("= **1.25x** (target >= 1.1x): met (per CPU-second: 1.25x)") and "first XLA-eligible" in quiet[1]
    assert busy[0].endswith("NOT met (busy machine: not reliable) (per CPU-second: 1.00x)")
    assert busy[1].endswith("): met (busy machine: not reliable) (per CPU-second: 1.25x)") and len(busy) == len(quiet) == 2


def test_summary_is_the_median_of_the_epochs_after_warm_up():
    records = [{"images": 1000, "seconds": s, "cpu_seconds": 2 * s, "elbo": e}
               for s, e in ((10.0, -300.0), (0.5, -200.0), (0.25, -150.0), (1.0, -140.0))]
    s = throughput.summarize(records, warmup=1)  # the 10 s epoch (compilation) is dropped
    assert s["runs"] == [2000.0, 4000.0, 1000.0]
    assert s["img_per_s"] == 2000.0 and s["img_per_cpu_second"] == 1000.0 and s["elbo"] == -140.0
    assert s["first_epoch_extra_s"] == 10.0 - 0.5  # the compiling epoch against the median timed one
    assert throughput.summarize(records[:1], warmup=1) is None


def test_rows_state_missing_failed_and_skipped_peers():
    cfg = throughput.Config.quick()
    peer = Peer("jax_optax", "JAX row")

    class Missing:
        status, settings = "missing", "jax, optax"

    assert throughput._row("t", peer, Missing(), [], None, None, cfg, 100, skipped=False).note.startswith(
        "not installed: jax, optax (pip install -r benchmarks/requirements-peers.txt)")
    failed = throughput._row("t", peer, Missing(), [], "exited with code 1: boom", None, cfg, 100, skipped=False)
    assert failed.value is None and failed.note == "FAILED: exited with code 1: boom"
    assert throughput._row("t", peer, None, [], None, None, cfg, 100, skipped=True).note == "skipped (quick mode)"


# ---------------------------------------------------------------------------- the peers' protocol
@pytest.fixture
def digits(tmp_path):
    path = tmp_path / "x.npy"
    np.save(path, np.random.default_rng(0).uniform(size=(250, 784)).astype(np.float32))
    return path


def run_peer(script, data, *flags, env=None):
    proc = subprocess.run([sys.executable, "-m", f"benchmarks.peers.{script}", "--data", str(data), "--epochs", "2", *flags],
                          cwd=REPO, env=env or dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("script, flags, package", [
    ("jax_optax", (), "optax"), ("torch_plain", (), "torch"), ("torch_plain", ("--kind", "conv"), "torch"),
    ("pyro_svi", (), "pyro"), ("tf_xla_bare", (), "tensorflow"),
])
def test_each_installed_peer_trains_whole_batches_and_prints_json_lines(digits, script, flags, package):
    pytest.importorskip(package)
    ready, *epochs = run_peer(script, digits, *flags)
    assert ready["ready"] is True and ready["peer"] == script
    assert [e["epoch"] for e in epochs] == [0, 1]
    assert all(e["images"] == 200 and e["seconds"] > 0 and e["cpu_seconds"] > 0 for e in epochs)  # 250 -> 2 batches
    # random grey levels: each binarized pixel is a fair coin, so the ELBO is near -784 log 2 = -543.4 nats
    assert all(-600 < e["elbo"] < -500 for e in epochs)


def test_a_peer_without_its_package_says_so(digits, tmp_path):
    fake = tmp_path / "blocked" / "jax"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('blocked for this test')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(fake.parent), str(REPO)]))
    assert run_peer("jax_optax", digits, env=env) == [{"missing": "jax, optax"}]


def test_a_served_peer_runs_one_epoch_per_command(digits):
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.peers.tf_xla_bare", "--data", str(digits), "--epochs", "2",
                             "--serve"], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), stderr=subprocess.DEVNULL)

    def message():
        line = proc.stdout.readline()
        while line and not line.startswith("{"):
            line = proc.stdout.readline()
        return json.loads(line) if line else None

    assert message()["ready"] is True
    for i in range(2):
        proc.stdin.write("epoch\n")
        proc.stdin.flush()
        assert message()["epoch"] == i
    proc.stdin.close()
    assert message() is None and proc.wait(timeout=60) == 0


# Unit checks of the benchmarks' arithmetic. They come after the subprocess runs above, which must
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
