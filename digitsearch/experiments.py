"""The results folder: one folder per experiment, found by name or as the latest.

results/<name>/
  experiment.json   what was asked (space, dataset, budget) and what the data were
  tune/             Ray Tune's experiment folder (trial logs, best-epoch checkpoints); with
                    --storage it lives at <storage>/<name>/tune instead. `--resume --add-trials`
                    adds rounds tune-2/, tune-3/, ... beside it, searching on in the same study
  finished.txt      ids of the trials that ended, written as each ends (what --resume counts)
  optuna.db         the searcher's Optuna study (SQLite)
  leaderboard.csv   one row per trial, best first
  best.json         the best trial: config, metrics, checkpoint
  final/            written by `best --retrain`
  tensorboard/      TensorBoard runs: trials/<trial_id>/ (scalars, HParams), final/ (the retrain)
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

from digitsearch.errors import UserError

EXPERIMENT_FILE = "experiment.json"
BEST_FILE = "best.json"
LEADERBOARD_FILE = "leaderboard.csv"
TENSORBOARD_DIR = "tensorboard"
FIRST_ROUND = "tune"
FINISHED_FILE = "finished.txt"
STUDY_FILE = "optuna.db"


def default_name(space: str, dataset: str) -> str:
    """Unique and readable: space-dataset-timestamp."""
    stem = Path(dataset.rstrip("/")).stem if ("/" in dataset or dataset.endswith(".csv")) else dataset
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem) or "data"
    return f"{Path(space).stem}-{stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def create(results: Path, name: str) -> Path:
    """Make results/<name>; an existing experiment is never overwritten."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UserError(f"experiment name {name!r} may only hold letters, digits, '.', '_' and '-'")
    folder = results / name
    if folder.exists():
        raise UserError(f"experiment {name!r} already exists in {results}; choose another --name or remove {folder}")
    folder.mkdir(parents=True)
    return folder


def list_all(results: Path) -> list[Path]:
    """Experiments in `results`, oldest first."""
    if not results.is_dir():
        return []
    found = [p.parent for p in results.glob(f"*/{EXPERIMENT_FILE}")]
    return sorted(found, key=lambda p: read_json(p / EXPERIMENT_FILE).get("created", 0))


def resolve(results: Path, name: str | None) -> Path:
    """The named experiment, or the latest one."""
    if name:
        folder = results / name
        if not (folder / EXPERIMENT_FILE).is_file():
            known = ", ".join(p.name for p in list_all(results)) or "none"
            raise UserError(f"no experiment {name!r} in {results} (known: {known}); run `digitsearch tune` first")
        return folder
    every = list_all(results)
    if not every:
        raise UserError(f"no experiment in {results}; run `digitsearch tune --space cnn` first (or pass --results DIR)")
    return every[-1]


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def write_json(path: Path, data: dict) -> None:
    # write then rename, so an interrupted write never leaves half a file behind
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.replace(path)


def read_best(folder: Path) -> dict:
    path = folder / BEST_FILE
    if not path.is_file():
        raise UserError(
            f"experiment {folder.name!r} has no completed trial (no {BEST_FILE}); "
            f"look at {folder / LEADERBOARD_FILE} for errors, or run a new search"
        )
    return read_json(path)


def is_uri(storage: str) -> bool:
    """s3://..., gs://..., file://...: storage that pathlib cannot read."""
    return "://" in storage


def study_storage(folder: Path):
    """The searcher's Optuna study storage: optuna.db in the experiment folder."""
    import optuna

    return optuna.storages.RDBStorage(f"sqlite:///{folder / STUDY_FILE}")


def read_trial(folder: Path, trial_id: str) -> dict:
    """One trial as best.json describes the best: its leaderboard row, and its config as Tune
    recorded it (params.json: the table turns a conditional parameter's ints into floats)."""
    import pandas as pd

    table = pd.read_csv(folder / LEADERBOARD_FILE, dtype={"trial_id": str})
    rows = table[table["trial_id"] == trial_id]
    if rows.empty:
        raise UserError(f"experiment {folder.name!r} has no trial {trial_id!r}; "
                        f"its trials are listed in {folder / LEADERBOARD_FILE}")
    params = trial_dirs(folder).get(trial_id, Path("/nonexistent")) / "params.json"
    if not params.is_file():
        raise UserError(f"trial {trial_id!r}: its config ({params.name}) is not on this machine")
    row = {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in rows.iloc[0].items()}
    return {**row, "config": read_json(params), "experiment": folder.name}


def starting_point_trials(folder: Path) -> dict[str, int]:
    """trial_id -> k for the trials that evaluated the space's k-th starting point (the
    hand-made nets the search must beat), found by their configs (params.json)."""
    from digitsearch import spaces

    meta = read_json(folder / EXPERIMENT_FILE)
    space = spaces.load(meta.get("space_path") or meta["space"])
    if meta.get("overrides"):
        space = space.fixed(meta["overrides"])
    configs = {trial_id: read_json(path / "params.json") for trial_id, path in trial_dirs(folder).items()
               if (path / "params.json").is_file()}
    found = {}
    for k, point in enumerate(space.starting_points, start=1):
        for trial_id, config in configs.items():
            if trial_id not in found and all(config.get(name) == value for name, value in point.items()):
                found[trial_id] = k
                break
    return found


def tune_root(folder: Path, storage: str | None) -> str:
    """Where Tune's rounds live: the experiment folder, or <storage>/<name> (a folder every
    node reaches, or a URI such as s3://bucket/prefix)."""
    if not storage:
        return str(folder)
    if is_uri(storage):
        return f"{storage.rstrip('/')}/{folder.name}"
    return str(Path(storage).expanduser().resolve() / folder.name)


def round_path(meta: dict, round_: dict) -> str:
    return f"{meta['tune_root'].rstrip('/')}/{round_['dir']}"


def rounds(meta: dict) -> list[dict]:
    # experiments written before rounds existed have one, in the experiment folder
    return meta.get("rounds") or [{"dir": FIRST_ROUND, "trials": meta.get("trials", 0)}]


def load_rounds(meta: dict) -> list:
    """Every round's Tune results (ray.tune.Result), read back from storage, in round order."""
    from ray.tune import ExperimentAnalysis, ResultGrid

    results = []
    for round_ in rounds(meta):
        path = round_path(meta, round_)
        try:
            results.extend(ResultGrid(ExperimentAnalysis(path)))
        except (FileNotFoundError, ValueError):
            continue  # a round killed before Tune wrote its first state: nothing ran
    for result in results:
        if not result.config and not is_uri(str(result.path)):
            # a trial that failed before its first report: its config is only in params.json
            params = Path(result.path) / "params.json"
            result.metrics = {**(result.metrics or {}), "config": json.loads(params.read_text()) if params.is_file() else {}}
    return results


def trial_dirs(folder: Path) -> dict[str, Path]:
    """trial_id -> its Tune folder (params.json, progress.csv) on this machine, over every round."""
    meta = read_json(folder / EXPERIMENT_FILE)
    if is_uri(meta.get("tune_root", "")):
        return {}  # a URI: nothing to read locally
    root = Path(meta.get("tune_root") or folder)
    found = {}
    for round_ in rounds(meta):
        for trial in (root / round_["dir"]).glob("trial_*"):
            found[trial.name.removeprefix("trial_")] = trial
    return found
