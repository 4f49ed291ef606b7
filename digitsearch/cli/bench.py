"""`digitsearch bench`: trial efficiency, search overhead, scheduler value and start-up, measured."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from digitsearch.cli.app import app
from digitsearch.errors import UserError

QUICK = "A smaller version of every measurement, in a few minutes."
OUT = "Where the report goes: <out>/<host>-<date>.json and .md (a report of the same day is replaced)."
MNIST = ("The MNIST-10k IDX folder for the full run "
         "(default: ../shared/data/mnist-10k, or $DIGITSEARCH_SHARED_DATA/mnist-10k).")
SMOKE = "The smallest run that measures everything (the test suite's)."
PROFILE = "Then profile the start-up search with py-spy: <out>/<host>-<date>-startup-profile.md."
BASELINE = ("Instead: train the hand-written recipe net (no search) for this wall time, e.g. 30m, on --dataset, "
            "and test it: what `tune --time-limit` has to beat. Writes <out>/baseline-<dataset>-<time>.json.")
DATASET = "With --baseline or --fidelity: the data (a registered name, an IDX folder or a Kaggle CSV)."
FIDELITY = ("Instead: run one `tune --time-limit` of this length of the cnn space (its starting points left out) on "
            "--dataset per ASHA setting in --settings, and compare the best config each found. Writes "
            "<out>/fidelity-<dataset>-<time>.json and .md.")
ANYTIME = ("Instead: for each of these wall times (e.g. 10m or 10m,30m) and --seeds seeds, run `tune --time-limit T "
           "--retrain --ensemble 3 --tta` (per --space), the recipe net for T and a plain Optuna loop for T on "
           "--dataset, one after another, and compare their test accuracy. Writes <out>/anytime-<dataset>-<date>.md "
           "and .json.")
SEEDS = "With --anytime: seeds per budget and arm (0, 1, ...)."
SPACES = "With --anytime: the product's --space, once per arm (repeat the option for several)."
SEED = "With --baseline: seeds the data split and the net."
SET = "With --baseline: change a setting of the recipe net, NAME=VALUE (repeatable), e.g. --set augment=light."
SETTINGS = "With --fidelity: the ASHA settings, GRACExREDUCTION pairs (grace epochs x reduction factor)."
GPU = ("Instead: the five-minute GPU check (device placement, host syncs, packed and default searches, an ensemble "
       "retrain against the CPU, a time-limited retrain, the adder): <out>/gpu-check-<host>-<date>.md and .json. "
       "Without a CUDA GPU: one line, exit 2.")


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help=QUICK)] = False,
    out: Annotated[Path, typer.Option(help=OUT)] = Path("results/bench"),
    mnist: Annotated[Optional[str], typer.Option(help=MNIST)] = None,
    smoke: Annotated[bool, typer.Option(hidden=True, help=SMOKE)] = False,
    profile: Annotated[bool, typer.Option("--profile", help=PROFILE)] = False,
    baseline: Annotated[Optional[str], typer.Option(help=BASELINE)] = None,
    dataset: Annotated[str, typer.Option(help=DATASET)] = "digits",
    fidelity: Annotated[Optional[str], typer.Option(help=FIDELITY)] = None,
    settings: Annotated[Optional[str], typer.Option(help=SETTINGS + " [default: 1x4,2x3,3x2]")] = None,
    anytime: Annotated[Optional[str], typer.Option(help=ANYTIME)] = None,
    seeds: Annotated[int, typer.Option(min=1, help=SEEDS)] = 3,
    space: Annotated[Optional[list[str]], typer.Option(help=SPACES + " [default: cnn]")] = None,
    seed: Annotated[int, typer.Option(help=SEED)] = 0,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help=SET)] = None,
    gpu: Annotated[bool, typer.Option("--gpu", help=GPU)] = False,
):
    """Measure trial efficiency vs bare PyTorch, search overhead, make demo vs a bare Optuna loop, ASHA+TPE vs
    FIFO+random, and start-up; or (--anytime) the one command against the recipe net and a plain Optuna loop at
    equal wall time."""
    from digitsearch.bench import suite

    if sum(x is not None for x in (baseline, fidelity, anytime)) + gpu > 1:
        raise UserError("--baseline, --fidelity, --anytime and --gpu are separate runs: ask for one at a time")
    if gpu:
        from digitsearch.bench import gpu_check

        typer.echo(f"gpu-check: table in {gpu_check.run(out, echo=typer.echo)}")
        return
    if set_ and baseline is None:
        raise UserError("--set goes with --baseline DURATION")
    if space is not None and anytime is None:
        raise UserError("--space goes with --anytime DURATIONS")
    if anytime is not None:
        _anytime(anytime, dataset, seeds, space or ["cnn"], out)
        return
    if settings is not None and fidelity is None:
        raise UserError("--settings goes with --fidelity DURATION")
    if baseline is not None:
        from digitsearch.bench import baseline as fixed_recipe
        from digitsearch.core.timebudget import parse_duration
        from digitsearch.search.request import parse_overrides

        fixed_recipe.run(dataset, parse_duration(baseline), out, seed=seed, echo=typer.echo,
                         overrides=parse_overrides(set_ or []))
        return
    if fidelity is not None:
        from digitsearch.bench import fidelity as asha_fidelity
        from digitsearch.core.timebudget import parse_duration

        chosen = asha_fidelity.parse_settings(settings or asha_fidelity.DEFAULT_SETTINGS)  # checked before any data
        asha_fidelity.run(dataset, parse_duration(fidelity), out, chosen, echo=typer.echo)
        return

    shared = mnist or str(Path(os.environ.get("DIGITSEARCH_SHARED_DATA", "../shared/data")) / "mnist-10k")
    if not (quick or smoke) and not Path(shared).is_dir():
        raise UserError(f"the full bench trains on MNIST-10k, not found at {shared}; pass --mnist DIR or use --quick")
    suite.run(quick or smoke, out, str(Path(shared).resolve()) if Path(shared).is_dir() else None, echo=typer.echo,
              smoke=smoke, profile=profile)


def _anytime(budgets: str, dataset: str, seeds: int, spaces: list[str], out: Path) -> None:
    """Checked before the first of many long runs: the budgets, the spaces, the data."""
    from digitsearch import data
    from digitsearch import spaces as builtin_spaces
    from digitsearch.bench import anytime

    parsed = anytime.parse_budgets(budgets)
    for name in spaces:
        builtin_spaces.load(name)
    data.load(dataset)  # a dataset that cannot load fails here, in one line, not in every arm's log
    written = anytime.run(dataset, parsed, seeds, spaces, out, echo=typer.echo)
    typer.echo(f"anytime: table in {written}")
