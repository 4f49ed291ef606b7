"""`digitsearch bench --fidelity 10m --dataset D`: which ASHA settings find the best sampled config
in a given time.

Each setting (grace epochs x reduction factor) runs one real `digitsearch tune --time-limit` of the
cnn space on D, as a user runs it, seeded alike. The space's hand-made starting points are left
out: they are exempt from ASHA's stops (search/schedulers.py), so they would take the same share
of every run and measure nothing about the fidelity; what is compared is the best config the
sampler and ASHA found on their own in the same wall time, and how much training went into the
trials ASHA let through. One seed per setting: on MNIST-10k's 800 validation images one image is
0.125 points, so differences of a few images are noise (the report says so beside its table).
"""
from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import yaml

from digitsearch.bench.measure import tune_process
from digitsearch.core.timebudget import shown
from digitsearch.errors import UserError
from digitsearch.spaces.folder import BUILTIN_DIR

SPACE = "cnn"
DEFAULT_SETTINGS = "1x4,2x3,3x2"  # today's default (grace 1, eta 4), then two that give trials longer before a cut


@dataclass(frozen=True)
class Setting:
    grace: int
    reduction: int

    @property
    def name(self) -> str:
        return f"g{self.grace}r{self.reduction}"


def parse_settings(text: str) -> list[Setting]:
    """'1x4,2x3' -> [Setting(1, 4), Setting(2, 3)]; anything else is a one-line UserError."""
    settings = []
    for part in (p.strip() for p in str(text).split(",")):
        found = re.fullmatch(r"(\d+)x(\d+)", part)
        if not found or int(found[1]) < 1 or int(found[2]) < 2:
            raise UserError(f"--settings {text!r}: write GRACExREDUCTION pairs, grace >= 1 and reduction >= 2, "
                            f"e.g. {DEFAULT_SETTINGS}")
        settings.append(Setting(int(found[1]), int(found[2])))
    if len({s for s in settings}) != len(settings):
        raise UserError(f"--settings {text!r} names a setting twice")
    return settings


def space_without_starting_points(folder: Path) -> Path:
    """The cnn space as shipped, less its `start:` list (the training block is found by name)."""
    loaded = yaml.safe_load((BUILTIN_DIR / f"{SPACE}.yaml").read_text())
    loaded.pop("start", None)
    loaded["description"] = f"the built-in {SPACE} space without its starting points (bench --fidelity)"
    path = folder / f"{SPACE}-sampled-only.yaml"
    path.write_text(yaml.safe_dump(loaded, sort_keys=False))
    return path


def summarize(table, max_epochs: int) -> dict:
    """What one run's leaderboard says about its fidelity: the best val_acc the search found, how
    many trials it started and trained, and how they ended."""
    from digitsearch.store.pareto import usable

    trained = table[usable(table)]
    best = trained.sort_values("val_acc", ascending=False).head(1)
    return {
        "trials": int(len(table)),
        "trained": int(len(trained)),
        "full_length": int((trained["epochs"] >= max_epochs).sum()),
        "stopped_by_asha": int((table["status"] == "stopped early").sum()),
        "epochs_trained": int(trained["epochs"].sum()),
        "best_val_acc": round(float(best["val_acc"].iloc[0]), 4) if len(best) else None,
        "best_trial": str(best["trial_id"].iloc[0]) if len(best) else None,
        "best_epochs": int(best["epochs"].iloc[0]) if len(best) else None,
        "best_params": int(best["n_params"].iloc[0]) if len(best) else None,
    }


def run(dataset: str, seconds: float, out: Path, settings: Sequence[Setting], max_epochs: int = 15,
        echo: Callable[[str], None] = print) -> dict:
    import pandas as pd

    from digitsearch import data

    data.load(dataset, seed=0)  # a bad dataset: its one line now, not a failed search later
    began = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="digitsearch-fidelity-") as scratch:
        work = Path(scratch)
        space = space_without_starting_points(work)
        for number, setting in enumerate(settings, start=1):
            echo(f"fidelity: {number}/{len(settings)}: grace {setting.grace}, reduction {setting.reduction}, "
                 f"{shown(seconds)} on {dataset}")
            folder, wall = tune_process(work, setting.name, echo, trial_lines=True, space=str(space), dataset=dataset,
                                        time_limit=shown(seconds), max_epochs=max_epochs,
                                        grace_epochs=setting.grace, reduction_factor=setting.reduction)
            row = {"grace": setting.grace, "reduction": setting.reduction, "search_s": round(wall, 1),
                   **summarize(pd.read_csv(folder / "leaderboard.csv"), max_epochs)}
            rows.append(row)
            echo(f"fidelity: {_line(row)}")
    result = {"dataset": dataset, "time_limit_s": seconds, "max_epochs": max_epochs, "space": f"{SPACE} (sampled only)",
              "runs": rows, "wall_s": round(time.perf_counter() - began, 1), "date": time.strftime("%Y-%m-%d %H:%M")}
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"fidelity-{Path(dataset).name}-{shown(seconds)}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    echo(f"fidelity: wrote {stem}.json and .md")
    return result


def _line(row: dict) -> str:
    found = row["best_val_acc"] is not None
    best = f"best val_acc {row['best_val_acc']:.4f} ({row['best_epochs']} epochs)" if found else "none trained"
    return (f"grace {row['grace']} x {row['reduction']}: {best}; {row['trials']} trials, {row['trained']} trained, "
            f"{row['full_length']} to the last epoch, {row['stopped_by_asha']} stopped by ASHA, "
            f"{row['epochs_trained']} epochs in all")


def markdown(result: dict) -> str:
    head = ("| grace x reduction | best val_acc | its epochs | its params | trials | trained | to the last epoch "
            "| stopped by ASHA | epochs trained |\n|---|---|---|---|---|---|---|---|---|\n")
    body = "".join(
        f"| {r['grace']} x {r['reduction']} | {r['best_val_acc'] if r['best_val_acc'] is not None else '-'} "
        f"| {r['best_epochs'] or '-'} | {r['best_params'] or '-'} | {r['trials']} | {r['trained']} "
        f"| {r['full_length']} | {r['stopped_by_asha']} | {r['epochs_trained']} |\n" for r in result["runs"])
    return (f"# ASHA fidelity on {result['dataset']}, {shown(result['time_limit_s'])} a setting ({result['date']})\n\n"
            f"`digitsearch tune --time-limit {shown(result['time_limit_s'])}` of the {result['space']} space, "
            f"up to {result['max_epochs']} epochs a trial, one run (seed 0) a setting.\n\n{head}{body}\n"
            "One seed a setting: a difference of a few validation images is noise.\n")
