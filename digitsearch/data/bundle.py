"""The containers every loader returns, and the seeded stratified splits between them.

Images are always uint8 (N, H, W) with ink high (white digit on black, like MNIST), so
models, augmentation and normalisation never need to know which loader produced them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from digitsearch.errors import UserError

# Share of the labelled data held out as the test split when a source has no test set.
TEST_FRACTION = 0.2


@dataclass
class Split:
    images: np.ndarray  # uint8 (N, H, W), ink high
    labels: np.ndarray | None  # int64 (N,), or None for an unlabelled set (Kaggle test.csv)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def pixel_stats(self) -> tuple[float, float]:
        """(mean, std) of the pixels scaled to [0, 1], for input normalisation.

        Computed from a 256-bin histogram: exact, and it avoids a float copy of the
        whole set (60,000 x 784 floats would be ~380 MB as float64).
        """
        counts = np.bincount(self.images.ravel(), minlength=256).astype(np.float64)
        values = np.arange(256, dtype=np.float64) / 255.0
        total = counts.sum()
        if total == 0:
            return 0.0, 1.0
        mean = float((counts * values).sum() / total)
        var = float((counts * (values - mean) ** 2).sum() / total)
        # A blank set would give std 0 and a division by zero downstream.
        return mean, math.sqrt(var) if var > 0 else 1.0

    def subset(self, index: np.ndarray) -> "Split":
        labels = None if self.labels is None else self.labels[index]
        return Split(self.images[index], labels)


@dataclass
class Bundle:
    """A dataset ready to search on.

    task "image": Split.images uint8 (N, H, W), labels int64 (N,), class_names per class.
    task "sequence" (e.g. addition): Split.images holds uint8 symbol ids (N, in_length),
    labels int64 symbol ids (N, out_length); `vocab` is the alphabet (symbol id -> character)
    and class_names is list(vocab).
    """

    name: str
    train: Split
    val: Split
    test: Split | None
    class_names: list[str]
    notes: list[str] = field(default_factory=list)
    task: str = "image"
    vocab: str | None = None
    # left-right mirrored images are still valid examples (catalog.MIRROR_SAFE): flips may augment
    mirror_safe: bool = False
    # class k's label as the user's data writes it (data.labelset): what predictions give back;
    # by default k itself. class_names[k] is what plots and reports show (e.g. "Trouser" for 1).
    user_labels: list | None = None

    def __post_init__(self) -> None:
        if self.user_labels is None:
            self.user_labels = list(range(len(self.class_names)))

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_size(self) -> int | list[int]:
        """Side of square images, or [height, width] (multi-digit numbers are wider than tall)."""
        height, width = (int(v) for v in self.train.images.shape[1:3])
        return height if height == width else [height, width]

    def model_args(self) -> dict:
        """The shape kwargs a model of this bundle's task needs (see models.TASKS)."""
        if self.task == "sequence":
            return {"vocab_size": len(self.vocab), "in_length": int(self.train.images.shape[1]),
                    "out_length": int(self.train.labels.shape[1])}
        return {"num_classes": self.num_classes, "image_size": self.image_size}

    def normalisation(self) -> tuple[float, float]:
        """(mean, std) of the training pixels scaled to [0, 1]; symbols are not normalised."""
        if self.task == "sequence":
            return 0.0, 1.0
        return self.train.pixel_stats()

    def with_train_subset(self, examples: int, seed: int) -> "Bundle":
        """This bundle with a stratified `examples` of its training split (validation and test
        unchanged), or itself when the split has no more than that."""
        if len(self.train) <= examples:
            return self
        _, kept, _ = split_off(self.train, examples / len(self.train), seed, self.name, "search")
        note = f"search: trials train on a stratified {len(kept):,} of the {len(self.train):,} training examples"
        return replace(self, train=kept, notes=[*self.notes, f"{note} (seed {seed})"])

    def train_and_val(self) -> Split:
        """Training plus validation data, for the final retrain on everything labelled."""
        images = np.concatenate([self.train.images, self.val.images])
        labels = np.concatenate([self.train.labels, self.val.labels])
        return Split(images, labels)


def check_fraction(val_fraction: float) -> float:
    """val_fraction must leave something on both sides of the split."""
    try:
        value = float(val_fraction)
    except (TypeError, ValueError):
        value = float("nan")
    if isinstance(val_fraction, bool) or not 0.0 < value < 1.0:
        raise UserError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction!r}; "
                        "use e.g. 0.1 to hold out 10% of the training data for validation")
    return value


def split_off(data: Split, fraction: float, seed: int, source: str,
              what: str) -> tuple[Split, Split, bool]:
    """Split `data` into (rest, carved) with `fraction` in carved, stratified when possible.

    Returns a flag saying whether stratification held; it fails when a class has a
    single image, and a plain seeded split is better than refusing the dataset.
    """
    from sklearn.model_selection import train_test_split  # here: sklearn costs every importer ~1 s

    index = np.arange(len(data))
    try:
        rest, carved = train_test_split(index, test_size=fraction, random_state=seed,
                                        stratify=data.labels)
        stratified = True
    except ValueError:
        try:
            rest, carved = train_test_split(index, test_size=fraction, random_state=seed)
        except ValueError:
            raise UserError(f"{source}: only {len(data)} labelled images, too few to carve a "
                            f"{what} split; provide more images") from None
        stratified = False
    # Sorted indices keep the original file order inside each split (easier to debug).
    return data.subset(np.sort(rest)), data.subset(np.sort(carved)), stratified


def _unstratified(data: Split) -> str:
    """Why a split fell back to random: a stratified one needs 2 images of every class."""
    counts = np.unique(data.labels, return_counts=True)[1] if data.labels is not None else np.array([])
    rare = int((counts < 2).sum())
    if not rare:
        return "random (too few images to stratify)"
    return f"random ({rare} class{'es' if rare > 1 else ''} with 1 image; stratifying needs 2 of each)"


def carve_test(data: Split, seed: int, source: str, reason: str,
               notes: list[str]) -> tuple[Split, Split]:
    """Hold out TEST_FRACTION of `data` as a labelled test split and record why."""
    rest, test, stratified = split_off(data, TEST_FRACTION, seed, source, "test")
    kind = "stratified" if stratified else _unstratified(data)
    notes.append(f"{reason}: carved a {kind} {TEST_FRACTION * 100:g}% test split (seed {seed}), "
                 f"{len(test)} of {len(data)} images")
    return rest, test


def make_bundle(name: str, train_all: Split, test: Split | None, class_names: list[str],
                notes: list[str], val_fraction: float, seed: int) -> Bundle:
    """Carve validation out of the training data and assemble the Bundle."""
    train, val, stratified = split_off(train_all, val_fraction, seed, name, "validation")
    kind = "stratified" if stratified else _unstratified(train_all)
    notes.append(f"validation: {kind} {val_fraction * 100:g}% of the training data (seed {seed}), "
                 f"{len(train)} train / {len(val)} val")
    return Bundle(name=name, train=train, val=val, test=test,
                  class_names=class_names, notes=notes)
