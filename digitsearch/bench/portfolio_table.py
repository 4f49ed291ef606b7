"""`digitsearch portfolio table`: the table the portfolio is learned from, by real searches.

1. Candidates: the hand-made starting points of the image families `all` searches (cnn, lenet,
   vgg, resnet, lstm; transfer's ImageNet backbones need downloaded weights and hours of CPU)
   and, of each earlier search given (`--experiments`: searches run on any of the datasets),
   its two best completed configs and its best completed sampled one (not a starting point),
   each once.
2. On every dataset (bench/portfolio_data.py) one search evaluates exactly the candidates:
   `digitsearch tune --space all --portfolio candidates.yaml --trials N --scheduler fifo`, each
   for the same epochs on the same number of training examples, so one row per (candidate,
   dataset) is its validation accuracy there. Epochs, not seconds: the table does not depend
   on what else the machine ran.
"""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Callable

import yaml

from digitsearch.bench import portfolio_data
from digitsearch.errors import UserError
from digitsearch.spaces import load as load_space
from digitsearch.spaces.portfolio import fitted
from digitsearch.spaces.portfolio_build import Row
from digitsearch.store import leaderboard, trials
from digitsearch.store.experiments import read_meta
from digitsearch.store.leaderboard import match_starting_points

FAMILIES = ("cnn", "lenet", "vgg", "resnet", "lstm")
TOP_PER_EXPERIMENT = 2


def candidates(experiments: list[Path]) -> list[tuple[str, str, dict]]:
    """(id, source, config with family) of every candidate, hand-made ones first, each once."""
    found: list[tuple[str, str, dict]] = []
    space = load_space("all")
    for k, point in enumerate(space.starting_points, start=1):
        if point.get("family") in FAMILIES:
            found.append((_id(point), f"start {k} of space all", dict(point)))
    for folder in experiments:
        meta = read_meta(folder)
        table = leaderboard.read(folder)
        done = table[table["status"] == "completed"].sort_values("val_acc", ascending=False, kind="stable")
        configs = trials.configs(folder, list(done["trial_id"]))
        sampled = done[~done["origin"].fillna("").astype(str).str.startswith("start")]
        for trial_id in [*list(done["trial_id"])[:TOP_PER_EXPERIMENT], *list(sampled["trial_id"])[:1]]:
            config = {"family": meta.get("family"), **configs.get(trial_id, {})}
            if config["family"] in FAMILIES:
                found.append((_id(config), f"trial {trial_id} of {meta.get('dataset_name')} search {folder.name}",
                              config))
    unique: list[tuple[str, str, dict]] = []
    for _, source, config in found:
        point = fitted([config], space)[0]  # as `all` takes it: flip left to the data
        if point and not any(point[0] == kept for _, _, kept in unique):
            unique.append((_id(point[0]), source, point[0]))
    return unique


def _id(config: dict) -> str:
    text = json.dumps({k: v for k, v in config.items() if k != "flip"}, sort_keys=True, default=str)
    return f"{config.get('family')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def build(experiments: list[Path], datasets: tuple[str, ...], shared: Path, work: Path, epochs: int,
          examples: int, echo: Callable[[str], None]) -> list[Row]:
    """The table's rows: every candidate searched on every dataset."""
    cands = candidates(experiments)
    if not cands:
        raise UserError("no candidate configs: give --experiments of finished searches")
    work.mkdir(parents=True, exist_ok=True)
    file = work / "candidates.yaml"
    file.write_text(yaml.safe_dump({"configs": [{"id": i, "config": c} for i, _, c in cands]}, sort_keys=False))
    rows: list[Row] = []
    for dataset in datasets:
        echo(f"portfolio table: {len(cands)} candidates on {dataset}, {epochs} epochs each")
        folder = _search(file, len(cands), dataset, shared, work, epochs, examples)
        rows += _rows(folder, cands, dataset)
    return rows


def _search(file: Path, count: int, dataset: str, shared: Path, work: Path, epochs: int, examples: int) -> Path:
    name = f"table-{dataset}"
    folder = work / name
    if not (folder / "leaderboard.csv").is_file():  # a finished dataset is reused when the build is run again
        command = [sys.executable, "-m", "digitsearch.cli", "tune", "--space", "all", "--portfolio", str(file),
                   "--dataset", portfolio_data.dataset_argument(dataset, shared, work / "data"),
                   "--trials", str(count), "--scheduler", "fifo", "--max-epochs", str(epochs),
                   "--search-examples", str(examples), "--results", str(work), "--name", name, "--quiet"]
        if folder.exists():
            raise UserError(f"{folder} holds an unfinished table search; delete it and run again")
        done = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        (work / f"{name}.log").write_text(done.stdout)
        if done.returncode != 0:
            raise UserError(f"the table search on {dataset} failed (exit {done.returncode}); see {work / name}.log")
    return folder


def _rows(folder: Path, cands: list[tuple[str, str, dict]], dataset: str) -> list[Row]:
    table = leaderboard.read(folder).set_index("trial_id")
    configs = trials.configs(folder)
    points = [dict(c) for _, _, c in cands]
    by_point = {k: trial_id for trial_id, k in match_starting_points(configs, points).items()}
    rows = []
    for k, (config_id, source, config) in enumerate(cands, start=1):
        trial_id = by_point.get(k)
        row = table.loc[trial_id] if trial_id in table.index else None
        trained = row is not None and row["status"] == "completed"
        rows.append(Row(config_id, dataset, float(row["val_acc"]) if trained else math.nan,
                        float(row["seconds"]) if row is not None else math.nan, source, config))
    return rows
