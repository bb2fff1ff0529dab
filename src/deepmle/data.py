"""MNIST digit pairs as float arrays: x = pixel darkness in [0, 1], y = 1. for the first digit.

Sources:
  embedded  all of MNIST, shipped in this package per digit (see data/PROVENANCE.md): a pair
            is read as its two digits' arrays only, merged back into MNIST order, and
            checked against data/checksums.txt at every load;
  npz       a local Keras-format mnist.npz (x_train, y_train, x_test, y_test), any pair;
  tfds      tensorflow_datasets' "mnist" through ``tfds.data_source`` (no TensorFlow needed
            to read a prepared copy), any pair.

The validation split is carved from the training split by a fixed permutation, so it is
the same on every run and machine; the test split is never used for selection.
"""

import hashlib
import zipfile
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from deepmle.core.types import Dataset, Split
from deepmle.errors import UserError, not_a_file

VALIDATION_PERMUTATION_SEED = 1729
"""Seed of the fixed permutation that picks the validation examples out of the training split."""

EMBEDDED_FILE = "mnist_by_digit.npz"
SPLITS = ("train", "test")
MNIST_PIXELS = 28 * 28
"""Pixels of an MNIST image: the input size of every network trained on these sources (the
rest of deepmle reads it from the data, ``dataset.train.x.shape[1]``)."""


class DataRequest(Protocol):
    """What ``load`` reads: a config's [data] section (``deepmle.config.DataConfig``), which
    imports this module to validate its source, not the other way round."""

    source: str
    digits: tuple[int, int]
    path: str
    validation_fraction: float


class DataError(UserError):
    """A data file that is missing, unreadable, corrupt, or lacks the digits asked for."""


def _embedded_path() -> Path:
    return Path(str(resources.files("deepmle") / "data" / EMBEDDED_FILE))


def read_checksums(path: Path | str) -> dict[str, str]:
    """{array name: sha256} from a checksums file: lines ``<sha256>  <name>  <shape> <dtype>``."""
    text = Path(str(path)).read_text()
    return {line.split()[1]: line.split()[0] for line in text.splitlines() if line.strip()}


def _expected_checksums() -> dict[str, str]:
    return read_checksums(resources.files("deepmle") / "data" / "checksums.txt")


def array_sha256(a: np.ndarray) -> str:
    """The checksum convention of data/checksums.txt: sha256 of the C-contiguous bytes."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


MAX_IMAGES = 1_000_000
"""The most rows an array of a data file may declare (MNIST has 70,000 images): a header
declaring more is refused before anything is allocated or read."""


def _check_declared(path: Path, f: "np.lib.npyio.NpzFile", key: str) -> None:
    """DataError if ``key``'s .npy header declares more rows than MAX_IMAGES or more bytes than
    the file's member holds: read from the header alone, before the array is."""
    info = f.zip.getinfo(f"{key}.npy")
    with f.zip.open(info) as member:
        version = np.lib.format.read_magic(member)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else (
            np.lib.format.read_array_header_2_0)  # fmt: skip
        shape, _, dtype = read(member)
        header = member.tell()
    rows = shape[0] if shape else 1
    if rows > MAX_IMAGES:
        raise DataError(f"{path}: {key} declares {rows:,} images, more than the {MAX_IMAGES:,} "
                        "a data file may hold (corrupt?)")  # fmt: skip
    declared = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
    if dtype.hasobject or declared > info.file_size - header:
        raise DataError(f"{path}: {key} declares shape {shape} of {dtype}, {declared:,} bytes, "
                        f"but holds {info.file_size - header:,} (corrupt?)")  # fmt: skip


