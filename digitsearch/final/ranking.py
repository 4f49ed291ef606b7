"""Which trials `best --retrain --ensemble K` retrains: the leaderboard's top K distinct configs
that come within WITHIN of the best's val_acc.

Trained trials only (TRAINED_STATUSES, val_acc above zero: those the best may be), of any
family, best first as leaderboard.csv ranks them. Two trials with the same config dict
would make two copies of one net, so only the better of them counts.

Why the margin: averaging with a clearly weaker net costs more than the diversity gives. The
Fashion-MNIST 60-minute run (results/examples/fashion-60m) averaged the best net (val 0.940,
test 94.59 % alone) with one 1.6 val points behind (test 92.01 %) and got 94.27 %. On MNIST-10k
the top configs sit within half a point of each other (800 val images: 1 image is 0.125) and
their average beats each member (99.55 % against 99.45 %, examples/mnist10k-30m-e3). plan fills
the places nobody else earns with the best config under other seeds, a seed ensemble.
"""
from __future__ import annotations

import json
from pathlib import Path

from digitsearch.store import experiments, trials
from digitsearch.store.pareto import usable as trained_usable

WITHIN = 0.01  # val_acc below the best's by more than this (1 point) keeps a config out of the ensemble


def top_trials(folder: Path, count: int, within: float = WITHIN) -> list[dict]:
    """Up to `count` trials, best first, each as best.json describes the best (its leaderboard
    row and its config as Tune recorded it), none more than `within` below the best's val_acc;
    fewer when the leaderboard has fewer such.
    A trial whose config is not on this machine (a search stored on S3) is left out, except
    the best, whose config best.json holds."""
    from digitsearch.store import leaderboard  # pandas: only when the leaderboard is read

    best = experiments.read_best(folder)
    table = leaderboard.read(folder)
    usable = table[trained_usable(table)
                   & (table["trial_id"] != best["trial_id"]) & (table["val_acc"] >= best["val_acc"] - within)]
    recorded = trials.configs(folder, list(usable["trial_id"]))
    chosen = [{**best, "experiment": folder.name}]  # best.json's trial first, as a plain retrain takes it
    seen = {_key(best["config"])}
    for row in _rows(usable):
        if len(chosen) >= count:
            break
        config = recorded.get(row["trial_id"])
        if config and _key(config) not in seen:
            seen.add(_key(config))
            chosen.append({**row, "config": config, "experiment": folder.name})
    return chosen


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True, default=str)


def _rows(table) -> list[dict]:
    """The table's rows as plain Python values (NaN -> None), as store.trials.read_trial gives them."""
    import pandas as pd

    return [{k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in table.to_dict("records")]
