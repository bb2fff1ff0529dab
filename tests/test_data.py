import hashlib
import zipfile
from pathlib import Path

import numpy as np
import pytest

from deepmle import config as config_lib
from deepmle import data

CONFIGS = Path(__file__).parent.parent / "configs"


def _hashes(x: np.ndarray) -> set[str]:
    return {hashlib.sha1(row.tobytes()).hexdigest() for row in x}


def test_embedded_counts_shapes_and_values(embedded):
    train, val, test = embedded
    assert train.y.shape[0] + val.y.shape[0] == 12_700
    assert val.y.shape[0] == 1_270
    assert test.y.shape[0] == 2_167
    for split in embedded:
        assert split.x.dtype == np.float32 and split.y.dtype == np.float32
        assert split.x.shape == (split.y.shape[0], 784)
        assert split.x.min() == 0.0 and split.x.max() == 1.0
        assert set(np.unique(split.y)) == {0.0, 1.0}
    # MNIST's published counts of 1s (Y=1) in train+validation and in test.
    assert int(train.y.sum() + val.y.sum()) == 6_742
    assert int(test.y.sum()) == 1_135


def test_splits_do_not_overlap(embedded):
    train, val, test = (_hashes(s.x) for s in embedded)
    assert not train & val
    assert not train & test
    assert not val & test


def test_validation_carve_is_deterministic(embedded):
    again = data.load(config_lib.DataConfig())
    np.testing.assert_array_equal(again.validation.x, embedded.validation.x)


def test_validation_fraction_is_honoured():
    ds = data.load(config_lib.DataConfig(validation_fraction=0.25))
    assert ds.validation.y.shape[0] == 3_175


def test_embedded_data_carries_its_provenance():
    from importlib import resources

    text = (resources.files("deepmle") / "data" / "PROVENANCE.md").read_text()
    assert "LeCun" in text and "CC BY-SA 3.0" in text


def _embedded_arrays() -> dict[str, np.ndarray]:
    with np.load(data._embedded_path()) as f:
        return {k: f[k] for k in f.files}


def test_checksum_failure_is_caught(tmp_path):
    arrays = _embedded_arrays()
    arrays["train_images_2"] = arrays["train_images_2"].copy()
    arrays["train_images_2"][0, 14, 14] ^= 1  # one pixel off by one
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(data.DataError, match="train_images_2 fails its sha256 check"):
        data.load_embedded(bad)
    data.load_embedded(bad, (3, 4))  # only the pair asked for is read, and checked


def test_a_digits_arrays_swapped_for_anothers_are_refused(tmp_path):
    """Each array is the genuine one of another digit, so its bytes match a checksum in the
    file: the checksum must be its own digit's, or the 2s would load labelled 1."""
    arrays = _embedded_arrays()
    for split in data.SPLITS:
        for kind in ("images", "index"):
            one, two = f"{split}_{kind}_1", f"{split}_{kind}_2"
            arrays[one], arrays[two] = arrays[two], arrays[one]
    swapped = tmp_path / "swapped.npz"
    np.savez(swapped, **arrays)
    with pytest.raises(data.DataError, match=r"_[12] fails its sha256 check"):
        data.load_embedded(swapped)
    data.load_embedded(swapped, (3, 4))  # the other digits' arrays are untouched


def test_truncated_file_is_caught(tmp_path):
    raw = data._embedded_path().read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(data.DataError, match=r"not a readable \.npz"):
        data.load_embedded(bad)


PUBLISHED = Path(data.__file__).parent / "data"
SHARED = [Path("/work/shared/data"), Path(__file__).resolve().parent.parent.parent / "shared/data"]


def test_the_per_digit_file_is_all_of_mnist_and_its_1s_and_2s_are_the_old_file():
    """Merged back, the ten digits reproduce the published checksums of every MNIST array,
    and the pair (1, 2) those of the former mnist_1v2.npz (so default results are unchanged);
    where the shared MNIST files sit beside the clone (CI), equal to them array by array."""
    arrays = _embedded_arrays()
    full = data.merge_digits(arrays, range(10))
    for name, digest in data.read_checksums(PUBLISHED / "checksums_mnist.txt").items():
        assert data.array_sha256(full[name]) == digest, name
    pair = data.load_embedded()
    for name, digest in data.read_checksums(PUBLISHED / "checksums_mnist_1v2.txt").items():
        assert data.array_sha256(pair[name]) == digest, name
    for name, digest in data.read_checksums(PUBLISHED / "checksums.txt").items():
        assert data.array_sha256(arrays[name]) == digest, name
    for shared in (d for d in SHARED if (d / "mnist.npz").is_file()):
        with np.load(shared / "mnist.npz") as f:
            for name in f.files:
                np.testing.assert_array_equal(full[name], f[name])
        if (shared / "mnist_1v2.npz").is_file():
            with np.load(shared / "mnist_1v2.npz") as f:
                for name in f.files:
                    np.testing.assert_array_equal(pair[name], f[name])
        np.testing.assert_array_equal(data.repack_by_digit(full)["test_index_7"],
                                      arrays["test_index_7"])  # fmt: skip


