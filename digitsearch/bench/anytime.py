"""`digitsearch bench --anytime 10m,30m --dataset D --seeds 3`: the one command against its peers.

For each time budget and seed, side by side in one run, each as a whole command (Python's
start, the imports and the data loading count, as they do for the user):
  - `digitsearch tune --space S --time-limit B --retrain --ensemble 3 --tta` (one arm per --space);
  - the recipe net trained for the same wall time (`digitsearch bench --baseline B`);
  - a plain Optuna + pruning script over a small CNN space (bench.peer_optuna).
Seed s is each arm's --seed: the same carved split and the same initial draws for all three.
The table (each run's test accuracy and wall time, each arm's median) goes to
<out>/anytime-<dataset>-<date>.md and .json; each run's log beside it, in anytime-logs/.
A run that table already holds with a result (same dataset, arm, budget and seed) is kept, not
run again: `--seeds 3` after a `--seeds 2` the same day runs seed 2 alone, and a bench killed
part-way goes on where it stopped.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from digitsearch.core.timebudget import parse_duration, shown
from digitsearch.errors import UserError

PRODUCT_OPTIONS = ("--retrain", "--ensemble", "3", "--tta")
RECIPE, PEER = "recipe net", "plain Optuna loop"


@dataclass(frozen=True)
class Arm:
    """One competitor: its name in the table and how to run it for a budget and seed."""

    name: str
    space: str | None = None  # the product's --space; None for the peers

    def command(self, dataset: str, seconds: float, seed: int, work: Path) -> list[str]:
        budget = f"{int(seconds)}s"
        if self.name == RECIPE:
            return [*_cli(), "bench", "--baseline", budget, "--dataset", dataset, "--seed", str(seed),
                    "--out", str(work)]
        if self.name == PEER:
            return [sys.executable, "-m", "digitsearch.bench.peer_optuna", dataset, str(seconds), str(seed),
                    str(work / "peer.json")]
        return [*_cli(), "tune", "--space", self.space, "--dataset", dataset, "--time-limit", budget,
                *PRODUCT_OPTIONS, "--seed", str(seed), "--results", str(work), "--name", "run"]

    def accuracy(self, work: Path) -> float:
        """The test accuracy the arm's own output file says."""
        if self.name == RECIPE:
            found = sorted(work.glob("baseline-*.json"))
        elif self.name == PEER:
            found = [work / "peer.json"]
        else:
            found = [work / "run" / "final" / "metrics.json"]
        if not found or not found[0].is_file():
            raise RuntimeError(f"{self.name}: no result file in {work}")
        return float(json.loads(found[0].read_text())["test_accuracy"])


def _cli() -> list[str]:
    return [sys.executable, "-m", "digitsearch.cli"]


def arms(product_spaces: list[str]) -> list[Arm]:
    return [*(Arm(f"digitsearch --space {space}", space) for space in product_spaces), Arm(RECIPE), Arm(PEER)]


@dataclass
class Run:
    arm: str
    budget_s: float
    seed: int
    test_accuracy: float | None
    wall_s: float
    error: str = ""


def parse_budgets(text: str) -> list[float]:
    budgets = [parse_duration(part) for part in text.split(",") if part.strip()]
    if not budgets:
        raise UserError(f"--anytime {text!r}: give one or more durations, e.g. 10m or 10m,30m")
    return budgets


def run(dataset: str, budgets: list[float], seeds: int, spaces: list[str], out: Path,
        echo: Callable[[str], None] = print) -> Path:
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    stem = f"anytime-{Path(dataset).name}-{time.strftime('%Y-%m-%d')}"
    logs = out / "anytime-logs" / stem
    logs.mkdir(parents=True, exist_ok=True)
    kept = measured(out / stem, dataset)
    planned = {(arm.name, budget, seed) for budget in budgets for seed in range(seeds) for arm in arms(spaces)}
    runs = [run for key, run in kept.items() if key not in planned]  # other arms' runs stay in the table
    for budget in budgets:
        for seed in range(seeds):
            for arm in arms(spaces):  # interleaved: a slow hour of the machine hits every arm alike
                if (found := kept.get((arm.name, budget, seed))) is not None:
                    echo(f"anytime: {arm.name}, {shown(budget)}, seed {seed}: kept from {stem}.json "
                         f"({found.test_accuracy:.4f})")
                    runs.append(found)
                    continue
                runs.append(_one(arm, dataset, budget, seed, logs, echo))
                _write(runs, dataset, out / stem)
    return _write(runs, dataset, out / stem)


