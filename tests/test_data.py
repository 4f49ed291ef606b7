"""Tests for digitsearch.data: loaders, splits, and one-line errors for bad user files."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_data
from digitsearch.data import Bundle, Split, idx, list_datasets, load, read_images
from digitsearch.errors import UserError

SHARED = shared_data()


# ---------------------------------------------------------------- helpers

def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write `array` (uint8) as an IDX file; gzip when the name ends in .gz."""
    magic = 0x0800 | array.ndim
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def fake_images(n: int, side: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


def write_idx_folder(folder: Path, n_train: int | None, n_test: int, gz_train=True,
                     gz_test=False) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for role, n, gz in (("train", n_train, gz_train), ("t10k", n_test, gz_test)):
        if n is None:
            continue
        images, labels = fake_images(n, seed=len(role))
        ext = ".gz" if gz else ""
        write_idx(folder / f"{role}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{role}-labels-idx1-ubyte{ext}", labels)
        out[role] = (images, labels)
    return out


def write_csv(path: Path, images: np.ndarray, labels: np.ndarray | None) -> Path:
    flat = images.reshape(len(images), -1).astype(int)
    header = ([] if labels is None else ["label"]) + [f"pixel{i}" for i in range(flat.shape[1])]
    rows = flat if labels is None else np.column_stack([labels, flat])
    lines = [",".join(header)] + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def signature(split: Split) -> Counter:
    """Multiset of (image bytes, label): compares splits regardless of order."""
    return Counter((img.tobytes(), int(y)) for img, y in zip(split.images, split.labels))


def assert_one_line(exc: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


# ---------------------------------------------------------------- digits

@pytest.fixture(scope="module")
def digits() -> Bundle:
    return load("digits")


def test_digits_shapes_and_classes(digits):
    assert digits.name == "digits"
    assert digits.num_classes == 10 and digits.class_names == [str(i) for i in range(10)]
    assert digits.image_size == 28
    for split in (digits.train, digits.val, digits.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (28, 28)
        assert split.labels.dtype == np.int64 and split.labels.shape == (len(split),)
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    assert len(digits.test) == 360 and len(digits.val) == 144
    # 20x20 digit centred in 28x28: a 4-pixel empty border, ink reaching full brightness.
    everything = digits.train.images
    assert everything[:, :4].max() == 0 and everything[:, 24:].max() == 0
    assert everything[:, :, :4].max() == 0 and everything[:, :, 24:].max() == 0
    assert everything.max() == 255


def test_digits_splits_partition_the_data(digits):
    from sklearn.datasets import load_digits

    from digitsearch.data.digits import mnist_like

    raw = load_digits()
    full = signature(Split(mnist_like(raw.images), raw.target))
    parts = signature(digits.train) + signature(digits.val) + signature(digits.test)
    assert parts == full  # same multiset: disjoint and complete


def test_digits_stratified(digits):
    overall = np.bincount(np.concatenate([digits.train.labels, digits.val.labels,
                                          digits.test.labels]), minlength=10) / 1797
    for split in (digits.val, digits.test):
        share = np.bincount(split.labels, minlength=10) / len(split)
        assert np.abs(share - overall).max() < 0.02


def test_digits_deterministic(digits):
    again = load("digits")
    assert np.array_equal(again.train.images, digits.train.images)
    assert np.array_equal(again.test.labels, digits.test.labels)
    other = load("digits", seed=1)
    assert not np.array_equal(other.test.images, digits.test.images)


def test_val_fraction(digits):
    bigger = load("digits", val_fraction=0.25)
    assert len(bigger.val) == 360 and len(bigger.train) == 1077
    for bad in (0, 1, -0.1, 1.5, "a"):
        with pytest.raises(UserError) as exc:
            load("digits", val_fraction=bad)
        assert_one_line(exc, "val_fraction")


def test_normalisation_and_train_and_val(digits):
    mean, std = digits.normalisation()
    pixels = digits.train.images.astype(np.float64) / 255
    assert mean == pytest.approx(pixels.mean()) and std == pytest.approx(pixels.std())
    assert 0.05 < mean < 0.4 and 0.1 < std < 0.5
    both = digits.train_and_val()
    assert len(both) == len(digits.train) + len(digits.val)
    assert len(both.labels) == len(both)
    assert any("carved a stratified 20% test split" in n for n in digits.notes)


def test_list_datasets():
    names = list_datasets()
    assert set(names) == {"digits", "mnist", "fashion-mnist", "kmnist", "svhn", "numbers", "addition"}
    assert all(isinstance(v, str) and v and "\n" not in v for v in names.values())


def test_unknown_name_lists_known_names():
    with pytest.raises(UserError) as exc:
        load("cifar")
    assert_one_line(exc, "cifar", "digits", "mnist", "fashion-mnist", "kmnist", ".csv")


def test_missing_path():
    with pytest.raises(UserError) as exc:
        load("no/such/folder")
    assert_one_line(exc, "no/such/folder")


# ---------------------------------------------------------------- IDX folders

def test_idx_folder_train_and_t10k(tmp_path):
    written = write_idx_folder(tmp_path / "set", 60, 20)
    bundle = load(str(tmp_path / "set"), val_fraction=0.2)
    assert bundle.name == "set"
    assert len(bundle.train) == 48 and len(bundle.val) == 12
    assert np.array_equal(bundle.test.images, written["t10k"][0])
    assert np.array_equal(bundle.test.labels, written["t10k"][1])
    full = signature(Split(*written["train"]))
    assert signature(bundle.train) + signature(bundle.val) == full
    assert bundle.class_names == [str(i) for i in range(10)]
    assert not any("carved" in n for n in bundle.notes)


def test_idx_folder_t10k_only_is_carved(tmp_path):
    write_idx_folder(tmp_path / "only", None, 100, gz_test=True)
    bundle = load(str(tmp_path / "only"))
    assert len(bundle.test) == 20 and len(bundle.train) + len(bundle.val) == 80
    assert any("only t10k files found: carved a stratified 20% test split (seed 0)" in n
               for n in bundle.notes)


def test_idx_fashion_folder_names(tmp_path):
    write_idx_folder(tmp_path / "my-fashion", 40, 10)
    assert load(str(tmp_path / "my-fashion")).class_names[0] == "T-shirt/top"


def test_idx_test_override(tmp_path):
    write_idx_folder(tmp_path / "set", 40, 10)
    images, _ = fake_images(7, seed=5)
    csv = write_csv(tmp_path / "test.csv", images, None)
    bundle = load(str(tmp_path / "set"), test=str(csv))
    assert len(bundle.test) == 7 and bundle.test.labels is None
    assert any("replaced" in n and "test.csv" in n for n in bundle.notes)


@pytest.mark.parametrize("damage", ["magic", "truncated", "gz_truncated", "count"])
def test_idx_corrupt_files(tmp_path, damage):
    folder = tmp_path / "bad"
    write_idx_folder(folder, 30, 10, gz_train=damage == "gz_truncated")
    name = "train-images-idx3-ubyte" + (".gz" if damage == "gz_truncated" else "")
    target = folder / name
    data = target.read_bytes()
    if damage == "magic":
        target.write_bytes(b"\x00\x00\x08\x01" + data[4:])
    elif damage in ("truncated", "gz_truncated"):
        target.write_bytes(data[: len(data) // 2])
    else:
        name = "train-labels-idx1-ubyte"
        write_idx(folder / name, np.zeros(29, dtype=np.uint8))
    with pytest.raises(UserError) as exc:
        load(str(folder))
    assert_one_line(exc, name)


def test_idx_folder_without_files(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError) as exc:
        load(str(tmp_path / "empty"))
    assert_one_line(exc, "no IDX files", "t10k")


# ---------------------------------------------------------------- registered IDX sets

@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real data anywhere: empty env folder, HOME in tmp, no system folders."""
    monkeypatch.setenv("DIGITSEARCH_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(idx, "SYSTEM_DIRS", {})
    return tmp_path


def test_registered_offline_names_searched_places(isolated, monkeypatch):
    calls = []

    def offline(name, root):
        calls.append((name, root))
        raise OSError("Name or service not known\nsecond line")

    monkeypatch.setattr(idx, "download", offline)
    with pytest.raises(UserError) as exc:
        load("kmnist", data_dir=str(isolated / "given"))
    message = assert_one_line(exc, str(isolated / "given"), str(isolated / "env" / "kmnist"),
                              str(isolated / "env" / "KMNIST" / "raw"),
                              str(isolated / "home" / ".cache" / "digitsearch" / "kmnist"),
                              "--data-dir", "DIGITSEARCH_DATA", "t10k-labels-idx1-ubyte")
    assert "Name or service not known" in message
    assert calls == [("kmnist", isolated / "home" / ".cache" / "digitsearch" / "kmnist")]


def test_registered_download_lands_in_torchvision_layout(isolated, monkeypatch):
    def fake_download(name, root):
        write_idx_folder(root / "MNIST" / "raw", 30, 10, gz_train=False)

    monkeypatch.setattr(idx, "download", fake_download)
    bundle = load("mnist")
    assert len(bundle.train) + len(bundle.val) == 30 and len(bundle.test) == 10
    assert bundle.class_names == [str(i) for i in range(10)]


def test_registered_found_in_env_subfolder(isolated, monkeypatch):
    monkeypatch.setattr(idx, "download", lambda *a: pytest.fail("must not download"))
    write_idx_folder(isolated / "env" / "kmnist", 30, 10)
    bundle = load("kmnist")
    assert bundle.class_names[:3] == ["o", "ki", "su"] and len(bundle.test) == 10


# ---------------------------------------------------------------- real data

def test_real_mnist_10k():
    folder = SHARED / "mnist-10k"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    bundle = load(str(folder))
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 10_000
    assert len(bundle.test) == 2_000 and bundle.image_size == 28
    assert any("only t10k files found: carved" in n for n in bundle.notes)
    mean, std = bundle.normalisation()
    assert mean == pytest.approx(0.13, abs=0.01) and std == pytest.approx(0.31, abs=0.01)
    predict = read_images(str(folder), expect_pixels=784)
    assert predict.images.shape == (10_000, 28, 28) and predict.labels is not None


def test_real_fashion_mnist():
    folder = SHARED / "fashion-mnist"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    bundle = load(str(folder))
    assert len(bundle.train) + len(bundle.val) == 60_000 and len(bundle.test) == 10_000
    assert bundle.class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# ---------------------------------------------------------------- Kaggle CSV

@pytest.fixture
def kaggle(tmp_path):
    images, labels = fake_images(50)
    train = write_csv(tmp_path / "train.csv", images, labels)
    test_images, _ = fake_images(7, seed=3)
    test = write_csv(tmp_path / "test.csv", test_images, None)
    return train, test, images, labels, test_images


def test_csv_train_and_unlabelled_test(kaggle):
    train, test, images, labels, test_images = kaggle
    bundle = load(str(train), test=str(test))
    assert bundle.name == "train.csv"
    assert len(bundle.train) + len(bundle.val) == 50 and len(bundle.val) == 5
    assert bundle.test.labels is None and bundle.test.images.shape == (7, 28, 28)
    assert np.array_equal(bundle.test.images, test_images)
    assert signature(bundle.train_and_val()) == signature(Split(images, labels))
    assert bundle.class_names == [str(i) for i in range(10)]


def test_csv_without_test_is_carved(kaggle):
    bundle = load(str(kaggle[0]))
    assert len(bundle.test) == 10 and bundle.test.labels is not None
    assert any("carved a stratified 20% test split" in n for n in bundle.notes)


def test_csv_small_square_images(tmp_path):
    images, labels = fake_images(30, side=8)
    bundle = load(str(write_csv(tmp_path / "small.csv", images, labels)))
    assert bundle.image_size == 8 and bundle.train.images.dtype == np.uint8


def test_read_images_csv_and_idx(kaggle, tmp_path):
    train, test, images, labels, test_images = kaggle
    labelled = read_images(str(train), expect_pixels=784)
    assert np.array_equal(labelled.images, images) and np.array_equal(labelled.labels, labels)
    unlabelled = read_images(str(test))
    assert unlabelled.labels is None and np.array_equal(unlabelled.images, test_images)
    written = write_idx_folder(tmp_path / "idx", None, 12)
    from_idx = read_images(str(tmp_path / "idx"))
    assert np.array_equal(from_idx.images, written["t10k"][0])
    assert np.array_equal(from_idx.labels, written["t10k"][1])
    single = read_images(str(tmp_path / "idx" / "t10k-images-idx3-ubyte"))
    assert len(single) == 12 and single.labels is not None
    with pytest.raises(UserError) as exc:
        read_images(str(tmp_path / "idx"), expect_pixels=64)
    assert_one_line(exc, "28x28")
    with pytest.raises(UserError) as exc:
        read_images(str(tmp_path / "nothing.csv"))
    assert_one_line(exc, "nothing.csv")


def _header(n: int, label: bool = True) -> str:
    return ",".join((["label"] if label else []) + [f"pixel{i}" for i in range(n)])


def _row(label, pixels) -> str:
    return ",".join(str(v) for v in ([label] if label is not None else []) + list(pixels))


GOOD = _row(3, [0] * 784)
BAD_TRAIN_CSVS = {
    "empty": ("", "empty"),
    "header_only": (_header(784) + "\n", "no data rows"),
    "no_label": (_header(784, label=False) + "\n" + _row(None, [0] * 784), "'label' column"),
    "not_square": (_header(783) + "\n" + _row(1, [0] * 783), "783 pixel columns"),
    "non_numeric": (_header(784) + "\n" + GOOD + "\n" + _row(2, [0] * 100 + ["x"] + [0] * 683),
                    "row 2"),
    "too_bright": (_header(784) + "\n" + _row(2, [0] * 5 + [256] + [0] * 778), "256"),
    "negative": (_header(784) + "\n" + _row(2, [-1] + [0] * 783), "0-255"),
    "fraction": (_header(784) + "\n" + _row(2, [0.5] + [0] * 783), "whole numbers"),
    "label_mixed": (_header(784) + "\n" + GOOD + "\n" + _row("seven", [0] * 784), "mix numbers"),
    "label_text_one_class": (_header(784) + "\n" + _row("seven", [0] * 784), "at least 2 classes"),
    "label_fraction": (_header(784) + "\n" + _row(1.5, [0] * 784), "label 1.5"),
    "short_row": (_header(784) + "\n" + GOOD + "\n" + _row(2, [0] * 783),
                  "has 783 pixel values, expected 784"),
    "long_row": (_header(784) + "\n" + GOOD + "\n" + _row(2, [0] * 785), "786 values"),
    "long_first_row": (_header(784) + "\n" + _row(2, [0] * 785), "more values than the header"),
    "binary": ("\xff\xfe\x00 garbage", "not a text CSV"),
    "gap": (_header(784) + "\n" + "1,," + ",".join(["0"] * 783), "empty value"),
    "no_label_value": (_header(784) + "\n" + GOOD + "\n" + _row("", [0] * 784), "no label"),
}


@pytest.mark.parametrize("case", sorted(BAD_TRAIN_CSVS))
def test_bad_training_csv(tmp_path, case):
    text, fragment = BAD_TRAIN_CSVS[case]
    path = tmp_path / f"bad_{case}.csv"
    path.write_bytes(text.encode("latin-1"))  # latin-1: "binary" gets raw undecodable bytes
    with pytest.raises(UserError) as exc:
        load(str(path))
    assert_one_line(exc, f"bad_{case}.csv", fragment)


def test_test_csv_size_mismatch(kaggle, tmp_path):
    small = write_csv(tmp_path / "small_test.csv", fake_images(3, side=8)[0], None)
    with pytest.raises(UserError) as exc:
        load(str(kaggle[0]), test=str(small))
    assert_one_line(exc, "small_test.csv", "64", "784")


def test_labelled_test_csv_keeps_labels(kaggle, tmp_path):
    images, labels = fake_images(9, seed=7)
    test = write_csv(tmp_path / "labelled_test.csv", images, labels)
    bundle = load(str(kaggle[0]), test=str(test))
    assert np.array_equal(bundle.test.labels, labels)


def test_non_csv_file_rejected(tmp_path):
    path = tmp_path / "images.bin"
    path.write_bytes(b"\x00\x01")
    with pytest.raises(UserError) as exc:
        load(str(path))
    assert_one_line(exc, "images.bin", ".csv")


def test_rare_class_falls_back_to_random_split(tmp_path):
    images, labels = fake_images(40)
    labels[labels == 9] = 8
    labels[0] = 9  # class 9 has a single image: stratification is impossible
    bundle = load(str(write_csv(tmp_path / "rare.csv", images, labels)))
    assert len(bundle.train) + len(bundle.val) + len(bundle.test) == 40
    assert any("random" in n for n in bundle.notes)
