"""`numbers`: images of the numbers 0..255, written with digit images side by side.

The canvas is 28 x 84: three 28x28 slots. A number's decimal digits (no leading zeros)
are placed in adjacent slots, the group centred horizontally (one digit in the middle
slot, two digits straddling the centre, three filling the canvas). Each digit is a random
image of that digit from a base 10-class digit set (any spec `data.load` accepts).

Train images are assembled only from the base's train+validation images and test images
only from the base's test images, so no handwritten digit of the test set is seen in
training. Every number gets TRAIN_PER_NUMBER train and TEST_PER_NUMBER test images
(256 balanced classes); the draws are seeded, so the set is the same for the same seed.
"""

from __future__ import annotations

import numpy as np

from digitsearch.data.bundle import Bundle, Split, make_bundle
from digitsearch.errors import UserError

DEFAULT_BASE = "digits"
NUMBERS = 256
SLOT = 28
SLOTS = 3
HEIGHT, WIDTH = SLOT, SLOT * SLOTS
TRAIN_PER_NUMBER = 48
TEST_PER_NUMBER = 12
DIGIT_NAMES = [str(i) for i in range(10)]


def check_base(base: Bundle, spec: str) -> None:
    """A base must be an image set of 28x28 digits with classes '0'..'9' and labelled test data."""
    if base.task != "image" or base.class_names != DIGIT_NAMES:
        raise UserError(f"numbers: base dataset '{spec}' is not a 10-class digit set (classes "
                        f"{', '.join(base.class_names[:4])}...); use --base digits, mnist, svhn "
                        "or a folder/CSV of digit images labelled 0-9")
    if base.image_size != SLOT:
        height, width = base.train.images.shape[1:3]
        raise UserError(f"numbers: base dataset '{spec}' has {height}x{width} images; "
                        f"{SLOT}x{SLOT} digits are needed (e.g. --base digits or mnist)")
    if base.test is None or base.test.labels is None:
        raise UserError(f"numbers: base dataset '{spec}' has no labelled test images; "
                        "give a base with labelled test data")
    for split, what in ((base.train_and_val(), "train"), (base.test, "test")):
        missing = sorted(set(range(10)) - set(np.unique(split.labels).tolist()))
        if missing:
            raise UserError(f"numbers: base dataset '{spec}' has no {what} images of digit(s) "
                            f"{', '.join(map(str, missing))}; every digit 0-9 is needed")


def compose(pool: Split, per_number: int, rng: np.random.Generator) -> Split:
    """`per_number` images of each number 0..NUMBERS-1 from digit images in `pool`.

    Returns uint8 (NUMBERS * per_number, HEIGHT, WIDTH) ordered by number, labels int64.
    """
    by_digit = [np.flatnonzero(pool.labels == d) for d in range(10)]
    labels = np.repeat(np.arange(NUMBERS, dtype=np.int64), per_number)
    images = np.zeros((len(labels), HEIGHT, WIDTH), dtype=np.uint8)
    digit_rows = [str(n) for n in range(NUMBERS)]
    for row_start, number in zip(range(0, len(labels), per_number), digit_rows):
        left = (WIDTH - SLOT * len(number)) // 2
        rows = slice(row_start, row_start + per_number)
        for position, char in enumerate(number):
            candidates = by_digit[int(char)]
            chosen = candidates[rng.integers(0, len(candidates), size=per_number)]
            x = left + position * SLOT
            images[rows, :, x:x + SLOT] = pool.images[chosen]
    return Split(images, labels)


def build(base: Bundle, spec: str, val_fraction: float, seed: int) -> Bundle:
    """The numbers Bundle made from `base` (already loaded from `spec`)."""
    check_base(base, spec)
    pool = base.train_and_val()
    # Separate streams for train and test: changing one count leaves the other unchanged.
    train_all = compose(pool, TRAIN_PER_NUMBER, np.random.default_rng([seed, 0]))
    test = compose(base.test, TEST_PER_NUMBER, np.random.default_rng([seed, 1]))
    notes = [f"base {spec}: {note}" for note in base.notes if not note.startswith("validation:")]
    notes.append(
        f"numbers 0..{NUMBERS - 1}: each digit (no leading zeros) a random {SLOT}x{SLOT} {spec} "
        f"image, side by side and centred on a {HEIGHT}x{WIDTH} canvas; {TRAIN_PER_NUMBER} train "
        f"images per number from the base's {len(pool):,} train+val digits, {TEST_PER_NUMBER} "
        f"test images per number from its {len(base.test):,} test digits only (seed {seed}); "
        f"{NUMBERS} balanced classes")
    return make_bundle("numbers", train_all, test, [str(n) for n in range(NUMBERS)], notes,
                       val_fraction, seed)
