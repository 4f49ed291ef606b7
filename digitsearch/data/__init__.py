"""Datasets: one `load(spec)` for registered sets, IDX folders, SVHN folders and Kaggle CSVs.

Whatever the source, the result is a Bundle of uint8 (N, H, W) images (ink high for the
MNIST family) with seeded, stratified train/validation (and, where the source has none,
test) splits, plus human-readable notes on how it was assembled. `numbers` builds wider
(28x84) images of the numbers 0..255 from a base digit set; `addition` is a sequence task
(Bundle.task "sequence": symbol ids in, symbol ids out, see data.addition).

The names below are imported on first use (PEP 562), so `digitsearch datasets` and the CLI's
option choices (data.invert) cost nothing: the loaders import numpy, pandas and scikit-learn.
"""
from __future__ import annotations

import importlib

__all__ = ["load", "read_images", "list_datasets", "Bundle", "Split"]

_WHERE = {"load": "loading", "read_images": "loading", "list_datasets": "catalog", "Bundle": "bundle",
          "Split": "bundle"}


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'digitsearch.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"digitsearch.data.{_WHERE[name]}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
