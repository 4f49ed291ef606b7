"""The user's labels and the class indices the models train on.

Models train on class indices 0..K-1; users write labels: whole numbers in any range (Sign
Language MNIST's 0..24 without 9, EMNIST letters' 1..26, a course's 5-class subset 3..7) or
words ("shirt", "A"). The classes are the distinct labels the training data holds, sorted:
numbers in numeric order, words in text order, so the same data always maps the same way and
no class is empty. The list (class k's label at k) goes into experiment.json and model.pt as
"labels", and predictions.csv, `predict`, the reports and the Python API give labels back as
the user wrote them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from digitsearch.errors import UserError

MAX_SHOWN = 5  # labels a message lists before "..."


def as_values(raw, source: str, what: str = "label", mixed_ok: bool = False) -> np.ndarray:
    """Labels as read (numbers, numeric text, words) -> int64 when every one is a whole number,
    else str. Numbers and words in one column are refused unless `mixed_ok` (folder names, where
    "0".."9" beside "A".."Z" are all names); a gap or a fraction is refused."""
    series = pd.Series(np.asarray(raw, dtype=object).ravel())
    if series.isna().any():
        row = int(np.argmax(series.isna().to_numpy()))
        raise UserError(f"{source}: row {row + 1} has no {what}; every image needs one")
    numbers = pd.to_numeric(series.map(_numeric_text), errors="coerce")
    if mixed_ok and numbers.notna().all() and numbers.nunique() < series.map(str).nunique():
        numbers[:] = np.nan  # names "1" and "01" are two folders, two classes: kept as words
    if numbers.notna().all():
        whole = numbers.to_numpy(dtype=np.float64)
        fraction = whole != np.floor(whole)
        if fraction.any():
            row = int(np.argmax(fraction))
            raise UserError(f"{source}: row {row + 1} has {what} {whole[row]:g}; numeric labels must be whole numbers")
        return whole.astype(np.int64)
    if numbers.notna().any() and not mixed_ok:
        number, word = series[numbers.notna()].iloc[0], series[numbers.isna()].iloc[0]
        raise UserError(f"{source}: the {what}s mix numbers ({number!r}) and words ({word!r}); use one kind "
                        "for every row")
    return series.map(lambda v: str(v).strip()).to_numpy(dtype=str)


def _numeric_text(value):
    """Numbers stay; text that is a number ("7", " 7 ") becomes it; bools and other text stay apart."""
    if isinstance(value, (bool, np.bool_)):
        return "not a number"
    if isinstance(value, str):
        return value.strip() or "not a number"
    return value


def learn(labels: np.ndarray) -> list:
    """The classes: the distinct labels, sorted (numbers numerically, words as text), as plain
    Python ints or strs (they go into JSON)."""
    return [_plain(v) for v in np.unique(labels)]


def encode(labels: np.ndarray, classes: list, source: str) -> np.ndarray:
    """Labels -> class indices (int64) in `classes`; a label the classes lack is refused."""
    index = {value: k for k, value in enumerate(classes)}
    unknown = [v for v in np.unique(labels) if _plain(v) not in index]
    if unknown:
        shown = ", ".join(repr(_plain(v)) for v in unknown[:MAX_SHOWN]) + (", ..." if len(unknown) > MAX_SHOWN else "")
        raise UserError(f"{source}: has labels no training image has ({shown}); a model can only "
                        "predict the classes it trained on")
    return np.fromiter((index[_plain(v)] for v in labels), dtype=np.int64, count=len(labels))


def decode(indices: np.ndarray, classes: list | None) -> np.ndarray:
    """Class indices -> the user's labels (int64 when they are numbers, str otherwise); the
    indices themselves when `classes` is None (a model file written before labels were kept)."""
    indices = np.asarray(indices)
    if classes is None:
        return indices
    return np.asarray(classes)[indices]


def is_default(classes: list) -> bool:
    """Labels 0..K-1: the class index is the label."""
    return classes == list(range(len(classes)))


def describe(classes: list) -> str:
    """`classes` as one short phrase for a note, e.g. "24 classes: 0, 1, 2, 3, 4, ... 24"."""
    head = ", ".join(str(c) for c in classes[:MAX_SHOWN])
    tail = f", ... {classes[-1]}" if len(classes) > MAX_SHOWN else ""
    return f"{len(classes)} classes: {head}{tail}"


def _plain(value):
    return value.item() if hasattr(value, "item") else value
