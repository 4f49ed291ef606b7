"""Class-folder datasets (data/class_folders.py): real PNG files written into tmp_path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitsearch.data import class_folders
from digitsearch.errors import UserError


def digit(seed: int, size=(28, 28)) -> np.ndarray:
    """A white-on-black uint8 image: a bright block on a black frame, plus some noise inside."""
    rng = np.random.default_rng(seed)
    image = np.zeros(size, dtype=np.uint8)
    height, width = size
    image[height // 4:3 * height // 4, width // 3:2 * width // 3] = rng.integers(100, 256, (
        3 * height // 4 - height // 4, 2 * width // 3 - width // 3))
    return image


def write(folder: Path, name: str, pixels: np.ndarray, mode: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(pixels)
    (image.convert(mode) if mode else image).save(folder / name)
    return folder / name


def make_classes(root: Path, classes: dict[str, int], size=(28, 28), seed: int = 0) -> dict[str, list[np.ndarray]]:
    """`count` white-on-black PNGs per class folder; the pixels written, per class in file-name order."""
    written = {}
    for k, (name, count) in enumerate(classes.items()):
        written[name] = [digit(seed + 100 * k + i, size) for i in range(count)]
        for i, pixels in enumerate(written[name]):
            write(root / name, f"img{i:03d}.png", pixels)
    return written


def test_flat_layout_keeps_small_gray_images_exactly(tmp_path):
    written = make_classes(tmp_path, {"shirt": 3, "10": 2, "2": 2})
    notes = []
    train, test = class_folders.load(tmp_path, notes)
    assert test is None
    assert train.images.dtype == np.uint8 and train.images.shape == (7, 28, 28)
    assert list(train.labels) == ["10", "10", "2", "2", "shirt", "shirt", "shirt"]  # folders sorted by name
    assert all(isinstance(label, str) for label in train.labels)
    expected = np.stack(written["10"] + written["2"] + written["shirt"])
    np.testing.assert_array_equal(train.images, expected)
    assert notes == [f"read 7 images in 3 class folders from {tmp_path} (kept as they are: 28x28 grayscale)"]


def test_train_test_layout_and_hidden_entries(tmp_path):
    train_written = make_classes(tmp_path / "train", {"0": 2, "1": 3})
    test_written = make_classes(tmp_path / "test", {"1": 2}, seed=50)
    (tmp_path / "train" / "0" / ".DS_Store").write_bytes(b"\0\1junk")
    write(tmp_path / "train" / "1", ".hidden.png", digit(9))
    (tmp_path / "train" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "train" / "1" / "notes.txt").write_text("not an image")
    (tmp_path / "train" / "1" / "nested").mkdir()  # sub-sub-folders are not searched
    write(tmp_path / "train" / "1" / "nested", "deep.png", digit(8))
    notes = []
    train, test = class_folders.load(tmp_path, notes)
    assert list(train.labels) == ["0", "0", "1", "1", "1"]
    np.testing.assert_array_equal(train.images, np.stack(train_written["0"] + train_written["1"]))
    assert list(test.labels) == ["1", "1"]
    np.testing.assert_array_equal(test.images, np.stack(test_written["1"]))
    assert notes[0].startswith(f"read 5 images in 2 class folders from {tmp_path / 'train'} (kept as they are")
    assert notes[1].startswith(f"read 2 images in 1 class folders from {tmp_path / 'test'}")
    assert notes[2].startswith("ignored 1 files that are not PNG/JPEG")


def test_dark_on_light_small_images_are_inverted_and_rgb_gray_kept(tmp_path):
    light = {name: [255 - digit(10 * k + i) for i in range(2)] for k, name in enumerate("ab")}
    for name, images in light.items():
        for i, pixels in enumerate(images):
            write(tmp_path / name, f"{i}.png", pixels, mode="RGB")  # grey stored as RGB: channels equal
    notes = []
    train, _ = class_folders.load(tmp_path, notes)
    np.testing.assert_array_equal(train.images, 255 - np.stack(light["a"] + light["b"]))
    assert "kept as they are: 28x28 grayscale, inverted" in notes[0]


def test_non_square_small_images_are_kept(tmp_path):
    written = make_classes(tmp_path, {"12": 2, "345": 2}, size=(28, 84))
    notes = []
    train, _ = class_folders.load(tmp_path, notes)
    np.testing.assert_array_equal(train.images, np.stack(written["12"] + written["345"]))
    assert "kept as they are: 28x84 grayscale" in notes[0]


def photo(seed: int) -> np.ndarray:
    """100 high x 80 wide RGB: white paper with a dark stroke somewhere off-centre."""
    rng = np.random.default_rng(seed)
    image = np.full((100, 80, 3), 235, dtype=np.uint8)
    top, left = rng.integers(10, 40), rng.integers(10, 30)
    image[top:top + 45, left:left + 8] = (20, 25, 30)
    return image


def test_large_photos_are_prepared_like_mnist(tmp_path):
    for name in ("1", "seven"):
        for i in range(2):
            write(tmp_path / name, f"p{i}.jpg", photo(i + (5 if name == "seven" else 0)))
    notes = []
    train, _ = class_folders.load(tmp_path, notes)
    assert train.images.shape == (4, 28, 28) and train.images.dtype == np.uint8
    rows, cols = np.mgrid[:28, :28]
    for image in train.images:
        assert image[0].max() == 0 and image[:, 0].max() == 0  # black background
        assert image.max() > 200 and (image > 128).sum() > 40  # a white stroke
        weights = image / image.sum()
        assert abs((rows * weights).sum() - 14) < 1.5 and abs((cols * weights).sum() - 14) < 1.5  # centred
    assert "prepared like MNIST" in notes[0]


def test_mixed_sizes_fall_back_to_mnist_preparation(tmp_path):
    make_classes(tmp_path, {"a": 2}, size=(28, 28))
    make_classes(tmp_path, {"b": 2}, size=(32, 32), seed=7)
    notes = []
    train, _ = class_folders.load(tmp_path, notes)
    assert train.images.shape == (4, 28, 28)
    assert "prepared like MNIST" in notes[0]


def error(path: Path) -> str:
    with pytest.raises(UserError) as caught:
        class_folders.load(path, [])
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_empty_class_folder(tmp_path):
    make_classes(tmp_path, {"0": 1, "1": 1})
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "readme.txt").write_text("no images here")
    assert str(tmp_path / "2") in error(tmp_path)


def test_class_only_in_test(tmp_path):
    make_classes(tmp_path / "train", {"0": 1, "1": 1})
    make_classes(tmp_path / "test", {"1": 1, "9": 1})
    message = error(tmp_path)
    assert str(tmp_path / "test" / "9") in message and "not in train/" in message


def test_a_single_class(tmp_path):
    make_classes(tmp_path, {"cat": 2})
    message = error(tmp_path)
    assert str(tmp_path) in message and "at least 2 classes" in message


def test_unreadable_image(tmp_path):
    make_classes(tmp_path, {"0": 1, "1": 1})
    (tmp_path / "1" / "broken.png").write_bytes(b"definitely not a png")
    assert str(tmp_path / "1" / "broken.png") in error(tmp_path)


def test_looks_like(tmp_path):
    flat, split, loose, empty, files_only = (tmp_path / n for n in ("flat", "split", "loose", "empty", "idx"))
    make_classes(flat, {"0": 1, "1": 1})
    make_classes(split / "train", {"0": 1, "1": 1})
    write(loose, "a.png", digit(0))
    empty.mkdir()
    files_only.mkdir()
    (files_only / "t10k-images-idx3-ubyte").write_bytes(b"")
    assert class_folders.looks_like(flat) and class_folders.looks_like(split)
    assert not any(class_folders.looks_like(p) for p in (loose, empty, files_only, tmp_path / "missing"))
