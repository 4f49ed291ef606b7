"""load(spec): registered sets, IDX folders, SVHN folders and Kaggle CSVs, as one Bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from digitsearch.data import addition, class_folders, digits, idx, kaggle_csv, labelset, numbers, svhn
from digitsearch.data.bundle import Bundle, Split, carve_test, check_fraction, make_bundle
from digitsearch.data.catalog import DATASETS, MIRROR_SAFE
from digitsearch.data.class_names import FASHION_CLASSES, KMNIST_CLASSES, Naming, for_classes
from digitsearch.errors import UserError


def _unknown(spec: str) -> UserError:
    if "/" in spec or "\\" in spec or spec.lower().endswith((".csv", ".gz")):
        return UserError(f"{spec}: no such file or folder; check the path")
    return UserError(f"unknown dataset '{spec}'; known: {', '.join(DATASETS)} "
                     "(or give a path to a folder of IDX files or class folders, or a Kaggle-style .csv file)")


def _folder_naming(path: Path) -> Naming:
    # IDX files carry no class names: the well-known sets are recognised by folder name
    text = str(path.resolve()).lower()
    known = FASHION_CLASSES if "fashion" in text else KMNIST_CLASSES if "kmnist" in text else None
    return Naming(known, path)


def _from_idx_folder(folder: Path, notes: list[str]) -> tuple[Split | None, Split | None]:
    train, t10k = idx.load_folder(folder)
    parts = ([f"{len(train):,} train"] if train else []) + ([f"{len(t10k):,} t10k"] if t10k else [])
    notes.append(f"read IDX files from {folder}: {' + '.join(parts)} images")
    if idx.is_emnist(folder):
        notes.append("EMNIST stores its images transposed: turned upright")
    return train, t10k


def _from_class_folders(path: Path, notes: list[str]) -> tuple[Split, Split | None]:
    """Folder names as labels: "0".."9" are numbers, any other name a word (data.labelset)."""
    train, test = class_folders.load(path, notes)
    named = [Split(s.images, labelset.as_values(s.labels, str(path), "class folder", mixed_ok=True))
             for s in (train, test) if s is not None]
    return named[0], named[1] if test is not None else None


def _source(spec: str, data_dir: str | None, notes: list[str]):
    """(name, train or None, test or None, one labelled pool or None, where names come from) for `spec`."""
    if spec == "digits":
        notes.append(digits.NOTE)
        return "digits", None, None, digits.load_digits_split(), Naming()
    if spec == "svhn":
        train, test = svhn.load_folder(svhn.locate(data_dir), notes)
        return "svhn", train, test, None, Naming()
    if spec in idx.REGISTERED:
        folder = idx.locate(spec, data_dir)
        train, t10k = _from_idx_folder(folder, notes)
        known = {"fashion-mnist": FASHION_CLASSES, "kmnist": KMNIST_CLASSES}.get(spec)
        return spec, train, t10k, None, Naming(known)
    path = Path(spec).expanduser()
    idx_files = idx.holds_idx(path)
    if path.is_dir() and svhn.has_files(path) and not idx_files:
        train, test = svhn.load_folder(path, notes)
        return path.resolve().name, train, test, None, Naming()
    if path.is_dir() and not idx_files and class_folders.looks_like(path):
        train, test = _from_class_folders(path, notes)
        return path.resolve().name, train, test, None, Naming(beside=path)
    if path.is_dir():
        train, t10k = _from_idx_folder(path, notes)
        return path.resolve().name, train, t10k, None, _folder_naming(path)
    if path.is_file():
        if not path.name.lower().endswith((".csv", ".csv.gz")):
            raise UserError(f"{spec}: not a .csv file or a dataset folder; give a Kaggle-style .csv "
                            "(label,pixel0..pixel783), a folder of IDX files or a folder of class folders")
        train = kaggle_csv.read_csv(path, need_label=True)
        notes.append(f"read {len(train):,} labelled images from {path}")
        return path.name, None, None, train, Naming(beside=path.parent)
    raise _unknown(spec)


def _check_classes(spec: str, labelled: Split) -> None:
    """A classifier needs two classes to tell apart: one label in the training data is refused."""
    present = np.unique(labelled.labels)
    if len(present) < 2:
        raise UserError(f"{spec}: every training label is {present[0] if len(present) else 'missing'}; a classifier "
                        f"needs at least 2 classes in its training data")


def load(spec: str = "digits", *, test: str | None = None, data_dir: str | None = None,
         val_fraction: float = 0.1, seed: int = 0, base: str | None = None) -> Bundle:
    """Load a dataset by registered name, IDX or SVHN folder path or Kaggle CSV path.

    test: a Kaggle-style test CSV (labelled or not) or IDX folder that replaces the
    source's test split. Without it, sources lacking a test set get a stratified 20%
    carved from their labelled data. Validation is a stratified `val_fraction` of the
    remaining training data. All splits are deterministic for a given `seed`.
    base: for `numbers` only, the digit set (any spec this function accepts, loaded with
    the same data_dir/seed) whose images are put side by side; default "digits".
    """
    val_fraction = check_fraction(val_fraction)
    spec = str(spec)
    if base is not None and spec != "numbers":
        raise UserError(f"--base only applies to --dataset numbers (got --dataset {spec}); "
                        "drop --base or use --dataset numbers")
    if spec in ("numbers", "addition") and test is not None:
        raise UserError(f"--test does not apply to --dataset {spec}: its test split is built "
                        "with it; drop --test")
    if spec == "addition":
        return addition.load(val_fraction, seed)
    if spec == "numbers":
        return _numbers(base or numbers.DEFAULT_BASE, data_dir, val_fraction, seed)
    notes: list[str] = []
    name, train, test_split, only, naming = _source(spec, data_dir, notes)
    if only is not None:  # digits or a CSV: one labelled pool, no separate test set
        train_all, reason = only, f"{name} has no separate test set"
    elif train is None:  # IDX folder with only t10k files (e.g. mnist-10k)
        train_all, test_split, reason = test_split, None, "only t10k files found"
    else:
        train_all, reason = train, f"no test data for {name}"
    _check_classes(spec, train_all)
    classes = labelset.learn(train_all.labels)
    train_all = _encoded(train_all, classes, spec)
    if test is not None:
        pixels = train_all.images.shape[1] * train_all.images.shape[2]
        replaced = test_split is not None
        test_split = read_images(test, expect_pixels=pixels)
        kind = "unlabelled" if test_split.labels is None else "labelled"
        notes.append(f"test split {'replaced' if replaced else 'given'} by {test} "
                     f"({len(test_split):,} {kind} images)")
        if train is None:
            notes.append(f"{reason}: all {len(train_all):,} labelled images used for train/validation")
    if test_split is None:
        train_all, test_split = carve_test(train_all, seed, name, reason, notes)
    else:
        test_split = _encoded(test_split, classes, test or f"{spec} (its test data)")
    if not labelset.is_default(classes):
        notes.append(f"labels kept as written: {labelset.describe(classes)}")
    class_names = for_classes(classes, naming, notes)
    bundle = make_bundle(name, train_all, test_split, class_names, notes, val_fraction, seed)
    bundle.user_labels = classes
    # a registered mirror-safe set, or a folder recognised as one by its name (its class names)
    bundle.mirror_safe = name in MIRROR_SAFE or class_names == list(FASHION_CLASSES)
    return bundle


def _encoded(split: Split, classes: list, source: str) -> Split:
    """The split with its labels as class indices (unlabelled splits as they are)."""
    if split.labels is None:
        return split
    return Split(split.images, labelset.encode(split.labels, classes, source))


def _numbers(base: str, data_dir: str | None, val_fraction: float, seed: int) -> Bundle:
    if base in ("numbers", "addition"):
        raise UserError(f"numbers: base dataset '{base}' is not a 10-class digit set; use "
                        "--base digits, mnist, svhn or a folder/CSV of 28x28 digits labelled 0-9")
    try:
        base_bundle = load(base, data_dir=data_dir, val_fraction=val_fraction, seed=seed)
    except UserError as exc:
        raise UserError(f"numbers: cannot load base dataset '{base}': {exc}") from None
    return numbers.build(base_bundle, base, val_fraction, seed)


def read_images(path: str, expect_pixels: int | None = None) -> Split:
    """Images to predict on: a Kaggle-style CSV (label column optional), a folder of IDX
    files (t10k preferred, else train; labels when the labels file is there), a single
    *-images-idx3-ubyte[.gz] file or class folders (labelled by their names). uint8 (N, H, W), ink high.

    expect_pixels: the pixel count the model was trained on (H*W); a mismatch is a UserError.
    """
    source = Path(path).expanduser()
    if source.is_dir() and not idx.holds_idx(source) and class_folders.looks_like(source):
        split, _ = _from_class_folders(source, [])  # labelled by folder, like a training set's
    elif source.is_dir():
        files = idx.find_files(source)
        role = "t10k" if files["t10k"]["images"] is not None else "train"
        if files[role]["images"] is None:
            raise UserError(f"{path}: no IDX images file found; expected "
                            "t10k-images-idx3-ubyte[.gz] or train-images-idx3-ubyte[.gz]")
        split = idx.read_pair(files[role]["images"], files[role]["labels"])
    elif source.is_file() and "idx3-ubyte" in source.name:
        # The matching labels file, if it sits next to the images, gives labels for free.
        labels = source.with_name(source.name.replace("images", "labels").replace("idx3", "idx1"))
        split = idx.read_pair(source, labels if labels.is_file() else None)
    elif source.is_file():
        return kaggle_csv.read_csv(source, need_label=False, expect_pixels=expect_pixels)
    else:
        raise UserError(f"{path}: no such file or folder; give a Kaggle-style .csv or a "
                        "folder of IDX files")
    pixels = split.images.shape[1] * split.images.shape[2]
    if expect_pixels is not None and pixels != expect_pixels:
        side = split.images.shape[1]
        raise UserError(f"{path}: images are {side}x{side} ({pixels} pixels) but "
                        f"{expect_pixels} pixels are expected; use images of the training size")
    return split
