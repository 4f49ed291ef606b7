"""SVHN (Street View House Numbers, cropped digits) as 28x28 grayscale digits.

The files are torchvision's / the official train_32x32.mat and test_32x32.mat (MATLAB v5):
'X' uint8 (32, 32, 3, N) colour crops, 'y' (N, 1) labels 1..10 where 10 means digit 0.
They are converted to luminance (ITU-R 601, as PIL's "L"), then area-resized (antialiased)
to 28x28 uint8, so every MNIST model runs unchanged. Polarity is left as photographed:
SVHN mixes light-on-dark and dark-on-light digits, unlike the ink-high MNIST family.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from pathlib import Path

import numpy as np

from digitsearch.data import idx
from digitsearch.data.bundle import Split
from digitsearch.errors import UserError

FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat"}
FILE_NAMES = ", ".join(FILES.values())
SOURCE_SIZE = 32
SIZE = 28
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
CHUNK = 4096  # images converted at a time: bounds the float32 working memory (~70 MB)

# Seconds a download may stall before giving up; module-level so tests can lower it.
DOWNLOAD_TIMEOUT = idx.DOWNLOAD_TIMEOUT

NOTE = (f"SVHN cropped digits: {SOURCE_SIZE}x{SOURCE_SIZE} colour -> luminance -> area-resized to "
        f"{SIZE}x{SIZE} uint8; label 10 means digit 0; polarity as photographed (not ink-high)")


def has_files(folder: Path) -> bool:
    """Whether `folder` holds at least one of the SVHN .mat files."""
    return folder.is_dir() and any((folder / name).is_file() for name in FILES.values())


def cache_dir() -> Path:
    return idx.cache_dir("svhn")


def search_places(data_dir: str | None) -> list[Path]:
    """Folders that may hold the .mat files, in priority order (like idx.search_places)."""
    places: list[Path] = []
    for root in (data_dir, os.environ.get("DIGITSEARCH_DATA")):
        if root:
            root_path = Path(root).expanduser()
            places += [root_path, root_path / "svhn", root_path / "SVHN"]
    places.append(cache_dir())
    return list(dict.fromkeys(places))


def download(root: Path) -> None:
    """Fetch both splits with torchvision into `root` (the files land directly in it)."""
    import torchvision.datasets  # slow import; only needed on this rare path

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # torchvision's urlopen has no timeout
    try:
        with contextlib.redirect_stdout(sys.stderr):  # keep stdout for machine-read output
            for split in FILES:
                torchvision.datasets.SVHN(root=str(root), split=split, download=True)
    finally:
        socket.setdefaulttimeout(previous)


def locate(data_dir: str | None) -> Path:
    """The folder holding the SVHN files, downloading them if they are nowhere local.

    A folder with the train file wins over one with only the test file.
    """
    places = search_places(data_dir)
    for role in FILES:
        for place in places:
            if (place / FILES[role]).is_file():
                return place
    try:
        download(cache_dir())
    except Exception as exc:  # offline, mirror down, disk full: all end the same way
        reason = idx._one_line(exc)
    else:
        if (cache_dir() / FILES["train"]).is_file():
            return cache_dir()
        reason = "downloaded files not found afterwards"
    searched = ", ".join(str(p) for p in places)
    raise UserError(f"svhn: {FILE_NAMES} not found (searched {searched}) and the download failed "
                    f"({reason}); put {FILE_NAMES} in a folder and pass --data-dir DIR "
                    "or set DIGITSEARCH_DATA=DIR")


def _resize_matrix(src: int, dst: int) -> np.ndarray:
    """(dst, src) matrix averaging the source pixels each output pixel covers (area resize)."""
    edges = np.arange(dst + 1) * (src / dst)
    left, right = edges[:-1, None], edges[1:, None]
    pixel = np.arange(src)[None, :]
    overlap = np.clip(np.minimum(right, pixel + 1) - np.maximum(left, pixel), 0, None)
    return (overlap / (src / dst)).astype(np.float32)


def to_gray28(colour: np.ndarray) -> np.ndarray:
    """SVHN 'X' uint8 (32, 32, 3, N) -> uint8 (N, 28, 28): luminance then area resize."""
    resize = _resize_matrix(colour.shape[0], SIZE)
    resize_w = _resize_matrix(colour.shape[1], SIZE)
    count = colour.shape[3]
    out = np.empty((count, SIZE, SIZE), dtype=np.uint8)
    for start in range(0, count, CHUNK):
        block = np.moveaxis(colour[..., start:start + CHUNK], 3, 0)  # (n, H, W, 3)
        gray = block.astype(np.float32) @ LUMA  # (n, H, W)
        small = resize @ gray @ resize_w.T  # (n, 28, 28), batched matrix products
        out[start:start + CHUNK] = np.clip(np.rint(small), 0, 255).astype(np.uint8)
    return out


def read_mat(path: Path) -> Split:
    """One SVHN .mat file as a Split of 28x28 grayscale digits, labels 0..9."""
    from scipy.io import loadmat  # imported here: only this loader needs it

    try:
        mat = loadmat(str(path), variable_names=["X", "y"])
    except Exception as exc:  # not MATLAB, truncated, HDF5 (v7.3): all unreadable here
        raise UserError(f"{path}: cannot be read as an SVHN .mat file ({idx._one_line(exc)}); "
                        "re-download it") from None
    colour, labels = mat.get("X"), mat.get("y")
    if colour is None or labels is None:
        raise UserError(f"{path}: has no 'X' images and 'y' labels; expected SVHN's "
                        "train_32x32.mat / test_32x32.mat format")
    if colour.ndim != 4 or colour.shape[2] != 3 or colour.shape[0] < 1 or colour.shape[3] == 0:
        raise UserError(f"{path}: 'X' has shape {colour.shape}, expected (32, 32, 3, N) colour "
                        "images with N > 0")
    labels = np.asarray(labels).reshape(-1)
    if len(labels) != colour.shape[3]:
        raise UserError(f"{path}: has {len(labels)} labels but {colour.shape[3]} images; "
                        "re-download it")
    if not np.all((labels >= 0) & (labels <= 10) & (labels == np.round(labels))):
        raise UserError(f"{path}: labels must be whole numbers 1..10 (10 = digit 0), found "
                        f"{labels.min()}..{labels.max()}")
    labels = labels.astype(np.int64)
    labels[labels == 10] = 0
    return Split(to_gray28(np.asarray(colour, dtype=np.uint8)), labels)


def load_folder(folder: Path, notes: list[str]) -> tuple[Split | None, Split | None]:
    """(train, test) from `folder`; either may be None (not both). Notes the imbalance."""
    splits = {role: read_mat(folder / name) if (folder / name).is_file() else None
              for role, name in FILES.items()}
    if splits["train"] is None and splits["test"] is None:
        raise UserError(f"{folder}: no SVHN files found; expected {FILE_NAMES}")
    parts = [f"{len(s):,} {role}" for role, s in splits.items() if s is not None]
    notes.append(f"read SVHN files from {folder}: {' + '.join(parts)} images")
    notes.append(NOTE)
    everything = np.concatenate([s.labels for s in splits.values() if s is not None])
    counts = np.bincount(everything, minlength=10)
    listing = ", ".join(f"{d}: {c:,}" for d, c in enumerate(counts))
    ratio = counts.max() / max(counts.min(), 1)
    notes.append(f"svhn is unbalanced: images per digit {listing} (largest/smallest class "
                 f"{ratio:.1f}x); compare accuracy with that in mind")
    return splits["train"], splits["test"]
