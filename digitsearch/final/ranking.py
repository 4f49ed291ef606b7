"""Which trials `best --retrain --ensemble K` retrains: the top K distinct configs by `score`
(the mean val_acc of the epochs around each trial's best, leaderboard.near_best) that come
within `margin` of the top score.

Trained trials only (TRAINED_STATUSES, val_acc above zero: those the best may be), of any
family, by score but for ties (below). A best epoch alone is the luckiest draw of a noisy
curve; the epochs around it say what a retrain that stops there can expect. Two trials with
the same config dict would make two copies of one net, so only the better of them counts.

Why the margin: averaging with a clearly weaker net costs more than the diversity gives. The
Fashion-MNIST 60-minute run (results/examples/fashion-60m) averaged the best net (val 0.940,
test 94.59 % alone) with one 1.6 val points behind (test 92.01 %) and got 94.27 %. On MNIST-10k
members 5 validation images (0.6 points) behind the best scored 98.55-99.05 % on test against
the recipe net's 99.75 %, and held the ensemble at 99.50-99.60 % (results/README.md, "The search
earns its keep"). So the margin is two standard errors of the top score (`noise`): 4 of
MNIST-10k's 800 images at 0.995, 0.6 points of Fashion-MNIST's 6,000 at 0.94; plan fills the
places nobody else earns with the best config under other seeds, a seed ensemble.

Which comes first is robust to the small validation set: a trial within one standard error of
the top score (at least one image; 2 images of MNIST-10k's 800) is tied with it, and among
tied trials the space's starting points come first, in the space's order (its hand-made prior,
or the portfolio's order for the data: start 1 is the recipe on 28x28 digits), then the rest by
score. One or two validation images cannot tell nets apart, and the order of the starting
points is knowledge the validation set does not hold (docs/commands.md, "The retrain's pick").
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from digitsearch.errors import UserError
from digitsearch.store import experiments, trials
from digitsearch.store.pareto import usable as trained_usable

WITHIN = 0.01  # the margin (1 val point) where the experiment does not say its validation size
MARGIN_SE = 2  # a config joins the ensemble within this many standard errors of the best's val_acc


def margin(val_acc: float, images: int) -> float:
    """How far below the best's val_acc (`val_acc`, on `images` validation images) a config may
    be and still join the ensemble."""
    return MARGIN_SE * noise(val_acc, images) if images > 0 else WITHIN


def top_trials(folder: Path, count: int, within: float | None = None) -> list[dict]:
    """Up to `count` trials, first first (the module's order), each as best.json describes the
    best (its leaderboard row and its config as Tune recorded it), none more than `within` (by
    default `margin`) below the top `score`; fewer when the leaderboard has fewer such.
    A trial whose config is not on this machine (a search stored on S3) is left out, except
    the best, whose config best.json holds."""
    from digitsearch.store import leaderboard  # pandas: only when the leaderboard is read

    best = experiments.read_best(folder)
    images = val_images(experiments.read_meta(folder))
    table = leaderboard.read(folder)
    others = table[trained_usable(table) & (table["trial_id"] != best["trial_id"])]
    recorded = trials.configs(folder, list(others["trial_id"]))
    board = [best, *({**row, "config": recorded.get(row["trial_id"])} for row in _rows(others))]
    top = max(score(row) for row in board)
    within = margin(top, images) if within is None else within
    near = sorted((row for row in board if score(row) >= top - within - 1e-12), key=score, reverse=True)
    order = robust_order(near, _starts(folder), noise(top, images))
    chosen: list[dict] = []
    seen: set[str] = set()
    for row in order:
        if len(chosen) >= count:
            break
        if row.get("config") and _key(row["config"]) not in seen:
            seen.add(_key(row["config"]))
            chosen.append({**row, "experiment": folder.name})
    return chosen


def score(row: dict) -> float:
    """What the pick ranks a trial by: the mean val_acc of the epochs around its best
    (leaderboard.near_best), its best val_acc where the leaderboard predates that column."""
    value = row.get("val_near_best")
    return float(value) if isinstance(value, (int, float)) and value == value else float(row["val_acc"])


def robust_order(board: list[dict], starts: dict[str, int], noise_acc: float) -> list[dict]:
    """`board` (rows with trial_id and a score, best first) in the module's order: the rows
    within `noise_acc` of the top score are tied, and the starting points among them (`starts`:
    trial_id -> k) come first in the space's order; the rest keep the board's order."""
    top = max((score(row) for row in board), default=0.0)

    def key(ranked: tuple[int, dict]) -> tuple[int, int, int]:
        rank, row = ranked
        tied = score(row) >= top - noise_acc - 1e-12
        return (0, starts[row["trial_id"]], rank) if tied and row["trial_id"] in starts else (1, 0, rank)

    return [row for _, row in sorted(enumerate(board), key=key)]


def noise(val_acc: float, images: int) -> float:
    """One standard error of an accuracy `val_acc` measured on `images` images, at least one image."""
    if images < 1:
        return 0.0
    return max(1.0 / images, math.sqrt(max(val_acc * (1 - val_acc), 0.0) / images))


def val_images(meta: dict) -> int:
    """The experiment's validation images (experiment.json's sizes); 0 where it does not say."""
    return int(meta.get("sizes", {}).get("val") or 0)


def _starts(folder: Path) -> dict[str, int]:
    try:
        return trials.starting_point_trials(folder)
    except UserError:  # the space file is gone: no prior to break ties with, val_acc alone orders
        return {}


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _rows(table) -> list[dict]:
    """The table's rows as plain Python values (NaN -> None), as store.trials.read_trial gives them."""
    import pandas as pd

    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in table.to_dict("records")]
