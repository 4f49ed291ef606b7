"""The datasets the portfolio is learned on: what can be searched offline, plus the variants
the users' reports describe, built deterministically from the shared data.

- `mnist-10k`: the shared MNIST test set as it is;
- `fashion-12k`: a stratified 12,000 of Fashion-MNIST's training images + 2,000 of its test;
- `fashion-5`: Fashion-MNIST's classes 0-4 only (a course's 5-class subset), 6,000 + 1,000;
- `noisy-digits`: MNIST-10k with Gaussian noise and stray strokes on every image, the training
  classes unbalanced from 100 % (digit 0) down to 25 % (digit 9);
- `digits` and `numbers` (multi-digit, 256 classes): the registered offline sets.

A variant is written once as an IDX folder under `root` and reused (its files are the cache).
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from digitsearch.data.idx import read_idx

SEED = 20261207
REGISTERED = ("digits", "numbers")  # passed to --dataset by name
BUILT = ("mnist-10k", "fashion-12k", "fashion-5", "noisy-digits")
NAMES = BUILT + REGISTERED


def dataset_argument(name: str, shared: Path, root: Path) -> str:
    """What `tune --dataset` gets for portfolio dataset `name` (building the variant if needed)."""
    if name in REGISTERED:
        return name
    if name == "mnist-10k":
        return str(shared / "mnist-10k")
    folder = root / name
    if not (folder / "train-labels-idx1-ubyte.gz").exists():
        _BUILDERS[name](shared, folder)
    return str(folder)


def _read(folder: Path, role: str) -> tuple[np.ndarray, np.ndarray]:
    return (read_idx(folder / f"{role}-images-idx3-ubyte.gz", 0x0803),
            read_idx(folder / f"{role}-labels-idx1-ubyte.gz", 0x0801))


def _write(folder: Path, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for role, (images, labels) in (("t10k", test), ("train", train)):  # labels last: the finished mark
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            magic = 0x0800 | array.ndim
            header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
            data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
            (folder / f"{role}-{kind}-ubyte.gz").write_bytes(gzip.compress(data, compresslevel=6))


def _stratified(labels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices, the same share of every class, sorted."""
    classes = np.unique(labels)
    each = count // len(classes)
    picks = [rng.choice(np.flatnonzero(labels == c), size=each, replace=False) for c in classes]
    return np.sort(np.concatenate(picks))


def _fashion_12k(shared: Path, folder: Path) -> None:
    rng = np.random.default_rng(SEED)
    images, labels = _read(shared / "fashion-mnist", "train")
    test_images, test_labels = _read(shared / "fashion-mnist", "t10k")
    train, test = _stratified(labels, 12_000, rng), _stratified(test_labels, 2_000, rng)
    _write(folder, (images[train], labels[train]), (test_images[test], test_labels[test]))


def _fashion_5(shared: Path, folder: Path) -> None:
    rng = np.random.default_rng(SEED + 1)
    images, labels = _read(shared / "fashion-mnist", "train")
    test_images, test_labels = _read(shared / "fashion-mnist", "t10k")
    keep, keep_test = np.flatnonzero(labels < 5), np.flatnonzero(test_labels < 5)
    train = keep[_stratified(labels[keep], 6_000, rng)]
    test = keep_test[_stratified(test_labels[keep_test], 1_000, rng)]
    _write(folder, (images[train], labels[train]), (test_images[test], test_labels[test]))


def _noisy_digits(shared: Path, folder: Path) -> None:
    rng = np.random.default_rng(SEED + 2)
    images, labels = _read(shared / "mnist-10k", "t10k")
    order = rng.permutation(len(labels))
    test, rest = order[:2_000], order[2_000:]
    share = np.linspace(1.0, 0.25, 10)  # digit k keeps share[k] of its training images
    train = np.sort(np.concatenate([
        rest[labels[rest] == k][: int(round(share[k] * np.sum(labels[rest] == k)))] for k in range(10)]))
    _write(folder, (_soiled(images[train], rng), labels[train]), (_soiled(images[np.sort(test)], rng),
                                                                  labels[np.sort(test)]))


def _soiled(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise (sd 40 of 255) and one stray stroke (a short bright line) on every image."""
    out = images.astype(np.float32) + rng.normal(0, 40, images.shape)
    for image in out:
        row, col = rng.integers(0, 28, size=2)
        length = int(rng.integers(4, 10))
        if rng.random() < 0.5:
            image[row, col:col + length] += 180
        else:
            image[row:row + length, col] += 180
    return np.clip(out, 0, 255).astype(np.uint8)


_BUILDERS = {"fashion-12k": _fashion_12k, "fashion-5": _fashion_5, "noisy-digits": _noisy_digits}
