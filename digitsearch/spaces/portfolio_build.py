"""Learning the portfolio from a table of real results: greedy for coverage.

The table (search_spaces/portfolio/table.csv, written by `digitsearch portfolio table`) has
one row per (candidate config, dataset): the validation accuracy that config reached when a
search trained it on that dataset. A candidate's regret on a dataset is how far it falls short
of that dataset's best candidate, as a share of the spread between the best and the worst
there (0: the best; 1: the worst, or it could not train there). A portfolio's loss on a
dataset is its best member's regret, and its loss overall the mean over the datasets.

Greedy, as auto-sklearn 2.0 builds its portfolio (Feurer et al. 2022): start empty, add the
candidate that lowers the loss most, and so on: the first member is the best generalist, each
next one earns its place where the members so far are weak. Once every dataset has its best
candidate the loss is 0 and nothing lowers it; further members are then the candidates of the
lowest mean regret (robust ones), so a longer search still gets strong configs first.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from digitsearch.errors import UserError

COLUMNS = ("config_id", "dataset", "val_acc", "seconds", "source", "config")
SIZE = 6  # configs in the built-in portfolio: the first 10 minutes of a 2-core search train about as many


@dataclass(frozen=True)
class Row:
    config_id: str
    dataset: str
    val_acc: float  # NaN: the config could not train there (over budget, failed)
    seconds: float
    source: str  # where the candidate came from ("start 1 of cnn", "best of fashion-5 search")
    config: dict


def read_table(path: Path) -> list[Row]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            missing = set(COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise UserError(f"{path}: not a portfolio table: no column {', '.join(sorted(missing))} "
                                f"(its columns: {', '.join(COLUMNS)})")
            return [Row(r["config_id"], r["dataset"], _number(r["val_acc"]), _number(r["seconds"]), r["source"],
                        json.loads(r["config"])) for r in reader]
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: cannot be read as a portfolio table ({err})") from None


def write_table(path: Path, rows: list[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([r.config_id, r.dataset, f"{r.val_acc:.5f}", f"{r.seconds:.1f}", r.source,
                             json.dumps(r.config, sort_keys=True)])


def _number(text: str) -> float:
    return float(text) if text not in ("", "nan", "NaN") else float("nan")


def regrets(rows: list[Row], without: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
    """config_id -> dataset -> regret in 0..1, over the datasets not in `without`."""
    datasets = sorted({r.dataset for r in rows} - set(without))
    configs = sorted({r.config_id for r in rows})
    acc = {(r.config_id, r.dataset): r.val_acc for r in rows if r.val_acc == r.val_acc}
    out: dict[str, dict[str, float]] = {c: {} for c in configs}
    for d in datasets:
        there = [acc[(c, d)] for c in configs if (c, d) in acc]
        best, worst = (max(there), min(there)) if there else (0.0, 0.0)
        spread = best - worst
        for c in configs:
            value = acc.get((c, d))
            out[c][d] = 1.0 if value is None else ((best - value) / spread if spread > 0 else 0.0)
    return out


def greedy(rows: list[Row], size: int = SIZE, without: tuple[str, ...] = ()) -> list[tuple[str, float]]:
    """The portfolio's config ids in priority order, each with the loss once it is in."""
    table = regrets(rows, without)
    if not table or not next(iter(table.values())):
        raise UserError("the portfolio table has no result to learn from"
                        + (f" once {', '.join(without)} is left out" if without else ""))
    datasets = list(next(iter(table.values())))
    mean = {c: sum(r.values()) / len(r) for c, r in table.items()}
    chosen: list[tuple[str, float]] = []
    current = {d: 1.0 for d in datasets}
    while len(chosen) < min(size, len(table)):
        taken = {c for c, _ in chosen}
        pick = min((c for c in table if c not in taken),
                   key=lambda c, now=current: (_loss(now, table[c]), mean[c], c))
        current = {d: min(current[d], table[pick][d]) for d in datasets}
        chosen.append((pick, sum(current.values()) / len(datasets)))
    return chosen


def _loss(current: dict[str, float], candidate: dict[str, float]) -> float:
    """The portfolio's loss once `candidate` (its regret per dataset) joins members whose best
    regret per dataset is `current`."""
    return sum(min(current[d], candidate[d]) for d in current) / len(current)


def portfolio_yaml(rows: list[Row], chosen: list[tuple[str, float]], table_name: str,
                   without: tuple[str, ...] = ()) -> str:
    """The portfolio file: each config with the evidence it was chosen on."""
    table = regrets(rows, without)
    by_id = {r.config_id: r for r in rows}
    acc = {(r.config_id, r.dataset): r.val_acc for r in rows}
    datasets = list(next(iter(table.values())))
    configs = []
    for config_id, loss in chosen:
        best_on = [d for d in datasets if table[config_id][d] == 0.0]
        configs.append({
            "id": config_id, "source": by_id[config_id].source,
            "evidence": (f"mean regret {sum(table[config_id].values()) / len(datasets):.3f}; portfolio loss "
                         f"{loss:.3f} with it; best on {', '.join(best_on) or 'none'}; val_acc "
                         + ", ".join(f"{d} {acc.get((config_id, d), float('nan')):.4f}" for d in datasets)),
            # what a search orders the members by for its own data (portfolio.for_data); null: could not train
            "val_acc": {d: _plain(acc.get((config_id, d))) for d in datasets},
            "config": by_id[config_id].config,
        })
    header = (f"# Learned by `digitsearch portfolio build --table {table_name}"
              + "".join(f" --without {d}" for d in without) + f" --size {len(chosen)}`: greedy for coverage\n"
              "# over the datasets below (spaces/portfolio_build.py); searches evaluate these configs first.\n")
    body = {"table": table_name, "datasets": datasets, "configs": configs}
    return header + yaml.safe_dump(body, sort_keys=False, width=120)


def _plain(value: float | None) -> float | None:
    return None if value is None or value != value else round(float(value), 5)
