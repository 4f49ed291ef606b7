"""A dataset laid out as class folders, the layout torchvision's ImageFolder and Keras'
image_dataset_from_directory read: `path/<label>/*.png` (one sub-folder per class), or
`path/train/<label>/...` plus, optionally, `path/test/<label>/...`.

What holds, and why:
- a label is its class folder's NAME exactly as written ("7", "10", "shirt"): mapping names to
  class indices is the caller's job, so the same names give the same classes in train and test;
- only the files directly in a class folder are read, PNG/JPEG only, each folder's files sorted
  by name (loads are deterministic); hidden entries (.DS_Store, .ipynb_checkpoints) and macOS
  zip leftovers (__MACOSX) are skipped; other files are skipped and counted in a note;
- the images' preparation is decided once for train and test together, so both look alike:
  already small (at most 64x64 pixels, 28x84 too), all of one size and grey -> kept as they are (inverted when
  dark on light, the way MNIST's ink is high); anything else -> prepared like MNIST one file at a
  time, exactly as `predict` prepares a user's images (user_images), to 28x28;
- every defect (an empty class folder, a class only test/ has, fewer than 2 classes, an
  unreadable file) is one UserError line naming the path and the fix.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from digitsearch.data.bundle import Split
from digitsearch.data.user_images import MNIST_FRAME, SUFFIXES, border_level, load_gray, mnist_like
from digitsearch.errors import UserError

# images of at most 64x64 pixels (any shape: 28x84 numbers too) are taken to be a prepared dataset's, not photos
KEEP_MAX_PIXELS = 64 * 64
SKIPPED = ("__MACOSX",)  # what unzipping a macOS archive leaves beside the data
LAYOUT = "one sub-folder per class, named by its label, holding that class's PNG or JPEG images"


def _visible(entry: os.DirEntry | Path) -> bool:
    return not entry.name.startswith(".") and entry.name not in SKIPPED


def _subfolders(folder: Path) -> list[Path]:
    """The visible sub-folders of `folder`, sorted by name."""
    with os.scandir(folder) as entries:
        return sorted(Path(e.path) for e in entries if _visible(e) and e.is_dir())


def _is_image(entry: os.DirEntry) -> bool:
    return entry.is_file() and os.path.splitext(entry.name)[1].lower() in SUFFIXES


def _holds_images(folder: Path) -> bool:
    """Whether `folder` holds a PNG/JPEG file; stops at the first one."""
    with os.scandir(folder) as entries:
        return any(_visible(e) and _is_image(e) for e in entries)


def looks_like(path: Path) -> bool:
    """True when `path` is a folder laid out as class folders (`path/<label>/` or
    `path/train/<label>/`): a sub-folder holds PNG/JPEG files. Lists folders, decodes nothing."""
    try:
        if not path.is_dir():
            return False
        roots = [path, path / "train"] if (path / "train").is_dir() else [path]
        return any(_holds_images(folder) for root in roots for folder in _subfolders(root))
    except OSError:  # unreadable folder: not ours to explain here
        return False


def _roots(path: Path, notes: list[str]) -> tuple[Path, Path | None]:
    """(the folder whose sub-folders are the training classes, the test one or None)."""
    train, test = path / "train", path / "test"
    if not train.is_dir():
        return path, None
    if not _subfolders(train):
        raise UserError(f"{train}: no class folders in it; put {LAYOUT} in it")
    others = [p.name for p in _subfolders(path) if p.name not in ("train", "test")]
    if others:
        notes.append(f"ignored folder(s) {', '.join(others)} of {path}: only train/ and test/ are read")
    if not test.is_dir():
        return train, None
    if not _subfolders(test):
        notes.append(f"ignored {test}: no class folders in it (images without labels cannot be a test set)")
        return train, None
    return train, test


class _Listing:
    """One split's class folders: names (sorted), each one's image files (sorted), and what was skipped."""

    def __init__(self, root: Path):
        self.root = root
        self.names: list[str] = []
        self.files: list[list[Path]] = []
        self.not_images: list[Path] = []
        for folder in _subfolders(root):
            self._add(folder)

    def _add(self, folder: Path) -> None:
        with os.scandir(folder) as scanned:
            entries = [e for e in scanned if _visible(e) and e.is_file()]
        images = sorted(Path(e.path) for e in entries if _is_image(e))
        if not images:
            raise UserError(f"{folder}: class folder with no PNG or JPEG images; add its images or remove it")
        self.names.append(folder.name)
        self.files.append(images)
        self.not_images += [Path(e.path) for e in entries if not _is_image(e)]

    def labels(self) -> np.ndarray:
        return np.repeat(np.array(self.names, dtype=str), [len(files) for files in self.files])

    def all_files(self) -> list[Path]:
        return [path for files in self.files for path in files]


def _check_classes(train: _Listing, test: _Listing | None) -> None:
    if len(train.names) < 2:
        found = f"only {train.names[0]!r}" if train.names else "none"
        raise UserError(f"{train.root}: needs at least 2 classes, found {found}; put {LAYOUT} in it")
    unknown = [name for name in test.names if name not in train.names] if test else []
    if unknown:
        raise UserError(f"{test.root / unknown[0]}: class {unknown[0]!r} is in test/ but not in train/; test "
                        f"labels must be classes the training data has: add {train.root / unknown[0]} or remove it")


def _gray_pixels(image: Image.Image) -> np.ndarray | None:
    """uint8 (H, W) when the image is grey and opaque; None when it needs MNIST-style preparation."""
    if image.mode in ("1", "L") and "transparency" not in image.info:
        return np.asarray(image.convert("L"))
    if image.mode not in ("L", "LA", "P", "PA", "RGB", "RGBA"):  # 16-bit, CMYK, float images
        return None
    rgba = np.asarray(image.convert("RGBA"))
    if (rgba[..., 3] != 255).any():  # transparency: load_gray puts such drawings on white paper first
        return None
    red, green, blue = rgba[..., 0], rgba[..., 1], rgba[..., 2]
    return red.copy() if (red == green).all() and (green == blue).all() else None


def _small_gray(path: Path) -> np.ndarray | None:
    """The file's uint8 (H, W) pixels when it can be kept as it is, else None (checks its size first)."""
    try:
        with Image.open(path) as opened:
            if opened.size[0] * opened.size[1] > KEEP_MAX_PIXELS:
                return None
            opened.load()
            return _gray_pixels(ImageOps.exif_transpose(opened))
    except (UnidentifiedImageError, OSError, ValueError):
        load_gray(path)  # fails the same way, with the one-line UserError naming the file
        return None


