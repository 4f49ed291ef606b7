"""Tests for the task datasets: addition (sequence), numbers (0..255 from digit images),
svhn (.mat files) and the class-balance stats / bar chart."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from conftest import shared_data, write_kaggle_csv
from digitsearch.data import Bundle, Split, addition, list_datasets, load, numbers, stats, svhn
from digitsearch.errors import UserError

SHARED = shared_data()


def one_line(exc: pytest.ExceptionInfo, *fragments: str) -> str:
    message = str(exc.value)
    assert "\n" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def slots_of(images: np.ndarray, number: int) -> list[np.ndarray]:
    """The 28x28 digit slots a number's images occupy, left to right (centred layout)."""
    text = str(number)
    left = (84 - 28 * len(text)) // 2
    return [images[:, :, left + 28 * i: left + 28 * (i + 1)] for i in range(len(text))]


def test_new_names_listed():
    names = list_datasets()
    for name in ("addition", "numbers", "svhn"):
        assert name in names and names[name] and "\n" not in names[name]


# ---------------------------------------------------------------- addition

@pytest.fixture(scope="module")
def add() -> Bundle:
    return load("addition")


def test_addition_shapes_and_alphabet(add):
    assert add.name == "addition" and add.task == "sequence"
    assert add.vocab == "0123456789+ " and len(add.vocab) == 12
    assert add.class_names == list(add.vocab)
    assert len(add.test) == 6_554
    assert len(add.train) + len(add.val) + len(add.test) == 65_536
    assert len(add.val) == round((65_536 - 6_554) * 0.1)
    for split in (add.train, add.val, add.test):
        assert split.images.dtype == np.uint8 and split.images.shape == (len(split), 7)
        assert split.labels.dtype == np.int64 and split.labels.shape == (len(split), 3)
        assert split.images.max() < 12 and split.labels.max() < 12
    assert add.model_args() == {"vocab_size": 12, "in_length": 7, "out_length": 3}
    assert add.normalisation() == (0.0, 1.0)
    assert any("no pair is in two splits" in n for n in add.notes)


def test_addition_encode_decode():
    assert addition.decode(addition.encode_question(255, 255)) == "255+255"
    assert addition.decode(addition.encode_answer(510)) == "510"
    assert addition.decode(addition.encode_question(3, 4)) == "    3+4"
    assert addition.decode(addition.encode_answer(7)) == "  7"
    assert addition.encode_question(0, 0).dtype == np.uint8
    assert addition.encode_answer(7).tolist() == [11, 11, 7]
    rows = np.stack([addition.encode_question(12, 5), addition.encode_question(200, 99)])
    assert addition.decode(rows) == ["   12+5", " 200+99"]
    logits = np.eye(12)[addition.encode_answer(299)][None]  # (1, 3, 12) one-hot "scores"
    assert addition.decode(logits) == ["299"]
    for bad in ((256, 0), (-1, 3)):
        with pytest.raises(ValueError):
            addition.encode_question(*bad)
    with pytest.raises(ValueError):
        addition.decode(np.array([12]))


def test_addition_answers_are_sums(add):
    for split in (add.train, add.val, add.test):
        questions = addition.decode(split.images)
        answers = addition.decode(split.labels)
        for q, a in zip(questions, answers):
            left, right = q.strip().split("+")
            assert int(left) + int(right) == int(a)
            assert len(q) == 7 and len(a) == 3 and a == a.strip().rjust(3)


def test_addition_splits_disjoint_and_complete(add):
    seen = [set(addition.decode(s.images)) for s in (add.train, add.val, add.test)]
    assert sum(len(s) for s in seen) == 65_536  # no duplicates inside a split
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    every = {f"{a}+{b}".rjust(7) for a in range(256) for b in range(256)}
    assert seen[0] | seen[1] | seen[2] == every


def test_addition_seeded(add):
    again = load("addition")
    for one, two in ((add.train, again.train), (add.val, again.val), (add.test, again.test)):
        assert np.array_equal(one.images, two.images) and np.array_equal(one.labels, two.labels)
    other = load("addition", seed=1)
    assert len(other.test) == 6_554
    assert set(addition.decode(other.test.images)) != set(addition.decode(add.test.images))
    bigger = load("addition", val_fraction=0.25)
    assert len(bigger.val) == round(58_982 * 0.25) and len(bigger.test) == 6_554


def test_addition_refuses_base_and_test(tmp_path):
    with pytest.raises(UserError) as exc:
        load("addition", base="digits")
    one_line(exc, "--base only applies to --dataset numbers")
    with pytest.raises(UserError) as exc:
        load("addition", test=str(tmp_path / "t.csv"))
    one_line(exc, "--test", "addition")


