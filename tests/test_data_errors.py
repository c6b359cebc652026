"""Broken MNIST files: each fault is built in tmp_path (from real bytes where it matters) and must
raise MNISTDataError (a ValueError) naming the file, the problem and the fix; never partial data.
NaN or infinite values in the training data: a ValueError before training that counts and locates them."""
from __future__ import annotations

import gzip
import shutil
import struct

import numpy as np
import pytest

import infernet_tutorial as it
from infernet_tutorial import data as data_mod
from infernet_tutorial.settings import DATA_DIR_ENV

from conftest import raises_with, small_model, unchanged, weights

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TRAIN_LABELS = "train-labels-idx1-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"
TEST_LABELS = "t10k-labels-idx1-ubyte.gz"
FOUR = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    """An IDX file for a uint8 array (LeCun's format), optionally with a wrong magic number."""
    magic = (0x0800 | array.ndim) if magic is None else magic
    return struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_gz(path, payload: bytes) -> None:
    with gzip.open(path, "wb") as f:
        f.write(payload)


@pytest.fixture()
def small_mnist(tmp_path, mnist_dir):
    """A valid folder with the four files holding the first 20 real train / 10 real test digits."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    for split, (images_name, labels_name), n in (("train", (TRAIN_IMAGES, TRAIN_LABELS), 20), ("test", (TEST_IMAGES, TEST_LABELS), 10)):
        images = data_mod.read_idx(mnist_dir / images_name, data_mod.IDX_IMAGES_MAGIC)[:n]
        labels = data_mod.read_idx(mnist_dir / labels_name, data_mod.IDX_LABELS_MAGIC)[:n]
        write_gz(folder / images_name, idx_bytes(images))
        write_gz(folder / labels_name, idx_bytes(labels))
    return folder


def expect_data_error(folder, split="train", *, names, says):
    """load_mnist must raise MNISTDataError whose message names the file, the problem and the fix."""
    with pytest.raises(it.MNISTDataError) as info:
        it.load_mnist(split, data_dir=folder)
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert names in message, message
    for part in ([says] if isinstance(says, str) else says):
        assert part in message, message
    assert "data_dir=" in message and "--data-dir" in message and DATA_DIR_ENV in message, message
    assert "\n" not in message  # one line for the command line
    return message


def test_the_small_valid_folder_loads(small_mnist, mnist_dir):
    """Sanity of the fixture: the faults below are the only thing wrong with their folders."""
    x, y = it.load_mnist("train", binarize=None, data_dir=small_mnist)
    full, labels = it.load_mnist("train", n=20, binarize=None, data_dir=mnist_dir)
    assert x.shape == (20, 784) and np.array_equal(x, full) and np.array_equal(y, labels)


def test_missing_folder_names_folder_and_setting(tmp_path):
    message = expect_data_error(tmp_path / "nowhere", names=str(tmp_path / "nowhere"), says="folder does not exist")
    assert "train-images-idx3-ubyte.gz" in message  # says which files to put there


def test_data_dir_that_is_a_file(tmp_path):
    f = tmp_path / "mnist.txt"
    f.write_text("not a folder")
    expect_data_error(f, names=str(f), says="is a file, not a folder")


def test_env_var_naming_a_missing_folder(tmp_path, monkeypatch):
    missing = tmp_path / "no-such-folder"
    monkeypatch.setenv(DATA_DIR_ENV, str(missing))
    with pytest.raises(it.MNISTDataError) as info:
        it.load_mnist("test", n=5)
    message = str(info.value)
    assert str(missing) in message and "folder does not exist" in message
    assert f"environment variable {DATA_DIR_ENV}" in message and "unset it" in message


@pytest.mark.parametrize("name", FOUR)
def test_each_missing_file_is_named(small_mnist, name):
    (small_mnist / name).unlink()
    split = "train" if name.startswith("train") else "test"
    message = expect_data_error(small_mnist, split, names=str(small_mnist / name), says="file is missing")
    assert "the folder holds" in message  # shows what is there instead


def test_empty_folder(tmp_path):
    expect_data_error(tmp_path, names=str(tmp_path / TRAIN_IMAGES), says=["file is missing", "the folder is empty"])


def test_truncated_gzip(small_mnist, mnist_dir):
    raw = (mnist_dir / TRAIN_IMAGES).read_bytes()
    (small_mnist / TRAIN_IMAGES).write_bytes(raw[: len(raw) // 3])  # real bytes, download cut short
    expect_data_error(small_mnist, names=str(small_mnist / TRAIN_IMAGES), says=["truncated", "download it again"])


def test_file_that_is_not_gzip(small_mnist):
    (small_mnist / TRAIN_LABELS).write_text("<html>404 Not Found</html>")  # a failed download saved as .gz
    expect_data_error(small_mnist, names=str(small_mnist / TRAIN_LABELS), says="not a valid gzip file")


def test_truncated_idx_payload(small_mnist):
    images = data_mod.read_idx(small_mnist / TEST_IMAGES, data_mod.IDX_IMAGES_MAGIC)
    write_gz(small_mnist / TEST_IMAGES, idx_bytes(images)[:-100])  # valid gzip, IDX body cut short
    expect_data_error(small_mnist, "test", names=str(small_mnist / TEST_IMAGES), says=["announces 10 items", "truncated or corrupt"])


def test_idx_header_too_short(small_mnist):
    write_gz(small_mnist / TRAIN_LABELS, b"\x00\x00")
    expect_data_error(small_mnist, names=str(small_mnist / TRAIN_LABELS), says="too short for an IDX header")


def test_wrong_magic_number(small_mnist):
    # images and labels swapped: the label file sits where the images should be
    shutil.copy(small_mnist / TRAIN_LABELS, small_mnist / TRAIN_IMAGES)
    expect_data_error(
        small_mnist, names=str(small_mnist / TRAIN_IMAGES), says=["wrong IDX magic number 0x00000801", "expected 0x00000803"]
    )


def test_image_label_count_mismatch(small_mnist):
    labels = data_mod.read_idx(small_mnist / TRAIN_LABELS, data_mod.IDX_LABELS_MAGIC)
    write_gz(small_mnist / TRAIN_LABELS, idx_bytes(labels[:15]))
    expect_data_error(small_mnist, names=str(small_mnist / TRAIN_IMAGES), says=["20 images", "15 labels", "counts must match"])


def test_labels_outside_0_to_9(small_mnist):
    write_gz(small_mnist / TRAIN_LABELS, idx_bytes(np.full(20, 12, np.uint8)))
    expect_data_error(small_mnist, names=str(small_mnist / TRAIN_LABELS), says="labels must be integers 0..9")


def test_images_not_28x28_idx(small_mnist):
    write_gz(small_mnist / TRAIN_IMAGES, idx_bytes(np.zeros((20, 32, 32), np.uint8)))
    expect_data_error(small_mnist, names=str(small_mnist / TRAIN_IMAGES), says="images are 32x32 pixels, expected 28x28")


def _npz(folder, **arrays):
    folder.mkdir(exist_ok=True)
    np.savez(folder / "mnist.npz", **arrays)
    return folder / "mnist.npz"


def test_npz_layout_loads(tmp_path, small_mnist):
    x = data_mod.read_idx(small_mnist / TEST_IMAGES, data_mod.IDX_IMAGES_MAGIC)
    y = data_mod.read_idx(small_mnist / TEST_LABELS, data_mod.IDX_LABELS_MAGIC)
    _npz(tmp_path / "k", x_train=x, y_train=y, x_test=x, y_test=y)
    digits = it.load_mnist("test", binarize=None, data_dir=tmp_path / "k")
    assert np.array_equal(digits.images, x.reshape(10, 784) / np.float32(255)) and np.array_equal(digits.labels, y)


def test_npz_with_wrong_keys(tmp_path):
    npz = _npz(tmp_path / "k", images=np.zeros((5, 28, 28), np.uint8), labels=np.zeros(5, np.uint8))
    expect_data_error(tmp_path / "k", names=str(npz), says=["keys ['images', 'labels'] found", "expected ['x_train', 'y_train']"])


def test_npz_images_not_28x28(tmp_path):
    npz = _npz(tmp_path / "k", x_train=np.zeros((5, 27, 27), np.uint8), y_train=np.zeros(5, np.uint8),
               x_test=np.zeros((5, 27, 27), np.uint8), y_test=np.zeros(5, np.uint8))
    expect_data_error(tmp_path / "k", names=str(npz), says=["images have shape (5, 27, 27)", "expected [n, 28, 28]"])


def test_npz_count_mismatch(tmp_path):
    npz = _npz(tmp_path / "k", x_train=np.zeros((5, 28, 28), np.uint8), y_train=np.zeros(4, np.uint8))
    expect_data_error(tmp_path / "k", names=str(npz), says="5 images but 4 labels")


def test_npz_with_scaled_float_images(tmp_path):
    """Images already divided by 255 would silently become all-black uint8 without this check."""
    npz = _npz(tmp_path / "k", x_train=np.full((5, 28, 28), 0.5, np.float32), y_train=np.zeros(5, np.uint8))
    expect_data_error(tmp_path / "k", names=str(npz), says="whole grey levels 0..255")


def test_npz_not_a_zip(tmp_path):
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "mnist.npz").write_bytes(b"PK\x03\x04 broken")
    expect_data_error(tmp_path / "k", names=str(tmp_path / "k" / "mnist.npz"), says="cannot be read as .npz")


def test_a_fixed_folder_loads_after_an_error(small_mnist):
    """Errors are not cached: once the student puts the file back, the same call works."""
    good = (small_mnist / TRAIN_LABELS).read_bytes()
    (small_mnist / TRAIN_LABELS).write_bytes(good[:10])
    with pytest.raises(it.MNISTDataError):
        it.load_mnist("train", data_dir=small_mnist)
    (small_mnist / TRAIN_LABELS).write_bytes(good)
    assert it.load_mnist("train", data_dir=small_mnist).images.shape == (20, 784)


# ---------------------------------------------------------------- NaN / inf in the training data


@pytest.fixture()
def grey_with_faults(mnist_dir):
    """40 real grey-level digits with NaN at (3, 100), (7, 5) and +inf at (7, 600), -inf at (12, 0)."""
    x = it.load_mnist("train", n=40, binarize=None, data_dir=mnist_dir).images.copy()
    x[3, 100] = x[7, 5] = np.nan
    x[7, 600], x[12, 0] = np.inf, -np.inf
    return x


NON_FINITE_FACTS = (  # what, how many of each kind, which rows, where, and the fix
    "the training data", "4 non-finite values", "2 NaN, 2 infinite", "3 of 40 rows", "rows 3, 7, 12",
    "(3, 100), (7, 5), (7, 600), (12, 0)", "np.isfinite", "np.nan_to_num",
)


def test_train_refuses_nan_and_inf_before_training(grey_with_faults):
    enc, dec, prior = small_model(2, seed=0)
    before = weights(enc, dec)
    for binarize in (True, False):
        with raises_with(*NON_FINITE_FACTS):
            it.train(enc, dec, prior, grey_with_faults, epochs=1, batch_size=20, binarize=binarize, progress=False)
    assert unchanged(before, enc, dec)  # nothing was trained


def test_fit_refuses_nan_with_dynamic_binarization(grey_with_faults):
    """fit itself checks: binarization would turn a NaN pixel into 0 and train on without a word."""
    import tensorflow as tf

    w = tf.Variable(tf.zeros(784))
    with raises_with(*NON_FINITE_FACTS):
        it.fit(lambda x, idx, s: -tf.reduce_sum(tf.square(x - w), -1), [w], grey_with_faults, steps=2,
               batch_size=20, binarize=True, progress=False)
    assert not np.any(w.numpy())


def test_non_finite_message_lists_first_rows_only():
    import tensorflow as tf

    x = np.zeros((30, 4), np.float32)
    x[::2, 1] = np.nan  # 15 rows
    w = tf.Variable(tf.zeros(4))
    with raises_with("15 non-finite values", "15 NaN, 0 infinite", "15 of 30 rows", "rows 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, ...;",
                     "(0, 1), (2, 1), (4, 1), (6, 1), (8, 1)."):
        it.fit(lambda xb, idx, s: -tf.reduce_sum(tf.square(xb - w), -1), [w], x, steps=1, batch_size=10, progress=False)