def _read_kept(files: list[Path]) -> np.ndarray | None:
    """uint8 (N, H, W) as the files hold them, or None as soon as one is large, coloured or of another size."""
    images = None
    for i, path in enumerate(files):
        pixels = _small_gray(path)
        if pixels is None or (images is not None and pixels.shape != images.shape[1:]):
            return None
        if images is None:
            images = np.empty((len(files), *pixels.shape), dtype=np.uint8)
        images[i] = pixels
    return images


def _ink_high(images: np.ndarray) -> bool:
    """Inverts in place when the images are dark on light (median background light); says whether it did."""
    if np.median([border_level(image / 255.0) for image in images]) <= 0.5:
        return False
    np.subtract(255, images, out=images)
    return True


def _read_mnist_like(files: list[Path]) -> np.ndarray:
    images = np.empty((len(files), MNIST_FRAME, MNIST_FRAME), dtype=np.uint8)
    for i, path in enumerate(files):
        images[i] = mnist_like(load_gray(path), MNIST_FRAME, "auto", path)
    return images


def _read(files: list[Path]) -> tuple[np.ndarray, str]:
    """(uint8 (N, H, W) images with ink high, how they were prepared) for every file, train and test alike."""
    images = _read_kept(files)
    if images is None:
        how = (f"prepared like MNIST: each one grey, inverted when dark on light, cropped to the ink, "
               f"scaled and centred in {MNIST_FRAME}x{MNIST_FRAME}")
        return _read_mnist_like(files), how
    height, width = images.shape[1:]
    inverted = ", inverted: dark on light" if _ink_high(images) else ""
    return images, f"kept as they are: {height}x{width} grayscale{inverted}"


def _not_images_note(listings: list[_Listing]) -> str | None:
    skipped = [path for listing in listings for path in listing.not_images]
    if not skipped:
        return None
    return f"ignored {len(skipped):,} files that are not PNG/JPEG in the class folders (e.g. {skipped[0]})"


def load(path: Path, notes: list[str]) -> tuple[Split, Split | None]:
    """(train, test or None) from class folders: uint8 (N, H, W) images with ink high, labels the
    class folders' names (str). Appends one-line notes on what was read, and how, to `notes`."""
    train_root, test_root = _roots(path, notes)
    listings = [_Listing(train_root)] + ([_Listing(test_root)] if test_root else [])
    _check_classes(listings[0], listings[1] if test_root else None)
    images, how = _read([path for listing in listings for path in listing.all_files()])
    splits, start = [], 0
    for listing in listings:
        labels = listing.labels()
        splits.append(Split(images[start:start + len(labels)], labels))
        start += len(labels)
        notes.append(f"read {len(labels):,} images in {len(listing.names)} class folders from {listing.root} ({how})")
    note = _not_images_note(listings)
    if note:
        notes.append(note)
    return splits[0], (splits[1] if len(splits) > 1 else None)
