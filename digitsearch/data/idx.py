"""IDX files (the MNIST family's format): reading, finding, and fetching the registered sets.

Format (big-endian): two zero bytes, a type byte (0x08 = unsigned byte), a byte with the
number of dimensions, one uint32 per dimension, then the raw values. Images files are
idx3 (N, rows, cols) with magic 0x00000803, label files idx1 (N,) with magic 0x00000801.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import socket
import sys
import zlib
from pathlib import Path

import numpy as np

from digitsearch.data.bundle import Split
from digitsearch.data.catalog import REGISTERED_IDX
from digitsearch.errors import UserError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801

ROLES = ("train", "t10k")
FILE_NAMES = ("train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
              "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz")

# name -> (torchvision dataset class, one-line description)
# name -> (torchvision class, description): the sets `load` finds or downloads by name
REGISTERED = REGISTERED_IDX

# Places a distribution may have installed a set (Debian: dataset-fashion-mnist).
# Module-level so tests can empty it.
SYSTEM_DIRS: dict[str, list[Path]] = {
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}

# Seconds a download may stall before giving up; offline it fails at DNS long before.
DOWNLOAD_TIMEOUT = 10


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read one IDX file (gzip or plain) and check its magic number and length."""
    try:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as exc:
        # BadGzipFile is an OSError; a truncated gzip raises EOFError.
        raise UserError(f"{path}: cannot be read as an IDX file ({_one_line(exc)}); "
                        "re-download or re-extract it") from None
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header or int.from_bytes(raw[:4], "big") != magic:
        found = raw[:4].hex() if len(raw) >= 4 else f"only {len(raw)} bytes"
        raise UserError(f"{path}: not an IDX file with magic {magic:#010x} (found {found}); "
                        "check the file is the right one and not corrupt")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise UserError(f"{path}: header says {'x'.join(map(str, dims))} values but the file has "
                        f"{len(raw) - header}; the file is truncated or corrupt, re-download it")
    # frombuffer is a view of the bytes object; copy so the array is writeable.
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims).copy()


def _candidates(role: str, kind: str) -> list[str]:
    """File names used in the wild: official ('-idx3-'), unzipped Windows ('.idx3-'), gz or not;
    the test role is 't10k' in MNIST's names and 'test' in EMNIST's."""
    ndim = 3 if kind == "images" else 1
    names = []
    for word in (role, "test") if role == "t10k" else (role,):
        for sep in ("-", "."):
            base = f"{word}-{kind}{sep}idx{ndim}-ubyte"
            names += [base, base + ".gz"]  # plain first: faster, and torchvision keeps both
    return names


def find_files(folder: Path) -> dict[str, dict[str, Path | None]]:
    """{'train': {'images': path|None, 'labels': path|None}, 't10k': {...}} for `folder`: the
    official names, else the same names after one prefix (EMNIST's emnist-letters-train-...)."""
    prefix = _prefix(folder)
    found: dict[str, dict[str, Path | None]] = {}
    for role in ROLES:
        found[role] = {}
        for kind in ("images", "labels"):
            paths = [folder / f"{prefix}{n}" for n in _candidates(role, kind)]
            found[role][kind] = next((p for p in paths if p.is_file()), None)
    return found


def _prefix(folder: Path) -> str:
    """"" when the folder holds officially named files, else the one prefix its IDX files share;
    two sets in one folder (emnist-letters-*, emnist-digits-*) are refused."""
    if not folder.is_dir() or any((folder / n).is_file() for r in ROLES for n in _candidates(r, "images")):
        return ""
    names = [n for r in ROLES for n in _candidates(r, "images")]
    prefixes = sorted({p.name[: -len(n)] for n in names for p in folder.glob(f"*-{n}")})
    if len(prefixes) > 1:
        shown = ", ".join(f"{p}*" for p in prefixes)
        raise UserError(f"{folder}: holds several IDX sets ({shown}); give a folder with one of them")
    return prefixes[0] if prefixes else ""


def is_emnist(folder: Path) -> bool:
    """EMNIST stores each image transposed; its files' names or its folder's name say it is EMNIST."""
    files = find_files(folder)
    return any(files[role]["images"] is not None and _emnist_file(files[role]["images"]) for role in ROLES)


def _emnist_file(path: Path) -> bool:
    return "emnist" in path.name.lower() or "emnist" in path.parent.name.lower()


def has_idx(folder: Path, role: str) -> bool:
    return folder.is_dir() and find_files(folder)[role]["images"] is not None