def _read_npz(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Every array in ``keys`` from an .npz, or a DataError saying what is wrong with the file;
    sizes are checked against the headers before any array is read."""
    problem = not_a_file(path, "data file")
    if problem:
        raise DataError(problem)
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in keys if k not in f.files]
            if missing:
                raise DataError(f"{path}: no array named {', '.join(missing)} (has {f.files})")
            for k in keys:
                _check_declared(path, f, k)
            return {k: f[k] for k in keys}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    except MemoryError:
        raise DataError(f"{path}: declares arrays too large to load (corrupt?)") from None


def repack_by_digit(mnist: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """MNIST's ``<split>_images`` [n, 28, 28] and ``<split>_labels`` [n] as the embedded
    file's arrays: ``<split>_images_<d>`` [n_d, 28, 28] and ``<split>_index_<d>`` [n_d]
    (int32 positions in MNIST order), for every digit d of 0..9."""
    out = {}
    for split in SPLITS:
        labels = mnist[f"{split}_labels"]
        for d in range(10):
            index = np.flatnonzero(labels == d).astype(np.int32)
            out[f"{split}_images_{d}"] = mnist[f"{split}_images"][index]
            out[f"{split}_index_{d}"] = index
    return out


def merge_digits(
    arrays: dict[str, np.ndarray], digits: Sequence[int], splits: Sequence[str] = SPLITS
) -> dict[str, np.ndarray]:
    """``digits``' per-digit arrays merged back into MNIST order: ``<split>_images`` [n, 28,
    28] uint8 and ``<split>_labels`` [n] uint8 (the digit), for each of ``splits``. All ten
    digits give MNIST itself."""
    out = {}
    for split in splits:
        index = np.concatenate([arrays[f"{split}_index_{d}"] for d in digits])
        order = np.argsort(index, kind="stable")
        images = np.concatenate([arrays[f"{split}_images_{d}"] for d in digits])
        labels = np.concatenate(
            [np.full(arrays[f"{split}_index_{d}"].shape, d, np.uint8) for d in digits]
        )
        out[f"{split}_images"], out[f"{split}_labels"] = images[order], labels[order]
    return out


def load_embedded(
    path: Path | None = None, digits: Sequence[int] = (1, 2), splits: Sequence[str] = SPLITS
) -> dict[str, np.ndarray]:
    """The shipped MNIST examples of ``digits`` in ``splits`` (uint8 images [n, 28, 28], labels
    [n], the digit, in MNIST order): only those arrays are read, each checksum-verified."""
    path = path or _embedded_path()
    _check_digits(digits, str(path))
    expected = _expected_checksums()
    names = tuple(f"{s}_{k}_{d}" for s in splits for k in ("images", "index") for d in digits)
    arrays = _read_npz(path, names)
    for name in names:
        if array_sha256(arrays[name]) != expected[name]:
            raise DataError(f"{path}: array {name} fails its sha256 check (file corrupt?)")
    return merge_digits(arrays, digits, splits)


def _check_digits(digits: Sequence[int], where: str) -> None:
    ok = len(digits) == 2 and all(isinstance(d, int | np.integer) for d in digits)
    if not ok or not all(0 <= d <= 9 for d in digits) or digits[0] == digits[1]:
        raise DataError(f"{where}: digits must be two distinct digits 0-9, got {list(digits)}")


def _pixels(where: str, name: str, images: np.ndarray) -> np.ndarray:
    """``images`` [n, 28, 28] or [n, 28·28] as float32 [n, 28·28] darkness in [0, 1]: integers must
    lie in 0..255 (divided by 255), floats be finite and lie in [0, 1]; DataError otherwise."""
    a = np.asarray(images)
    if a.ndim in (2, 3) and a.shape[0] == 0:
        raise DataError(f"{where}: {name} holds no images")
    if a.ndim not in (2, 3):
        raise DataError(
            f"{where}: {name} must be images [n, 28, 28] or [n, {MNIST_PIXELS}], "
            f"got shape {a.shape}"
        )
    flat = a.reshape(a.shape[0], -1)
    if flat.shape[1] != MNIST_PIXELS:
        raise DataError(f"{where}: {name} images must be 28x28, got {a.shape[1:]}")
    if a.dtype.kind in "iu":
        lo, hi = int(flat.min()), int(flat.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{where}: {name} pixels must be 0..255, found {lo}..{hi}")
        return flat.astype(np.float32) / np.float32(255)
    if a.dtype.kind != "f":
        raise DataError(f"{where}: {name} must hold numbers, got dtype {a.dtype}")
    bad = int(np.size(flat) - np.count_nonzero(np.isfinite(flat)))
    if bad:
        raise DataError(f"{where}: {name} has {bad} non-finite pixel(s) (NaN or inf)")
    lo, hi = float(flat.min()), float(flat.max())
    if lo < 0 or hi > 1:
        raise DataError(f"{where}: {name} float pixels must lie in [0, 1], found {lo:g}..{hi:g}")
    return flat.astype(np.float32)


def _labels(where: str, name: str, labels: np.ndarray, n: int, images: str) -> np.ndarray:
    """``labels`` as int [n], one digit per image of ``images``; DataError otherwise."""
    y = np.asarray(labels)
    if y.shape != (n,):
        raise DataError(
            f"{where}: {name} must be [{n}] digits, one per image of {images}, got shape {y.shape}"
        )
    if y.dtype.kind not in "iuf" or (y.dtype.kind == "f" and not np.all(np.mod(y, 1) == 0)):
        raise DataError(f"{where}: {name} must hold whole digits, got dtype {y.dtype}")
    return y.astype(np.int64)


def _select_pair(
    where: str,
    names: tuple[str, str],
    images: np.ndarray,
    labels: np.ndarray,
    digits: tuple[int, int],
) -> Split:
    """The examples of the pair ``digits``: x [n, pixels] in [0, 1], y = 1. for the first digit."""
    x = _pixels(where, names[0], images)
    y = _labels(where, names[1], labels, x.shape[0], names[0])
    keep = np.isin(y, digits)
    for d in digits:
        if not np.any(y == d):
            raise DataError(f"{where}: {names[1]} has no examples of digit {d}")
    if not np.any(x[keep]):
        raise DataError(f"{where}: {names[0]}: every pixel of digits {digits[0]} and "
                        f"{digits[1]} is 0 (no ink): there is nothing to learn from")  # fmt: skip
    return Split(x=x[keep], y=(y[keep] == digits[0]).astype(np.float32))


def _load_npz_source(path: Path, digits: tuple[int, int]) -> tuple[Split, Split]:
    a = _read_npz(path, ("x_train", "y_train", "x_test", "y_test"))
    return (
        _select_pair(str(path), ("x_train", "y_train"), a["x_train"], a["y_train"], digits),
        _select_pair(str(path), ("x_test", "y_test"), a["x_test"], a["y_test"], digits),
    )


def _load_tfds_source(data_dir: str | None, digits: tuple[int, int]) -> tuple[Split, Split]:
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise DataError(
            "data source 'tfds' needs tensorflow-datasets: pip install 'deepmle[tfds]'"
        ) from e

    if data_dir is not None and not (Path(data_dir) / "mnist").is_dir():
        what = "does not exist" if not Path(data_dir).exists() else "holds no mnist/ folder"
        raise DataError(
            f"[data] path {data_dir!r} (the tfds data_dir) {what}: prepare MNIST there once "
            f"with `tfds build mnist --file_format=array_record --data_dir {data_dir}`, or set "
            "path to the --data_dir you used"
        )

    def split(name: str) -> Split:
        try:
            source = tfds.data_source("mnist", split=name, data_dir=data_dir, download=False)
            records = [source[i] for i in range(len(source))]
        except Exception as e:  # TFDS raises many types for a missing or unprepared dataset
            first = (str(e).strip().splitlines() or [type(e).__name__])[0].rstrip(".")
            raise DataError(
                f"tfds mnist ({name}) not readable from data_dir={data_dir!r}: {first}. "
                "Prepare it once with `tfds build mnist --file_format=array_record`."
            ) from e
        images = np.stack([np.asarray(r["image"])[..., 0] for r in records])
        labels = np.asarray([int(r["label"]) for r in records])
        return _select_pair(f"tfds mnist ({name})", ("image", "label"), images, labels, digits)

    return split("train"), split("test")


def sha256(dataset: Dataset) -> str:
    """A digest of a dataset's content (every split's x and y as loaded): what makes two runs'
    data the same, whichever file or directory it came from."""
    h = hashlib.sha256()
    for a in (a for split in dataset for a in split):
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def carve_validation(train: Split, fraction: float) -> tuple[Split, Split]:
    """(train, validation): a fixed permutation sends round(fraction·n) examples to validation.
    DataError if either part would be empty."""
    n = train.y.shape[0]
    n_val = round(fraction * n)
    if not 0 < n_val < n:
        raise DataError(
            f"[data] validation_fraction {fraction:g} leaves {n_val} of {n} training examples "
            f"for validation and {n - n_val} for training; both must be at least 1"
        )
    order = np.random.default_rng(VALIDATION_PERMUTATION_SEED).permutation(n)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    return (
        Split(train.x[train_idx], train.y[train_idx]),
        Split(train.x[val_idx], train.y[val_idx]),
    )


def _load_embedded_source(config: "DataRequest") -> tuple[Split, Split]:
    digits = tuple(config.digits)
    a = load_embedded(Path(config.path) if config.path else None, digits)
    where = config.path or "the embedded data"
    return (
        _select_pair(where, ("train_images", "train_labels"), a["train_images"],
                     a["train_labels"], digits),
        _select_pair(where, ("test_images", "test_labels"), a["test_images"],
                     a["test_labels"], digits),
    )  # fmt: skip


class Source(NamedTuple):
    """One data source: ``load(data_section) -> (train, test)`` splits; ``path`` says what its
    [data] path names, and whether it must be given."""

    load: Callable[["DataRequest"], tuple[Split, Split]]
    path: str
    needs_path: bool = False


SOURCES: dict[str, Source] = {
    "embedded": Source(_load_embedded_source,
                       f"another copy of the embedded {EMBEDDED_FILE} (optional)"),
    "npz": Source(lambda c: _load_npz_source(Path(c.path).expanduser(), tuple(c.digits)),
                  "a Keras-format mnist.npz", needs_path=True),
    "tfds": Source(lambda c: _load_tfds_source(c.path or None, tuple(c.digits)),
                   "the tensorflow_datasets data_dir (optional)"),
}  # fmt: skip
"""name -> Source: config validation reads the names and ``needs_path`` from here. Add a
source by adding a row."""


def load_test(config: "DataRequest") -> Split:
    """The test split of ``load(config)``, bitwise, reading no more than it needs: for the
    embedded data only the test arrays of the two digits (what a run's figures read; the
    training images were 0.3 s of ``deepmle plot``)."""
    if config.source != "embedded":
        return load(config).test
    digits = tuple(config.digits)
    a = load_embedded(Path(config.path) if config.path else None, digits, ("test",))
    names = ("test_images", "test_labels")
    return _select_pair(config.path or "the embedded data", names, *(a[n] for n in names), digits)


def load(config: "DataRequest") -> Dataset:
    """The Dataset a config's [data] section names: train, validation and test splits."""
    _check_digits(tuple(config.digits), "[data] digits")
    if config.source not in SOURCES:
        raise DataError(f"unknown data source {config.source!r}")
    train, test = SOURCES[config.source].load(config)
    train, validation = carve_validation(train, config.validation_fraction)
    return Dataset(train=train, validation=validation, test=test)