@pytest.mark.parametrize("digits", [(3, 8), (8, 3), (0, 9)])
def test_embedded_any_pair_offline(digits):
    """Counts are MNIST's published per-digit counts; Y = 1 for the first digit listed."""
    train_n = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
    test_n = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)
    ds = data.load(config_lib.DataConfig(digits=digits))
    a, b = digits
    assert ds.train.y.shape[0] + ds.validation.y.shape[0] == train_n[a] + train_n[b]
    assert int(ds.train.y.sum() + ds.validation.y.sum()) == train_n[a]
    assert ds.test.y.shape[0] == test_n[a] + test_n[b] and int(ds.test.y.sum()) == test_n[a]
    raw = data.load_embedded(digits=digits)
    assert np.all(np.diff(np.flatnonzero(np.isin(raw["test_labels"], digits))) == 1)
    assert set(np.unique(raw["train_labels"])) == set(digits)


@pytest.mark.parametrize("digits", [(1, 2), (8, 3)])
def test_load_test_is_loads_test_split_bitwise_and_reads_only_test_arrays(tmp_path, digits):
    """What a run's figures read: the same test split as ``load``, and a training array that
    fails its checksum does not stop it (it is not read)."""
    cfg = config_lib.DataConfig(digits=digits)
    whole, test = data.load(cfg).test, data.load_test(cfg)
    assert test.x.dtype == whole.x.dtype and test.y.dtype == whole.y.dtype
    np.testing.assert_array_equal(test.x, whole.x)
    np.testing.assert_array_equal(test.y, whole.y)
    arrays = _embedded_arrays()
    arrays[f"train_images_{digits[0]}"] = arrays[f"train_images_{digits[0]}"][::-1].copy()
    np.savez(bad := tmp_path / "bad.npz", **arrays)
    with pytest.raises(data.DataError, match="fails its sha256 check"):
        data.load(config_lib.DataConfig(digits=digits, path=str(bad)))
    np.testing.assert_array_equal(
        data.load_test(config_lib.DataConfig(digits=digits, path=str(bad))).x, whole.x
    )


def test_missing_file_is_caught(tmp_path):
    with pytest.raises(data.DataError, match="not found"):
        data.load(config_lib.DataConfig(source="npz", path=str(tmp_path / "nope.npz")))


def _keras_npz(path, rng):
    def split(n):
        return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), rng.integers(0, 10, n)

    (x_train, y_train), (x_test, y_test) = split(600), split(200)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return x_train, y_train, x_test, y_test


@pytest.mark.parametrize("digits", [(3, 8), (8, 3)])
def test_npz_source_any_pair(tmp_path, rng, digits):
    """Y = 1 for the first digit listed, also where it is the larger (8 of [8, 3])."""
    path = tmp_path / "mnist.npz"
    _, y_train, x_test, y_test = _keras_npz(path, rng)
    ds = data.load(config_lib.DataConfig(source="npz", path=str(path), digits=digits))
    n_train = int(np.isin(y_train, digits).sum())
    assert ds.train.y.shape[0] + ds.validation.y.shape[0] == n_train
    assert int(ds.train.y.sum() + ds.validation.y.sum()) == int((y_train == digits[0]).sum())
    assert ds.test.y.shape[0] == int(np.isin(y_test, digits).sum())
    np.testing.assert_array_equal(ds.test.y, y_test[np.isin(y_test, digits)] == digits[0])
    first = x_test[np.isin(y_test, digits)][0].reshape(-1) / 255.0
    np.testing.assert_allclose(ds.test.x[0], first, rtol=1e-6)


def test_npz_source_with_missing_arrays(tmp_path):
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(data.DataError, match="no array named y_train"):
        data.load(config_lib.DataConfig(source="npz", path=str(path)))


def test_npz_source_not_a_zip(tmp_path):
    path = tmp_path / "mnist.npz"
    path.write_text("not a zip")
    with pytest.raises(data.DataError, match="not a readable"):
        data.load(config_lib.DataConfig(source="npz", path=str(path)))
    assert not zipfile.is_zipfile(path)


@pytest.mark.parametrize("digits", [(3, 3), (1, 10), (-1, 2), (1, 2, 3)])
def test_a_pair_that_is_not_two_distinct_digits_is_refused(digits):
    with pytest.raises(data.DataError, match="two distinct digits 0-9"):
        data.load(config_lib.DataConfig(digits=digits))


