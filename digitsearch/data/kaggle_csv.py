"""Kaggle "Digit Recognizer" CSV files: `label,pixel0,...,pixel783`, values 0-255, ink high.

Labels are kept as written: whole numbers in any range or words (data.labelset maps them to
classes); Sign Language MNIST's `label,pixel1..pixel784` reads the same way.

A training CSV needs the label column; a test CSV has pixels only (a label column is
kept when present). Any square number of pixel columns is accepted (64 = 8x8, 784 =
28x28). Every defect becomes one UserError line naming file, row and fix; checks are
vectorised over the whole table, never a Python loop over rows.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from digitsearch.data import labelset
from digitsearch.data.bundle import Split
from digitsearch.errors import UserError

LABEL = "label"


def _layout(n_pixels: int) -> str:
    return f"label,pixel0..pixel{n_pixels - 1}"


def _row(i: int) -> str:
    # Data rows counted from 1 after the header, plus the line an editor shows.
    return f"row {i + 1} (line {i + 2})"


def _parse(path: Path) -> pd.DataFrame:
    """read_csv, cheaply: float32 halves memory against the default int64 (a Kaggle
    train.csv is 42,000 x 785) yet keeps gaps (NaN) and fractions visible to the checks.
    Non-numeric cells make the float parse fail; the slower default parse then keeps the
    text so the error can show the offending cell."""
    # index_col=False: extra fields must not silently become an index column. pandas
    # only warns (and drops data) when the first row is the long one: make that an error.
    with warnings.catch_warnings():
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            return pd.read_csv(path, index_col=False, dtype=np.float32)
        except ValueError as exc:
            if isinstance(exc, pd.errors.ParserError) or "convert" not in str(exc):
                raise
        return pd.read_csv(path, index_col=False)


def _read_table(path: Path) -> pd.DataFrame:
    """pandas.read_csv with its failures turned into one-line UserErrors."""
    if not path.is_file():
        raise UserError(f"{path}: no such file; check the path")
    if path.stat().st_size == 0:
        raise UserError(f"{path}: empty file (0 bytes); expected a header "
                        f"{_layout(784)} and one row per image")
    try:
        table = _parse(path)
    except pd.errors.ParserWarning:
        raise UserError(f"{path}: the first data row has more values than the header has "
                        "columns; fix the header or that row") from None
    except pd.errors.EmptyDataError:
        raise UserError(f"{path}: empty file; expected a header {_layout(784)} "
                        "and one row per image") from None
    except pd.errors.ParserError as exc:
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
        if found:
            expected, line, saw = map(int, found.groups())
            raise UserError(f"{path}: row {line - 1} (line {line}) has {saw} values, expected "
                            f"{expected} like the header; fix or remove that row") from None
        raise UserError(f"{path}: not a valid CSV ({' '.join(str(exc).split())}); "
                        "save it as comma-separated text") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a text CSV file (undecodable bytes); "
                        "save it as comma-separated UTF-8 text") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as CSV ({' '.join(str(exc).split())}); "
                        "save it as comma-separated text") from None
    table.columns = [str(c).strip() for c in table.columns]
    if len(table) == 0:
        raise UserError(f"{path}: has a header but no data rows; add one row per image")
    return table


def _first_non_number(path: Path, column: pd.Series, what: str) -> UserError:
    """Error for the first cell of `column` that is not a number."""
    numbers = pd.to_numeric(column, errors="coerce")
    bad = numbers.isna() & column.notna()
    if not bad.any():  # e.g. a column of True/False, which pandas reads as bool
        bad = column.notna()
    i = int(np.argmax(bad.to_numpy()))
    return UserError(f"{path}: {_row(i)} has {what} {column.iloc[i]!r} in column "
                     f"'{column.name}'; {what}s must be numbers")


def _pixels(path: Path, table: pd.DataFrame, columns: list[str], side: int) -> np.ndarray:
    """Validated pixel block as uint8 (N, side, side)."""
    for name in columns:
        dtype = table[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise _first_non_number(path, table[name], "pixel value")
    values = table[columns].to_numpy()
    if values.dtype.kind == "f":  # only float columns can hold gaps or fractions
        gaps = np.isnan(values)
        if gaps.any():
            i = int(np.argmax(gaps.any(axis=1)))
            present = int((~gaps[i]).sum())
            if not gaps[i, :present].any():  # trailing gap: the row is simply short
                raise UserError(f"{path}: {_row(i)} has {present} pixel values, expected "
                                f"{len(columns)} ({_layout(len(columns))}); fix or remove that row")
            j = int(np.argmax(gaps[i]))
            raise UserError(f"{path}: {_row(i)} has an empty value in column '{columns[j]}'; "
                            "every pixel needs a value 0-255")
        fractions = values != np.floor(values)
        if fractions.any():
            i, j = np.argwhere(fractions)[0]
            raise UserError(f"{path}: {_row(int(i))} has pixel value {values[i, j]:g} in column "
                            f"'{columns[j]}'; pixels must be whole numbers 0-255")
    outside = (values < 0) | (values > 255)
    if outside.any():
        i, j = np.argwhere(outside)[0]
        raise UserError(f"{path}: {_row(int(i))} has pixel value {values[i, j]:g} in column "
                        f"'{columns[j]}'; pixels must be 0-255 (ink high, like MNIST)")
    return values.astype(np.uint8).reshape(len(table), side, side)


def _labels(path: Path, column: pd.Series) -> np.ndarray:
    """The label column as the user wrote it (data.labelset): int64 whole numbers in any range,
    or str words; a row without one, a fraction, numbers beside words -> UserError."""
    missing = column.isna().to_numpy()
    if missing.any():
        i = int(np.argmax(missing))
        raise UserError(f"{path}: {_row(i)} has no label; every row of a training CSV needs one")
    return labelset.as_values(column, str(path))


def read_csv(path: str | Path, *, need_label: bool, expect_pixels: int | None = None,
             expect_from: str = "the training data") -> Split:
    """Read a Kaggle-style CSV into a Split (labels None when there is no label column).

    expect_pixels: pixel count the images must have (e.g. the training set's), named in
    the error by expect_from.
    """
    path = Path(path)
    table = _read_table(path)
    has_label = LABEL in table.columns
    if need_label and not has_label:
        raise UserError(f"{path}: no '{LABEL}' column; a training CSV needs the header "
                        f"{_layout(784)} (label first, then the pixels)")
    columns = [c for c in table.columns if c != LABEL]
    side = math.isqrt(len(columns))
    if not columns or side * side != len(columns):
        raise UserError(f"{path}: has {len(columns)} pixel columns, which is not a square image; "
                        f"expected 784 = 28x28 ({_layout(784)})")
    if expect_pixels is not None and len(columns) != expect_pixels:
        expected_side = math.isqrt(expect_pixels)
        raise UserError(f"{path}: has {len(columns)} pixel columns ({side}x{side}) but "
                        f"{expect_from} has {expect_pixels} ({expected_side}x{expected_side}); "
                        "use images of the same size")
    images = _pixels(path, table, columns, side)
    labels = _labels(path, table[LABEL]) if has_label else None
    return Split(images, labels)
