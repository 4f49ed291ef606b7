"""`digitsearch bench`: trial efficiency, search overhead, scheduler value and start-up, measured."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from digitsearch.cli.app import app
from digitsearch.errors import UserError

QUICK = "A smaller version of all four measurements, under 3 minutes."
OUT = "Where the report goes: <out>/<host>-<date>.json and .md (a report of the same day is replaced)."
MNIST = ("The MNIST-10k IDX folder for the full run "
         "(default: ../shared/data/mnist-10k, or $DIGITSEARCH_SHARED_DATA/mnist-10k).")
SMOKE = "The smallest run that measures all four (the test suite's)."
PROFILE = "Then profile the start-up search with py-spy: <out>/<host>-<date>-startup-profile.md."
BASELINE = ("Instead: train the hand-written recipe net (no search) for this wall time, e.g. 30m, on --dataset, "
            "and test it: what `tune --time-limit` has to beat. Writes <out>/baseline-<dataset>-<time>.json.")
DATASET = "With --baseline: the data (a registered name, an IDX folder or a Kaggle CSV)."


@app.command()
def bench(
    quick: Annotated[bool, typer.Option(help=QUICK)] = False,
    out: Annotated[Path, typer.Option(help=OUT)] = Path("results/bench"),
    mnist: Annotated[Optional[str], typer.Option(help=MNIST)] = None,
    smoke: Annotated[bool, typer.Option(hidden=True, help=SMOKE)] = False,
    profile: Annotated[bool, typer.Option("--profile", help=PROFILE)] = False,
    baseline: Annotated[Optional[str], typer.Option(help=BASELINE)] = None,
    dataset: Annotated[str, typer.Option(help=DATASET)] = "digits",
):
    """Measure trial efficiency vs bare PyTorch, search overhead, ASHA+TPE vs FIFO+random, and start-up."""
    from digitsearch.bench import suite

    if baseline is not None:
        from digitsearch.bench import baseline as fixed_recipe
        from digitsearch.core.timebudget import parse_duration

        fixed_recipe.run(dataset, parse_duration(baseline), out, echo=typer.echo)
        return

    shared = mnist or str(Path(os.environ.get("DIGITSEARCH_SHARED_DATA", "../shared/data")) / "mnist-10k")
    if not (quick or smoke) and not Path(shared).is_dir():
        raise UserError(f"the full bench trains on MNIST-10k, not found at {shared}; pass --mnist DIR or use --quick")
    suite.run(quick or smoke, out, str(Path(shared).resolve()) if Path(shared).is_dir() else None, echo=typer.echo,
              smoke=smoke, profile=profile)
