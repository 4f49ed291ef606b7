"""A sampled config that is still at chance after its first epoch is stopped there.

Such a net learned nothing in a whole pass over the data: an lr far too high or too low, a
dead stack of ReLUs, a head that answers one class; and ASHA lets the first trials at a rung
through whatever they scored. The trainable ends one after epoch 1 with the note
"at chance: val_acc X after 1 epoch": a measured, short run, PRUNED in the study like an ASHA
stop (search/reconcile.py), "at chance" in the leaderboard's status.

"At chance" is both accuracies at or below `bar(val_labels)`:
  - chance is the share of the most common class among the validation labels: what a net that
    answers one class scores (1/classes on balanced data);
  - the margin is two standard errors of a guesser's accuracy over the n validation images,
    sqrt(p (1 - p) / n), and at least MIN_MARGIN: a net that guesses at random lands below
    the bar 98 times in 100, a net that has learned anything lands far above it;
  - the training accuracy of the epoch must be at chance too: a strong net (one-cycle warmup,
    batchnorm statistics from a few batches) can look at chance on validation after one
    epoch while it already gets a third of its training images right. The measurements
    behind both rules: docs/spaces.md, "What a search does not spend trials on".

Not judged: the space's starting points (the hand-made nets train in full, as ASHA lets
them), a search with --scheduler fifo (it asks for every trial to run its max epochs), a
trial restored past its first epoch, a trial whose max epochs is 1 (it ends there anyway),
and sequence tasks: the adder's val_acc is exact match of whole sums, 0 after one
epoch for nets that learn as for nets that never will, and no per-symbol accuracy is reported.
"""
from __future__ import annotations

import math

import numpy as np

AT_CHANCE_NOTE = "at chance"  # how the trainable's note begins (reconcile.MEASURED_NOTES: PRUNED)
MIN_MARGIN = 0.02  # above chance, at least: on thousands of validation images two standard errors are less
STANDARD_ERRORS = 2.0


def bar(val_labels: np.ndarray) -> float:
    """The accuracy at or below which a net is at chance on these validation labels."""
    labels = np.asarray(val_labels).ravel()
    share = float(np.bincount(labels).max() / len(labels))
    margin = STANDARD_ERRORS * math.sqrt(share * (1 - share) / len(labels))
    return share + max(MIN_MARGIN, margin)


def at_chance(metrics: dict, chance_bar: float) -> bool:
    """Whether an epoch's metrics (train_acc and val_acc) are both at chance."""
    return metrics["val_acc"] <= chance_bar and metrics["train_acc"] <= chance_bar


def note(val_acc: float, epoch: int = 1) -> str:
    return f"{AT_CHANCE_NOTE}: val_acc {val_acc:.4f} after {epoch} epoch{'s' if epoch != 1 else ''}"
