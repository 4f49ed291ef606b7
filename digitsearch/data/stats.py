"""Class balance of a Bundle: a counts table and a bar chart (`digitsearch datasets --stats`).

Image datasets are counted per class. A sequence task (addition) has no classes: there
the rows are answer lengths (how many characters of the answer are not padding), which
is the balance that matters for it: few sums have 1 digit, most have 3.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from digitsearch.data.bundle import Bundle, Split
from digitsearch.errors import UserError

SPLITS = ("train", "val", "test")
GROUPED_UP_TO = 30  # classes; beyond, bars are stacked (grouped bars would be slivers)
BAR_LABELS_UP_TO = 12  # classes; beyond, counts on the bars would overlap
MAX_TICKS = 32  # class names shown on the x axis at most (every Nth beyond)
DPI = 120


def _labelled(bundle: Bundle) -> dict[str, Split]:
    splits = {"train": bundle.train, "val": bundle.val, "test": bundle.test}
    return {name: s for name, s in splits.items() if s is not None and s.labels is not None}


def _answer_lengths(bundle: Bundle, split: Split) -> np.ndarray:
    pad = bundle.vocab.index(" ") if bundle.vocab and " " in bundle.vocab else -1
    return (np.asarray(split.labels) != pad).sum(axis=1)


def class_counts(bundle: Bundle) -> pd.DataFrame:
    """Images per class and split: index = class names (named "class"), int columns
    train, val, test (left out when the test split is unlabelled or absent) and total.

    For a sequence task the rows are answer lengths instead ("1", "2", ... characters,
    index named "answer length"), counting question/answer pairs.
    """
    splits = _labelled(bundle)
    if bundle.task == "sequence":
        width = int(bundle.train.labels.shape[1])
        index = pd.Index([str(n) for n in range(1, width + 1)], name="answer length")
        columns = {name: np.bincount(_answer_lengths(bundle, s), minlength=width + 1)[1:width + 1]
                   for name, s in splits.items()}
    else:
        index = pd.Index(list(bundle.class_names), name="class")
        n = len(index)
        columns = {}
        for name, split in splits.items():
            labels = np.asarray(split.labels, dtype=np.int64)
            if labels.size and (labels.min() < 0 or labels.max() >= n):
                raise UserError(f"{bundle.name}: {name} labels run {labels.min()}..{labels.max()}"
                                f" but there are {n} class names; the dataset is inconsistent")
            columns[name] = np.bincount(labels, minlength=n)
    table = pd.DataFrame(columns, index=index).astype(np.int64)
    table["total"] = table.sum(axis=1)
    return table


def write_bar_chart(bundle: Bundle, path: str | Path) -> Path:
    """A PNG bar chart of `class_counts(bundle)`: bars per class for train/val/test.

    Grouped bars with counts on them for a few classes; stacked bars and every Nth
    class name (rotated) for many, so 256 classes stay legible. Returns the path.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, Agg by default

    table = class_counts(bundle).drop(columns="total")
    names = [str(n) for n in table.index]
    count = len(names)
    x = np.arange(count)
    slots = count if count > GROUPED_UP_TO else count * table.shape[1] / 2  # grouped: wider
    width_in = min(16.0, max(6.0, 0.45 * slots + 2))
    figure = Figure(figsize=(width_in, 4.8), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    colours = {"train": "#4c72b0", "val": "#dd8452", "test": "#55a868"}
    if count <= GROUPED_UP_TO:
        bar = 0.8 / table.shape[1]
        for i, column in enumerate(table.columns):
            offset = (i - (table.shape[1] - 1) / 2) * bar
            bars = axes.bar(x + offset, table[column], bar, label=column, color=colours[column])
            if count <= BAR_LABELS_UP_TO:
                axes.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=1)
    else:
        bottom = np.zeros(count)
        for column in table.columns:
            axes.bar(x, table[column], 0.9, bottom=bottom, label=column, color=colours[column],
                     linewidth=0)
            bottom += table[column].to_numpy()
    step = max(1, math.ceil(count / MAX_TICKS))
    ticks = x[::step]
    long_names = max((len(n) for n in names), default=0) > 3
    rotation = 90 if step > 1 else (35 if long_names or count > 16 else 0)
    axes.set_xticks(ticks, [names[i] for i in ticks], rotation=rotation,
                    ha="right" if rotation == 35 else "center")
    axes.set_xlim(-0.6, count - 0.4)
    what = "answer length (characters)" if bundle.task == "sequence" else "class"
    axes.set_xlabel(what + (f" (one in {step} labelled)" if step > 1 else ""))
    axes.set_ylabel("question/answer pairs" if bundle.task == "sequence" else "images")
    total = int(table.to_numpy().sum())
    kind = "stacked" if count > GROUPED_UP_TO else "per split"
    axes.set_title(f"{bundle.name}: {total:,} {'pairs' if bundle.task == 'sequence' else 'images'}"
                   f" in {count} {'answer lengths' if bundle.task == 'sequence' else 'classes'}"
                   f" ({kind})")
    axes.yaxis.set_major_formatter("{x:,.0f}")
    axes.grid(axis="y", alpha=0.3)
    axes.set_axisbelow(True)
    axes.legend(title="split", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    target = Path(path).expanduser()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(target, dpi=DPI)
    except OSError as exc:
        raise UserError(f"{target}: cannot write the chart ({' '.join(str(exc).split())}); "
                        "choose a writable path") from None
    return target
