"""python -m infernet_tutorial: help, one-line errors, a small training run with --json."""
import json
import subprocess
import sys

import pytest

from infernet_tutorial.cli import main


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "infernet_tutorial", "train", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--family", "--epochs", "--lr", "--batch-size", "--latent-dim", "--seed", "--data-dir", "--json"):
        assert flag in out.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--family", "vae"], "invalid choice: 'vae' (choose from 'local', 'mlp', 'conv')"),
        (["train", "--epochs", "0"], "--epochs: must be positive"),
        (["train", "--epochs", "-3"], "--epochs: must be positive"),
        (["train", "--latent-dim", "0"], "--latent-dim: must be positive"),
        (["train", "--lr", "fast"], "--lr: expected a positive float"),
        (["fly"], "invalid choice: 'fly'"),
    ],
)
def test_bad_arguments_give_one_line(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_data_folder_is_a_one_line_error(tmp_path, capsys):
    code = main(["train", "--epochs", "1", "--data-dir", str(tmp_path / "missing"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 1
    assert "folder does not exist" in err and "INFERNET_DATA_DIR" in err and err.count("\n") == 1


def test_batch_larger_than_data(mnist_dir, capsys):
    code = main(["train", "--epochs", "1", "--n-train", "50", "--batch-size", "100", "--data-dir", str(mnist_dir), "--no-progress"])
    assert code == 1
    assert "--batch-size 100 is larger than the training data (50 digits)" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["mlp", "local"])
def test_small_training_run_writes_metrics(family, mnist_dir, tmp_path, capsys):
    path = tmp_path / "m.json"
    code = main(["train", "--family", family, "--epochs", "2", "--n-train", "500", "--n-test", "100", "--iwae-k", "20",
                 "--iwae-n", "50", "--local-steps", "50", "--data-dir", str(mnist_dir), "--json", str(path), "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    metrics = json.loads(path.read_text())
    for key in ("test_elbo", "iwae", "epochs", "seconds", "images_per_second"):
        assert key in metrics
    assert metrics["epochs"] == 2 and metrics["n_train"] == 500 and metrics["n_test"] == 100
    assert -800 < metrics["test_elbo"] < 0 and metrics["iwae"] > metrics["test_elbo"] - 5
    assert f"test ELBO:  {metrics['test_elbo']:.2f}" in out and "IWAE bound:" in out
    assert "device: CPU" in out or "device: GPU" in out