@pytest.mark.parametrize("digits", ["[3, 3]", "[1, 10]", "[1]", "[1, 2, 3]"])
def test_a_bad_pair_in_a_config_is_one_line_and_exit_2(tmp_path, capsys, digits):
    from deepmle.cli import main

    code = main(["run", str(CONFIGS / "seed.toml"), "--out", str(tmp_path / "run"),
                 "--set", f"data.digits={digits}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "[data] digits" in err, err
    assert not (tmp_path / "run").exists()


def test_tfds_source_under_mock_data():
    import tensorflow_datasets as tfds  # a declared dependency: no skip

    with tfds.testing.mock_data(num_examples=400, policy=tfds.testing.MockPolicy.USE_CODE):
        ds = data.load(config_lib.DataConfig(source="tfds", digits=(1, 7)))
    for split in ds:
        assert split.x.shape[1] == 784 and split.x.dtype == np.float32
        assert 0.0 <= split.x.min() and split.x.max() <= 1.0
        assert set(np.unique(split.y)) <= {0.0, 1.0}
    assert ds.train.y.shape[0] > 0 and ds.test.y.shape[0] > 0
    assert ds.validation.y.shape[0] == round(0.1 * (ds.train.y.shape[0] + ds.validation.y.shape[0]))


def test_tfds_source_without_prepared_data_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="tfds build mnist"):
        data.load(config_lib.DataConfig(source="tfds", path=str(tmp_path)))


def _faulty(tmp_path, rng, **change):
    """A Keras-format mnist.npz with one array changed, and the CLI's answer to it."""
    x = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    y = np.tile(np.array([1, 2, 3]), 100)
    arrays = {"x_train": x, "y_train": y, "x_test": x[:60], "y_test": y[:60]} | change
    path = tmp_path / "mnist.npz"
    np.savez(path, **arrays)
    return path


FAULTS = {
    "NaN pixel": (lambda x: {"x_train": np.where(np.arange(784).reshape(28, 28) == 5, np.nan,
                                                  x / 255.0)},
                  "x_train has 300 non-finite pixel(s)"),
    "int16 pixels below 0": (lambda x: {"x_train": (x.astype(np.int16) - 128)},
                             "x_train pixels must be 0..255, found -128..127"),
    "float pixels above 1": (lambda x: {"x_train": x.astype(np.float32)},
                             "x_train float pixels must lie in [0, 1], found 0..255"),
    "lengths differ": (lambda x: {"y_train": np.tile(np.array([1, 2, 3]), 99)},
                       "y_train must be [300] digits, one per image of x_train, got shape (297,)"),
    "labels as a column": (lambda x: {"y_train": np.tile(np.array([1, 2, 3]), 100)[:, None]},
                           "y_train must be [300] digits"),
    "0-d labels": (lambda x: {"y_test": np.array(1)}, "y_test must be [60] digits"),
    "wrong rank images": (lambda x: {"x_test": x[:60].reshape(60, 28, 28, 1, 1)},
                          "x_test must be images [n, 28, 28] or [n, 784]"),
    "no digit 2 in test": (lambda x: {"y_test": np.ones(60, np.int64)},
                           "y_test has no examples of digit 2"),
}  # fmt: skip


@pytest.mark.parametrize("fault", list(FAULTS))
def test_data_faults_are_one_line_naming_file_and_array(tmp_path, rng, capsys, fault):
    from deepmle.cli import main

    make, message = FAULTS[fault]
    base = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    path = _faulty(tmp_path, rng, **make(base))
    out = tmp_path / "run"
    code = main(["run", str(CONFIGS / "seed.toml"), "--out", str(out),
                 "--set", "data.source=npz", "--set", f"data.path={path}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert str(path) in err and message in err
    assert not out.exists()


def test_an_npz_header_that_declares_a_huge_array_is_one_line(tmp_path, capsys):
    """A corrupt header claiming 1e11 images: a data error, not a MemoryError traceback."""
    import io

    from deepmle.cli import main

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": "|u1", "fortran_order": False, "shape": (10**11, 784)}
    )
    path = tmp_path / "mnist.npz"
    with zipfile.ZipFile(path, "w") as z:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            z.writestr(f"{name}.npy", buf.getvalue())
    code = main(["run", str(CONFIGS / "seed.toml"), "--out", str(tmp_path / "run"),
                 "--set", "data.source=npz", "--set", f"data.path={path}"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and str(path) in err, err


def test_tfds_with_a_missing_data_dir_says_so(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(data.DataError, match=r"'.*nowhere' \(the tfds data_dir\) does not exist"):
        data.load(config_lib.DataConfig(source="tfds", path=str(missing)))
    with pytest.raises(data.DataError, match=r"holds no mnist/ folder.*tfds build mnist"):
        data.load(config_lib.DataConfig(source="tfds", path=str(tmp_path)))