def holds_idx(folder: Path) -> bool:
    """Whether `folder` holds IDX images of either role (one look at its files)."""
    return folder.is_dir() and any(found["images"] is not None for found in find_files(folder).values())


def read_pair(images_path: Path, labels_path: Path | None) -> Split:
    """Images (+ labels when a labels file exists) as a Split; checks they agree."""
    images = read_idx(images_path, IMAGES_MAGIC)
    if images.shape[0] == 0:
        raise UserError(f"{images_path}: holds no images; use a file with at least one image")
    if images.shape[1] != images.shape[2]:
        raise UserError(f"{images_path}: images are {images.shape[1]}x{images.shape[2]}, "
                        "only square images are supported; resize them to NxN")
    if _emnist_file(images_path):
        images = np.ascontiguousarray(images.transpose(0, 2, 1))
    if labels_path is None:
        return Split(images, None)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if len(labels) != len(images):
        raise UserError(f"{labels_path}: has {len(labels)} labels but {images_path.name} has "
                        f"{len(images)} images; use matching images and labels files")
    return Split(images, labels)


def load_folder(folder: Path) -> tuple[Split | None, Split | None]:
    """(train, test) read from an IDX folder; either may be None, not both. Labels required."""
    files = find_files(folder)
    splits: dict[str, Split | None] = {}
    for role in ROLES:
        images, labels = files[role]["images"], files[role]["labels"]
        if images is None:
            splits[role] = None
            continue
        if labels is None:
            wanted = images.name.replace("images", "labels").replace("idx3", "idx1")
            raise UserError(f"{folder}: has {images.name} but no {wanted}; "
                            "add the labels file next to it")
        splits[role] = read_pair(images, labels)
    if splits["train"] is None and splits["t10k"] is None:
        raise UserError(f"{folder}: no IDX files found; expected {FILE_NAMES} "
                        "(or at least the two t10k files)")
    return splits["train"], splits["t10k"]


def cache_dir(name: str) -> Path:
    # Path.home() follows $HOME, which lets tests point the cache at a temporary folder.
    return Path.home() / ".cache" / "digitsearch" / name


def search_places(name: str, data_dir: str | None) -> list[Path]:
    """Folders that may hold the IDX files of registered set `name`, in priority order."""
    tv_raw = Path(REGISTERED[name][0]) / "raw"  # torchvision's layout: <root>/MNIST/raw
    places: list[Path] = []
    for root in (data_dir, os.environ.get("DIGITSEARCH_DATA")):
        if root:
            root_path = Path(root).expanduser()
            places += [root_path, root_path / name, root_path / tv_raw]
    places += [cache_dir(name), cache_dir(name) / tv_raw]
    places += SYSTEM_DIRS.get(name, [])
    return list(dict.fromkeys(places))  # drop duplicates, keep order


def download(name: str, root: Path) -> None:
    """Fetch a registered set with torchvision into `root` (it lands in <root>/<Class>/raw)."""
    import torchvision.datasets  # slow import; only needed on this rare path

    dataset_class = getattr(torchvision.datasets, REGISTERED[name][0])
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # torchvision's urlopen has no timeout
    try:
        # torchvision prints progress to stdout; keep stdout clean for machine-read output.
        with contextlib.redirect_stdout(sys.stderr):
            dataset_class(root=str(root), download=True)
    finally:
        socket.setdefaulttimeout(previous)


def locate(name: str, data_dir: str | None) -> Path:
    """The folder holding registered set `name`, downloading it if it is nowhere local.

    A folder with train files wins over one with only t10k files (which still works:
    the caller then carves a test split).
    """
    places = search_places(name, data_dir)
    for role in ROLES:
        for place in places:
            if has_idx(place, role):
                return place
    try:
        download(name, cache_dir(name))
    except Exception as exc:  # offline, mirror down, disk full: all end the same way
        reason = _one_line(exc)
    else:
        for place in search_places(name, data_dir):
            if has_idx(place, "train"):
                return place
        reason = "downloaded files not found afterwards"
    searched = ", ".join(str(p) for p in places)
    raise UserError(f"{name}: IDX files not found (searched {searched}) and the download failed "
                    f"({reason}); put {FILE_NAMES} in a folder and pass --data-dir DIR "
                    "or set DIGITSEARCH_DATA=DIR")


def _one_line(exc: BaseException) -> str:
    """An exception as a short single line, for embedding in a UserError."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
