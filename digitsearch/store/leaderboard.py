"""Turn Ray Tune's results into the leaderboard (one row per trial) and best.json."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from digitsearch.core.config import gather_indexed
from digitsearch.errors import UserError
from digitsearch.store import pareto
from digitsearch.store.layout import LEADERBOARD_FILE
from digitsearch.store.pareto import TRAINED_STATUSES  # noqa: F401  (defined beside the front that uses it)

# latency_ms / images_per_s / model_kb: core.cost's figures, measured once per trial on cost_threads
# threads of the cost_cpu named; pareto: on the front of val_acc against the search's costs (pareto.py)
COST_COLUMNS = ["latency_ms", "images_per_s", "model_kb"]
# val_near_best: the mean val_acc of the NEAR_BEST epochs around the best one (final/ranking.py orders by it)
SUMMARY_COLUMNS = ["trial_id", "family", "status", "origin", "val_acc", "val_near_best", "best_epoch", "epochs",
                   "n_params", "mflops", *COST_COLUMNS, "pareto", "seconds", "note", "node", "cost_threads", "cost_cpu",
                   "checkpoint"]
# what the terminal's top table shows beside each config
TOP_COLUMNS = ["trial_id", "family", "status", "origin", "val_acc", "best_epoch", "epochs", "n_params", "latency_ms",
               "pareto", "seconds"]
NEAR_BEST = 5  # epochs in val_near_best's window
SAMPLED = "sampled"  # the origin of a trial the searcher sampled; a starting point's is "start k"
STEP = "step from"  # the origin of a sampled trial that is a local step from another (search/mutation.py)


def _status(result, epochs: int, max_epochs: int, note: str, finished: bool) -> str:
    if result.error is not None:
        return "error"
    if not finished:
        return "interrupted"
    if note:
        return note.split(":")[0]  # infeasible / over budget / diverged
    return "completed" if epochs >= max_epochs else "stopped early"


def trial_row(result, max_epochs: int, finished: bool = True, family: str = "") -> dict:
    """One trial's row: how it ended, its best val_acc and the epoch it came at, its config.

    `family`: the space's; a space across families puts each trial's own in its config.
    """
    last = result.metrics or {}
    row = {"trial_id": trial_row_id(result), "family": (result.config or {}).get("family", family),
           "val_acc": math.nan, "val_near_best": math.nan, "best_epoch": 0, "epochs": 0,
           "n_params": last.get("params", 0), "mflops": last.get("mflops", 0.0),
           **{column: last.get(column, math.nan) for column in COST_COLUMNS},
           "cost_threads": last.get("cost_threads", math.nan), "cost_cpu": last.get("cost_cpu", ""),
           "seconds": last.get("time_total_s", 0.0)}
    history = result.metrics_dataframe
    if history is not None and len(history) and "val_acc" in history:
        best = history["val_acc"].idxmax()
        row.update(val_acc=float(history["val_acc"].max()), best_epoch=int(history.loc[best].get("epoch", 0)),
                   epochs=int(history["epoch"].max()) if "epoch" in history else 0,
                   val_near_best=near_best(list(history["val_acc"])))
    note = str(last.get("note") or "")  # why the trainable stopped: infeasible, over budget, diverged
    row["status"] = _status(result, row["epochs"], max_epochs, note, finished)
    row["note"] = str(result.error).strip().splitlines()[-1][:200] if result.error is not None else note
    row["node"] = str(last.get("node") or "")  # the Ray node that trained it last
    row["checkpoint"] = _where(result.checkpoint) if result.checkpoint else ""
    return {**row, **(result.config or {})}


def near_best(curve: Sequence[float], window: int = NEAR_BEST) -> float:
    """The mean of `window` consecutive values of `curve` (a trial's val_acc per reported epoch)
    from the one before its best on (the best and what followed it), shifted back to fit inside
    the curve (all of it when shorter): the last `window` where the curve peaks at its end.

    A best epoch is the luckiest of a noisy curve's draws; a retrain stops near that epoch, not
    at that draw, so the window is what it can expect (results/README.md, "The pick by the epochs
    around the best")."""
    values = [float(v) for v in curve if v == v]
    if not values:
        return math.nan
    best = max(range(len(values)), key=values.__getitem__)
    start = min(max(best - 1, 0), max(len(values) - window, 0))
    part = values[start:start + window]
    return sum(part) / len(part)


def build(result_grid, max_epochs: int, finished: set[str] | None = None, family: str = "",
          starting_points: Sequence[Mapping] | None = None,
          steps: Mapping[str, tuple[str, Sequence[str]]] | None = None,
          objective: Sequence[str] | None = None) -> pd.DataFrame:
    """`finished`: ids of trials that ended on their own; the others were cut off by an interrupt.
    `starting_points`: the space's (SearchSpace.starting_points), which give each row its
    origin ("start k" or "sampled"); without them the origin column is empty. `steps`: trial
    id -> (parent trial id, changed names) of the searcher's local steps, whose origin says
    "step from <the parent's origin or id> (<changed>)". `objective`: the search's (--objective), whose
    costs the pareto column's front is over (pareto.costs_of: latency for an accuracy-only search)."""
    rows = [trial_row(r, max_epochs, finished is None or trial_row_id(r) in finished, family) for r in result_grid]
    known = origins(configs_by_trial(result_grid), starting_points) if starting_points is not None else {}
    known.update(step_origins(steps or {}, known))
    for row in rows:
        row["origin"] = known.get(row["trial_id"], "")
    table = pd.DataFrame(rows)
    if table.empty:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    table["pareto"] = pareto.front(table, pareto.costs_of(objective))
    config_columns = [c for c in table.columns if c not in SUMMARY_COLUMNS]
    table = table[SUMMARY_COLUMNS + config_columns]
    # among equally accurate trials the smaller, then the quicker one comes first (and is "best"):
    # on the addition task several configs reach val_acc 1.0, and one is 6x the size of another
    return table.sort_values(["val_acc", "n_params", "seconds"], ascending=[False, True, True],
                             na_position="last", kind="stable").reset_index(drop=True)


def origins(configs: Mapping[str, dict], starting_points: Sequence[Mapping]) -> dict[str, str]:
    """trial_id -> "start k" for the trial that evaluated the space's k-th starting point (found
    by its config, in `configs`' order: a trial's order), "sampled" for every other trial."""
    starts = match_starting_points(configs, starting_points)
    return {trial_id: f"start {starts[trial_id]}" if trial_id in starts else SAMPLED for trial_id in configs}


def step_origins(steps: Mapping[str, tuple[str, Sequence[str]]], known: Mapping[str, str]) -> dict[str, str]:
    """trial_id -> "step from start 1 (lr, dropout)" (or "step from <parent id> (...)" when the
    parent was sampled itself) for each local step the searcher took; a step is sampled too."""
    def parent(trial_id: str) -> str:
        return known[trial_id] if start_number(known.get(trial_id)) is not None else trial_id
    return {trial_id: f"{STEP} {parent(of)} ({', '.join(changed)})" for trial_id, (of, changed) in steps.items()
            if trial_id in known}


def match_starting_points(configs: Mapping[str, dict], points: Sequence[Mapping]) -> dict[str, int]:
    """trial_id -> k for the first trial (in `configs`' order) whose config holds every value of
    the k-th point of `points` (a space's starting points: partial configs). No file is read."""
    found = {}
    for k, point in enumerate(points, start=1):
        for trial_id, config in configs.items():
            if trial_id not in found and all(config.get(name) == value for name, value in point.items()):
                found[trial_id] = k
                break
    return found


def start_number(origin) -> int | None:
    """"start 2" -> 2; None for a sampled trial or an unknown origin."""
    text = origin if isinstance(origin, str) else ""  # NaN: an empty cell of leaderboard.csv
    head, _, number = text.partition(" ")
    return int(number) if head == "start" and number.isdigit() else None


def best_trial(table: pd.DataFrame, configs: dict[str, dict]) -> dict | None:
    """The best usable trial (finished or stopped early, val_acc above zero), or None.

    The config comes from Tune's own record (`configs` by trial id), not the table,
    where a conditional parameter's ints turn into floats beside NaN.
    """
    # an interrupted trial's best epoch is real and checkpointed, so it may still be the best
    usable = table[pareto.usable(table)]
    if usable.empty:
        return None
    row = usable.iloc[0]
    summary = {c: _plain(row[c]) for c in SUMMARY_COLUMNS}
    return {**summary, "config": configs[row["trial_id"]]}


def configs_by_trial(result_grid) -> dict[str, dict]:
    return {trial_row_id(r): dict(r.config or {}) for r in result_grid}


def trial_row_id(result) -> str:
    # a trial that failed before its first report has no metrics: its folder, trial_<id>, names it
    return (result.metrics or {}).get("trial_id") or result.path.rstrip("/").split("/")[-1].removeprefix("trial_")


def _where(checkpoint) -> str:
    """A checkpoint's folder, as a URI when it is not on this machine's filesystem (s3://...)."""
    kind = getattr(checkpoint.filesystem, "type_name", "local")
    return checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"


def _plain(value):
    """numpy scalars -> Python, so best.json round-trips exactly; a missing figure (NaN) -> null."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value


def top_table(table: pd.DataFrame, configs: dict[str, dict], n: int = 5) -> str:
    """Top n rows: the summary columns and each trial's config in one short column."""
    shown = table.head(n)[TOP_COLUMNS].copy()
    shown["config"] = [short_config(configs.get(t, {})) for t in shown["trial_id"]]
    return shown.to_string(index=False, float_format=lambda v: f"{v:.4g}", max_colwidth=90)


def short_config(config: dict, width: int = 90) -> str:
    """{"cnn.filters_1": 32, "cnn.filters_2": 64, "lr": 0.00123} -> "filters=32/64 lr=0.00123"."""
    flat = {key.split(".", 1)[-1]: value for key, value in config.items()}
    parts = []
    for key, value in gather_indexed(flat).items():
        if isinstance(value, list):
            value = "/".join(str(v) for v in value)
        elif isinstance(value, float):
            value = f"{value:.3g}"
        parts.append(f"{key}={value}")
    text = " ".join(parts)
    return text if len(text) <= width else text[: width - 1] + "…"


def read(folder: Path) -> pd.DataFrame:
    """leaderboard.csv of an experiment (trial ids as text); a search that has not written one
    yet (still running, or its driver killed) is a UserError naming the --resume that finishes it."""
    path = folder / LEADERBOARD_FILE
    if not path.is_file():
        raise UserError(f"experiment {folder.name!r} has no {LEADERBOARD_FILE} yet: its search is still running, "
                        f"or its driver was stopped (`digitsearch tune --name {folder.name} --resume` finishes it)")
    return pd.read_csv(path, dtype={"trial_id": str})
