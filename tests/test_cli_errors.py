"""Command-line failures a student meets: one line on stderr naming the problem and the fix, and a
non-zero exit code (1 for errors, 2 for bad arguments, 130 for Ctrl-C). No tracebacks."""
from __future__ import annotations


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


@pytest.mark.parametrize("argv, message", [
    (["train", "--lr", "0"], "--lr: must be positive, got 0"),
    (["train", "--batch-size", "-20"], "--batch-size: must be positive, got -20"),
    (["train", "--n-train", "ten"], "--n-train: expected a positive int, got 'ten'"),
])
def test_more_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


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