def measured(stem: Path, dataset: str) -> dict[tuple[str, float, int], Run]:
    """(arm, budget, seed) -> the run the table at `stem` already holds with a result, for this dataset."""
    path = stem.with_suffix(".json")
    if not path.is_file():
        return {}
    try:
        table = json.loads(path.read_text())
        runs = [Run(**r) for r in table["runs"]] if table.get("dataset") == dataset else []
    except (ValueError, KeyError, TypeError):
        return {}  # not a table this bench wrote: rewritten from the runs of this call
    return {(r.arm, r.budget_s, r.seed): r for r in runs if r.test_accuracy is not None}


def _one(arm: Arm, dataset: str, budget: float, seed: int, logs: Path, echo) -> Run:
    work = Path(tempfile.mkdtemp(prefix="digitsearch-anytime-"))
    log = logs / f"{arm.name.replace(' ', '_').replace('-', '')}-{shown(budget)}-seed{seed}.log"
    echo(f"anytime: {arm.name}, {shown(budget)}, seed {seed} (log {log})")
    began = time.perf_counter()
    try:
        with log.open("w") as sink:
            done = subprocess.run(arm.command(dataset, budget, seed, work), stdout=sink, stderr=subprocess.STDOUT,
                                  check=False)
        wall = round(time.perf_counter() - began, 1)
        if done.returncode != 0:
            return _said(Run(arm.name, budget, seed, None, wall, f"exit {done.returncode}, see {log}"), echo)
        return _said(Run(arm.name, budget, seed, arm.accuracy(work), wall), echo)
    except RuntimeError as err:
        return _said(Run(arm.name, budget, seed, None, round(time.perf_counter() - began, 1), str(err)), echo)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _said(run: Run, echo) -> Run:
    shown_acc = f"{run.test_accuracy:.4f}" if run.test_accuracy is not None else f"failed ({run.error})"
    echo(f"anytime:   -> test accuracy {shown_acc}, {run.wall_s} s")
    return run


def summary(runs: list[Run]) -> list[dict]:
    """Per budget and arm: each seed's accuracy, the median, the median wall time."""
    rows = []
    for budget in dict.fromkeys(r.budget_s for r in runs):
        for arm in dict.fromkeys(r.arm for r in runs):
            mine = [r for r in runs if r.budget_s == budget and r.arm == arm]
            scored = [r.test_accuracy for r in mine if r.test_accuracy is not None]
            rows.append({"budget_s": budget, "arm": arm, "accuracies": [r.test_accuracy for r in mine],
                         "median": statistics.median(scored) if scored else None,
                         "median_wall_s": statistics.median(r.wall_s for r in mine)})
    return rows


def verdicts(rows: list[dict]) -> list[str]:
    """Per budget and product arm: is its median at least the better peer's median?"""
    said = []
    for budget in dict.fromkeys(r["budget_s"] for r in rows):
        here = [r for r in rows if r["budget_s"] == budget and r["median"] is not None]
        peers = [r for r in here if r["arm"] in (RECIPE, PEER)]
        if not peers:
            continue
        best_peer = max(peers, key=lambda r: r["median"])
        for product in (r for r in here if r["arm"] not in (RECIPE, PEER)):
            gap = round((product["median"] - best_peer["median"]) * 100, 2) + 0.0  # a tie is a tie, not -0.00
            word = "at least" if gap >= 0 else "below"
            said.append(f"{shown(budget)}: {product['arm']} median {product['median'] * 100:.2f} % is {word} the "
                        f"better peer's ({best_peer['arm']}, {best_peer['median'] * 100:.2f} %): {gap:+.2f} points")
    return said


def _write(runs: list[Run], dataset: str, stem: Path) -> Path:
    rows = summary(runs)
    stem.with_suffix(".json").write_text(json.dumps(
        {"dataset": dataset, "runs": [asdict(r) for r in runs], "summary": rows, "verdicts": verdicts(rows)},
        indent=2) + "\n")
    lines = [f"# bench --anytime on {dataset}", "",
             f"{len(runs)} runs, one at a time on this machine; seeds are each arm's --seed (split and weights).", "",
             "| budget | arm | test accuracy per seed | median | median wall |", "|---|---|---|---|---|"]
    for row in rows:
        each = ", ".join("failed" if a is None else f"{a * 100:.2f}" for a in row["accuracies"])
        median = "-" if row["median"] is None else f"**{row['median'] * 100:.2f} %**"
        lines.append(f"| {shown(row['budget_s'])} | {row['arm']} | {each} | {median} | {row['median_wall_s']:.0f} s |")
    lines += ["", *(f"- {v}" for v in verdicts(rows))]
    path = stem.with_suffix(".md")
    path.write_text("\n".join(lines) + "\n")
    return path
