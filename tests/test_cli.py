"""python -m infernet_tutorial: help, a small training run with --json, and the failures a student meets:
one line on stderr naming the problem and the fix, and a non-zero exit code (1 for errors, 2 for bad
arguments, 130 for Ctrl-C). No tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

import keras
import pytest

import infernet_tutorial as it
from infernet_tutorial.cli import main

SMALL = ["--epochs", "1", "--n-train", "60", "--batch-size", "20", "--n-test", "20", "--iwae-k", "2", "--iwae-n", "10",
         "--latent-dim", "2", "--no-progress"]


def one_line_error(capsys):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("python -m infernet_tutorial: error: ")
    return err


def test_help_runs_as_a_module():
    out = subprocess.run([sys.executable, "-m", "infernet_tutorial", "train", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for flag in ("--family", "--epochs", "--lr", "--batch-size", "--latent-dim", "--seed", "--data-dir", "--json"):
        assert flag in out.stdout


@pytest.mark.parametrize(
    "argv, facts",
    [
        (["train", "--family", "vae"], ["--family", "'vae'", "'local', 'mlp', 'conv'"]),
        (["train", "--epochs", "0"], ["--epochs", "positive", "0"]),
        (["train", "--epochs", "-3"], ["--epochs", "positive", "-3"]),
        (["train", "--latent-dim", "0"], ["--latent-dim", "positive", "0"]),
        (["train", "--lr", "0"], ["--lr", "positive", "0"]),
        (["train", "--lr", "fast"], ["--lr", "positive float", "'fast'"]),
        (["train", "--batch-size", "-20"], ["--batch-size", "positive", "-20"]),
        (["train", "--n-train", "ten"], ["--n-train", "positive int", "'ten'"]),
        (["fly"], ["invalid choice", "'fly'"]),
    ],
)
def test_bad_arguments_give_one_line(argv, facts, capsys):
    """Exit code 2 and one line naming the option, the wrong value and what is expected."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert all(fact in err for fact in facts), (facts, err)


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
    out, err = capsys.readouterr()
    assert "Warning" not in err, err  # no library's deprecation notes on a user's terminal
    assert code == 0
    metrics = json.loads(path.read_text())
    for key in ("test_elbo", "iwae", "epochs", "seconds", "images_per_second"):
        assert key in metrics
    assert metrics["epochs"] == 2 and metrics["n_train"] == 500 and metrics["n_test"] == 100
    assert -800 < metrics["test_elbo"] < 0 and metrics["iwae"] > metrics["test_elbo"] - 5
    assert f"test ELBO:  {metrics['test_elbo']:.2f}" in out and "IWAE bound:" in out
    assert "device: CPU" in out or "device: GPU" in out


def test_corrupt_data_file_is_named(tmp_path, mnist_dir, capsys):
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (tmp_path / name).write_bytes((mnist_dir / name).read_bytes())
    raw = (mnist_dir / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(raw[:5000])  # an interrupted download
    code = main(["train", "--data-dir", str(tmp_path), *SMALL])
    assert code == 1
    err = one_line_error(capsys)
    assert str(tmp_path / "train-images-idx3-ubyte.gz") in err and "truncated" in err and "--data-dir" in err


def test_env_var_naming_a_missing_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("INFERNET_DATA_DIR", str(tmp_path / "gone"))
    code = main(["train", *SMALL])
    assert code == 1
    err = one_line_error(capsys)
    assert str(tmp_path / "gone") in err and "named by the environment variable INFERNET_DATA_DIR" in err


def test_divergence_is_a_one_line_error(mnist_dir, monkeypatch, capsys):
    """Adam rarely produces NaN here; plain SGD with a huge step does, so the CLI's train is given one."""
    real_train = it.train

    def train_with_sgd(*args, **kwargs):
        kwargs["optimizer"] = keras.optimizers.SGD(1e3)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(it, "train", train_with_sgd)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        code = main(["train", "--data-dir", str(mnist_dir), "--epochs", "20", "--lr", "0.01", *SMALL[2:]])
    assert code == 1
    err = one_line_error(capsys)
    assert "Training stopped at step" in err and "Try a smaller learning rate" in err and "--lr 0.001" in err
    assert not [w for w in shown if issubclass(w.category, it.DivergenceWarning)]  # said once, not twice


def test_ctrl_c_exits_130(mnist_dir, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(it, "load_mnist", interrupted)
    assert main(["train", "--data-dir", str(mnist_dir), *SMALL]) == 130
    assert capsys.readouterr().err == "python -m infernet_tutorial: interrupted\n"