# ---------------------------------------------------------------- numbers

@pytest.fixture(scope="module")
def nums() -> Bundle:
    return load("numbers")


def test_numbers_from_digits_shapes(nums):
    assert nums.name == "numbers" and nums.task == "image"
    assert nums.num_classes == 256 and nums.class_names == [str(n) for n in range(256)]
    assert nums.image_size == [28, 84]
    assert nums.model_args() == {"num_classes": 256, "image_size": [28, 84]}
    for split in (nums.train, nums.val, nums.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (28, 84)
        assert split.labels.dtype == np.int64
    pool = np.bincount(np.concatenate([nums.train.labels, nums.val.labels]), minlength=256)
    assert (pool == numbers.TRAIN_PER_NUMBER).all()
    assert (np.bincount(nums.test.labels, minlength=256) == numbers.TEST_PER_NUMBER).all()
    assert any("base digits" in n for n in nums.notes)
    assert any("validation: stratified" in n for n in nums.notes)


def test_numbers_layout_and_sources(nums):
    base = load("digits")  # same seed: the very base the numbers were built from
    pool = base.train_and_val()
    by_digit = {d: {img.tobytes() for img in pool.images[pool.labels == d]} for d in range(10)}
    test_digit = {d: {img.tobytes() for img in base.test.images[base.test.labels == d]}
                  for d in range(10)}
    train = nums.train_and_val()
    for number in (7, 42, 105, 255):
        images = train.images[train.labels == number]
        test_images = nums.test.images[nums.test.labels == number]
        text = str(number)
        left = (84 - 28 * len(text)) // 2
        assert images[:, :, :left].max(initial=0) == 0  # blank outside the centred digits
        assert images[:, :, left + 28 * len(text):].max(initial=0) == 0
        for char, slot, test_slot in zip(text, slots_of(images, number),
                                         slots_of(test_images, number)):
            assert all(s.tobytes() in by_digit[int(char)] for s in slot)
            assert all(s.tobytes() in test_digit[int(char)] for s in test_slot)
            assert not any(s.tobytes() in test_digit[int(char)] for s in slot)


def synthetic_base() -> Bundle:
    """Digits whose pixels say where they come from: train/val i -> value 1+i, test -> 200+i."""
    def split(start: int, per_digit: int) -> Split:
        labels = np.repeat(np.arange(10), per_digit)
        values = start + np.arange(len(labels))
        images = np.zeros((len(labels), 28, 28), dtype=np.uint8)
        images[:, 4:24, 4:24] = values[:, None, None]
        return Split(images, labels.astype(np.int64))

    return Bundle("synthetic", split(1, 10), split(101, 3), split(200, 5),
                  [str(i) for i in range(10)], ["synthetic base"])


def test_numbers_from_synthetic_base():
    base = synthetic_base()
    bundle = numbers.build(base, "synthetic", 0.1, seed=3)
    train = bundle.train_and_val()
    assert len(train) == 256 * numbers.TRAIN_PER_NUMBER and len(bundle.test) == 256 * 12
    for split, low, high in ((train, 1, 131), (bundle.test, 200, 250)):
        for number in (7, 10, 255):
            images = split.images[split.labels == number]
            for char, slot in zip(str(number), slots_of(images, number)):
                values = slot[:, 14, 14].astype(int)
                assert ((values >= low) & (values < high)).all()  # right split's digits only
                source = base.train_and_val() if low == 1 else base.test
                assert (source.labels[values - low] == int(char)).all()  # value -> its digit
    again = numbers.build(base, "synthetic", 0.1, seed=3)
    assert np.array_equal(again.train.images, bundle.train.images)
    other = numbers.build(base, "synthetic", 0.1, seed=4)
    assert not np.array_equal(other.train.images, bundle.train.images)
    assert any("base synthetic: synthetic base" == n for n in bundle.notes)


def test_numbers_deterministic(nums):
    again = load("numbers")
    assert np.array_equal(again.train.images, nums.train.images)
    assert np.array_equal(again.test.labels, nums.test.labels)
    other = load("numbers", seed=1)
    assert not np.array_equal(other.test.images, nums.test.images)


def test_numbers_from_shared_mnist_10k():
    folder = SHARED / "mnist-10k"
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    bundle = load("numbers", base=str(folder))
    base = load(str(folder))
    assert bundle.num_classes == 256 and bundle.train.images.shape[1:] == (28, 84)
    assert len(bundle.test) == 256 * 12
    test_digits = {img.tobytes() for img in base.test.images}
    pool_digits = {img.tobytes() for img in base.train_and_val().images}
    seven = bundle.train.images[bundle.train.labels == 7][:, :, 28:56]
    assert all(s.tobytes() in pool_digits for s in seven)
    three = bundle.test.images[bundle.test.labels == 123][:, :, 56:84]
    assert all(s.tobytes() in test_digits for s in three)
    assert any("mnist-10k" in n and "only t10k files found" in n for n in bundle.notes)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = (0x0800 | array.ndim).to_bytes(4, "big")
    header += b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def test_numbers_bad_bases(tmp_path):
    with pytest.raises(UserError) as exc:
        load("numbers", base=str(tmp_path / "no-such-folder"))
    one_line(exc, "no-such-folder", "base")
    with pytest.raises(UserError) as exc:
        load("numbers", base="nosuchset")
    one_line(exc, "nosuchset", "unknown dataset")
    with pytest.raises(UserError) as exc:
        load("numbers", base="addition")
    one_line(exc, "addition", "not a 10-class digit set")
    fashion = tmp_path / "my-fashion"
    fashion.mkdir()
    write_idx(fashion / "t10k-images-idx3-ubyte.gz", np.zeros((50, 28, 28)))
    write_idx(fashion / "t10k-labels-idx1-ubyte.gz", np.arange(50) % 10)
    with pytest.raises(UserError) as exc:
        load("numbers", base=str(fashion))
    one_line(exc, "my-fashion", "not a 10-class digit set")
    small = write_kaggle_csv(tmp_path / "small.csv", np.zeros((40, 8, 8), dtype=np.uint8),
                             np.arange(40) % 10)
    with pytest.raises(UserError) as exc:
        load("numbers", base=str(small))
    one_line(exc, "small.csv", "8x8", "28x28")


def test_base_only_for_numbers():
    for spec in ("digits", "mnist", "svhn"):
        with pytest.raises(UserError) as exc:
            load(spec, base="digits")
        one_line(exc, "--base only applies to --dataset numbers")
    with pytest.raises(UserError) as exc:
        load("numbers", test="x.csv")
    one_line(exc, "--test", "numbers")


# ---------------------------------------------------------------- svhn

UNBALANCED = np.array([1] * 12 + [2] * 8 + [3, 4, 5, 6, 7, 8, 9] + [10] * 3)  # 30 labels


def write_svhn(path: Path, labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """A .mat file in SVHN's own format; returns X (32, 32, 3, N)."""
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, size=(32, 32, 3, len(labels)), dtype=np.uint8)
    colour[..., 0] = 0
    colour[:, :, 0, 0] = 200  # image 0: pure red 200 everywhere
    colour[..., 1] = 0
    colour[:, 4, :, 1] = 255  # image 1: one white column (x = 4) on black
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, {"X": colour, "y": labels.reshape(-1, 1).astype(np.uint8)})
    return colour


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No SVHN anywhere and no network: HOME in tmp, no $DIGITSEARCH_DATA, failing download."""
    monkeypatch.delenv("DIGITSEARCH_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    calls = []

    def offline(root):
        calls.append(root)
        raise OSError("<urlopen error [Errno -2] Name or service not known>\nsecond line")

    monkeypatch.setattr(svhn, "download", offline)
    return tmp_path, calls


def test_svhn_mat_round_trip(isolated):
    tmp, calls = isolated
    write_svhn(tmp / "svhn" / "train_32x32.mat", UNBALANCED)
    test_labels = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10] * 2)
    test_colour = write_svhn(tmp / "svhn" / "test_32x32.mat", test_labels, seed=1)
    bundle = load("svhn", data_dir=str(tmp))  # found in <data_dir>/svhn
    assert calls == []
    assert bundle.name == "svhn" and bundle.class_names == [str(i) for i in range(10)]
    assert len(bundle.train) + len(bundle.val) == 30 and len(bundle.test) == 20
    for split in (bundle.train, bundle.val, bundle.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (28, 28)
    assert bundle.test.labels.tolist() == (test_labels % 10).tolist()  # 10 -> 0, order kept
    assert np.array_equal(bundle.test.images, svhn.to_gray28(test_colour))
    assert (bundle.test.images[0] == round(0.299 * 200)).all()  # luminance of pure red
    column = bundle.test.images[1].astype(int)
    # x = 4 of 32 covers 4/7 of output pixel 3 (=half its area) and 3/8 of pixel 4.
    assert abs(column[10, 3] - 127.5) <= 1 and abs(column[10, 4] - 95.6) <= 1
    assert column[:, [0, 1, 2, 5, 6]].max() == 0
    counts = np.bincount(np.concatenate([bundle.train.labels, bundle.val.labels]), minlength=10)
    assert counts.tolist() == [3, 12, 8, 1, 1, 1, 1, 1, 1, 1]
    note = next(n for n in bundle.notes if "unbalanced" in n)
    assert "1: 14" in note and "0: 5" in note  # train + test per digit
    assert any("luminance" in n for n in bundle.notes)


def test_svhn_folder_spec_and_train_only(tmp_path):
    folder = tmp_path / "house-numbers"
    write_svhn(folder / "train_32x32.mat", np.tile(np.arange(1, 11), 5))
    bundle = load(str(folder))
    assert bundle.name == "house-numbers" and bundle.class_names[0] == "0"
    assert len(bundle.test) == 10 and len(bundle.train) + len(bundle.val) == 40
    assert any("carved a stratified 20% test split" in n for n in bundle.notes)


def test_svhn_found_in_env_and_bad_file(isolated, monkeypatch):
    tmp, calls = isolated
    monkeypatch.setenv("DIGITSEARCH_DATA", str(tmp / "env"))
    write_svhn(tmp / "env" / "SVHN" / "train_32x32.mat", np.tile(np.arange(1, 11), 3))
    assert len(load("svhn").test) == 6 and calls == []
    (tmp / "env" / "SVHN" / "test_32x32.mat").write_bytes(b"not a matlab file\x00" * 10)
    with pytest.raises(UserError) as exc:
        load("svhn")
    one_line(exc, "test_32x32.mat")
    scipy.io.savemat(tmp / "env" / "SVHN" / "test_32x32.mat",
                     {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]])})
    with pytest.raises(UserError) as exc:
        load("svhn")
    one_line(exc, "test_32x32.mat", "labels")


def test_svhn_missing_offline_one_line(isolated):
    tmp, calls = isolated
    with pytest.raises(UserError) as exc:
        load("svhn", data_dir=str(tmp / "given"))
    cache = tmp / "home" / ".cache" / "digitsearch" / "svhn"
    one_line(exc, "train_32x32.mat", "test_32x32.mat", str(tmp / "given"),
             str(tmp / "given" / "svhn"), str(cache), "--data-dir", "DIGITSEARCH_DATA",
             "Name or service not known")
    assert calls == [cache]


# ---------------------------------------------------------------- stats

def test_class_counts_digits(digits_bundle):
    table = stats.class_counts(digits_bundle)
    assert list(table.columns) == ["train", "val", "test", "total"]
    assert list(table.index) == digits_bundle.class_names and table.index.name == "class"
    assert table["train"].sum() == len(digits_bundle.train)
    assert table["val"].sum() == len(digits_bundle.val)
    assert table["test"].sum() == len(digits_bundle.test)
    assert (table["total"] == table[["train", "val", "test"]].sum(axis=1)).all()
    assert table.loc["3", "train"] == int((digits_bundle.train.labels == 3).sum())


def test_class_counts_unlabelled_test(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (40, 28, 28), dtype=np.uint8)
    train = write_kaggle_csv(tmp_path / "train.csv", images, np.arange(40) % 10)
    test = write_kaggle_csv(tmp_path / "test.csv", images[:5], None)
    table = stats.class_counts(load(str(train), test=str(test)))
    assert list(table.columns) == ["train", "val", "total"] and table["total"].sum() == 40


def test_class_counts_addition_answer_lengths(add):
    table = stats.class_counts(add)
    assert table.index.name == "answer length" and list(table.index) == ["1", "2", "3"]
    assert table["total"].tolist() == [55, 4_995, 60_486]  # sums 0-9, 10-99, 100-510
    assert table["test"].sum() == 6_554 and table["train"].sum() == len(add.train)


@pytest.mark.parametrize("which", ["digits", "numbers", "addition"])
def test_bar_chart_png(tmp_path, which, digits_bundle, nums, add):
    import matplotlib.image

    bundle = {"digits": digits_bundle, "numbers": nums, "addition": add}[which]
    path = stats.write_bar_chart(bundle, tmp_path / "charts" / f"{which}.png")
    assert path == tmp_path / "charts" / f"{which}.png"
    pixels = matplotlib.image.imread(path)
    height, width = pixels.shape[:2]
    assert 400 <= height <= 800 and 600 <= width <= 2_000
    assert pixels[..., :3].std() > 0.05  # not blank
    if which == "numbers":
        assert width >= 1_500  # 256 classes get a wide figure
