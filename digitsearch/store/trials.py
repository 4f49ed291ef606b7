"""Reading an experiment's trials back from this machine: their Tune folders, one trial as
best.json describes the best, and which trials were the space's hand-made starting points."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from digitsearch import spaces
from digitsearch.errors import UserError
from digitsearch.store.experiments import read_json, read_meta
from digitsearch.store.layout import LEADERBOARD_FILE, PARAMS_FILE, is_uri, rounds


def trial_dirs(folder: Path) -> dict[str, Path]:
    """trial_id -> its Tune folder (params.json, progress.csv) on this machine, over every round."""
    meta = read_meta(folder)
    if is_uri(meta.get("tune_root", "")):
        return {}  # a URI: nothing to read locally
    root = Path(meta.get("tune_root") or folder)
    found = {}
    for round_ in rounds(meta):
        for trial in (root / round_["dir"]).glob("trial_*"):
            found[trial.name.removeprefix("trial_")] = trial
    return found


def configs(folder: Path, trial_ids=None) -> dict[str, dict]:
    """trial_id -> its config as Tune recorded it ({} where params.json is not on this machine)."""
    dirs = trial_dirs(folder)
    wanted = dirs if trial_ids is None else trial_ids
    found = {}
    for trial_id in wanted:
        params = dirs.get(trial_id, folder / "missing") / PARAMS_FILE
        found[trial_id] = read_json(params) if params.is_file() else {}
    return found


def read_trial(folder: Path, trial_id: str) -> dict:
    """One trial as best.json describes the best: its leaderboard row, and its config as Tune
    recorded it (params.json: the table turns a conditional parameter's ints into floats)."""
    import pandas as pd

    from digitsearch.store import leaderboard  # pandas: only when a trial is read

    table = leaderboard.read(folder)
    rows = table[table["trial_id"] == trial_id]
    if rows.empty:
        raise UserError(f"experiment {folder.name!r} has no trial {trial_id!r}; "
                        f"its trials are listed in {folder / LEADERBOARD_FILE}")
    params = trial_dirs(folder).get(trial_id, Path("/nonexistent")) / PARAMS_FILE
    if not params.is_file():
        raise UserError(f"trial {trial_id!r}: its config ({params.name}) is not on this machine")
    row = {k: (None if pd.isna(v) else v.item() if hasattr(v, "item") else v) for k, v in rows.iloc[0].items()}
    return {**row, "config": read_json(params), "experiment": folder.name}


def space_source(meta: dict) -> str:
    """The experiment's space file: absolute in experiment.json, so any working directory finds it."""
    return meta["space_path"]


def experiment_space(meta: dict) -> spaces.SearchSpace:
    """The space the experiment searched: its file (absolute in experiment.json) with the
    command line's --set overrides applied again, and the starting points it evaluated first
    (the warm start's and the portfolio's before the file's own)."""
    space = spaces.load(space_source(meta))
    space = space.fixed(meta["overrides"]) if meta.get("overrides") else space
    if meta.get("starting_points") is not None:
        space = dataclasses.replace(space, starting_points=tuple(dict(p) for p in meta["starting_points"]))
    return space


def space_changes(meta: dict) -> str:
    """What changed in the experiment's space file since the search (its fingerprint in
    experiment.json), in words; "" when nothing did, or for older experiments that recorded none."""
    recorded = meta.get("space_fingerprint")
    if not recorded or experiment_space(meta).fingerprint() == recorded:
        return ""
    return (f"its space file {space_source(meta)} changed since the search (a parameter, a range, a starting "
            f"point or a limit)")


def starting_point_trials(folder: Path) -> dict[str, int]:
    """trial_id -> k for the trials that evaluated the space's k-th starting point (the
    hand-made nets the search must beat), found by their configs (params.json)."""
    from digitsearch.store.leaderboard import match_starting_points  # pandas: only when asked

    space = experiment_space(read_meta(folder))
    recorded = {trial_id: config for trial_id, config in configs(folder).items() if config}
    return match_starting_points(recorded, space.starting_points)
