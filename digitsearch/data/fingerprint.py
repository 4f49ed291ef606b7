"""A Bundle's fingerprint: what `tune` saw, so `best --retrain` (and `--resume`) can tell the
data they load again from the data the search ran on (an edited CSV, another file at the
same path, a loader that splits differently).

Recorded per part, so a change can be named: the training pool (train + validation) and the
test set, each by its images and by its examples (image and label), order-free; how the
examples were split between train, validation and test; the order inside each split. The
Bundle keeps no split indices, so the split is fingerprinted by content: which examples went
to which side.
"""
from __future__ import annotations

import hashlib

import numpy as np

from digitsearch.data.bundle import Bundle

VERSION = 1


def _where(train_changed: bool, test_changed: bool, what: str) -> str:
    """A change by where it is: the training pool (train + validation), the test set, or both."""
    if train_changed and test_changed:
        return f"the {what} changed (training and test)"
    return f"the {'test' if test_changed else 'training'} {what} changed"


def _array_digest(array: np.ndarray | None) -> str:
    """sha256 of an array's dtype, shape and bytes; None has a digest of its own."""
    digest = hashlib.sha256()
    if array is None:
        digest.update(b"none")
        return digest.hexdigest()
    array = np.ascontiguousarray(array)
    digest.update(f"{array.dtype.str}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def _row_digests(*arrays: np.ndarray | None) -> list[bytes]:
    """One short digest per example over the given arrays' rows (images, or images and labels)."""
    present = [np.ascontiguousarray(a) for a in arrays if a is not None]
    if not present or not len(present[0]):
        return []
    rows = np.concatenate([a.reshape(len(a), -1).view(np.uint8) for a in present], axis=1)
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def _set_digest(digests: list[bytes]) -> str:
    """The same examples in any order give the same digest (a multiset: duplicates count)."""
    return hashlib.sha256(b"".join(sorted(digests))).hexdigest()


def of(bundle: Bundle) -> dict:
    """The fingerprint experiment.json records at `tune` (hex digests, JSON-ready)."""
    parts = [bundle.train, bundle.val] + ([bundle.test] if bundle.test is not None else [])
    images = [_row_digests(p.images) for p in parts]
    examples = [_row_digests(p.images, p.labels) for p in parts]
    test = bundle.test
    return {
        "version": VERSION,
        "all_images": _set_digest([row for rows in images for row in rows]),
        "all_examples": _set_digest([row for rows in examples for row in rows]),
        # order-free: the same examples in another order are the same pool
        "pool_images": _set_digest(images[0] + images[1]),
        "pool_examples": _set_digest(examples[0] + examples[1]),
        "test_images": _set_digest(images[2]) if test is not None else None,
        "test_examples": _set_digest(examples[2]) if test is not None else None,
        # which examples went to train, to validation and to test, whatever the order inside each
        "split": hashlib.sha256("|".join(_set_digest(rows) for rows in examples).encode()).hexdigest(),
        "order": hashlib.sha256("|".join(_array_digest(a) for p in parts for a in (p.images, p.labels)).encode())
        .hexdigest(),
    }


def changes(recorded: dict, now: dict) -> list[str]:
    """What differs between a recorded fingerprint and the one of the data loaded now, in words
    (the first difference that explains the rest); [] when they agree."""
    if recorded.get("version") != now.get("version"):
        return [f"the fingerprint's version changed ({recorded.get('version')} -> {now.get('version')}), "
                f"so the data cannot be compared"]

    def differs(key: str) -> bool:
        return recorded.get(key) != now.get(key)

    moved = differs("pool_images") or differs("test_images")  # an image went to another part
    if differs("all_images"):
        return [_where(differs("pool_images"), differs("test_images"), "images") + " (added, removed or edited)"]
    if differs("all_examples"):
        # a test set carved from the same source, stratified by label, moves with its labels
        return ["the labels changed (and the split with them)" if moved else
                _where(differs("pool_examples"), differs("test_examples"), "labels")]
    if differs("split"):
        return ["the split changed (the same examples, divided differently between train, validation and test)"]
    if differs("order"):
        return ["the order of the examples changed"]
    return []
