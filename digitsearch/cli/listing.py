"""`digitsearch spaces`, `datasets`, `models`: what there is to search, on and with.
Listing spaces and datasets imports neither torch nor pandas; `models` builds the registry."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from digitsearch.cli.app import app

SHOW = "Print one space's parameters."
STATS = "Print a dataset's class counts per split and write a bar chart PNG."
STATS_BASE = "With --stats numbers: the digit set the numbers are built from."
STATS_DATA_DIR = "Where to look for the files of registered datasets."
STATS_OUT = "Where to write the bar chart (default: results/datasets/<name>-classes.png)."


@app.command()
def spaces(show: Annotated[Optional[str], typer.Option(help=SHOW)] = None):
    """List the built-in search spaces (or show one)."""
    from digitsearch import spaces as space_lib
    from digitsearch.spaces import portfolio

    if not show:
        for space_name, description in space_lib.list_spaces().items():
            typer.echo(f"{space_name:12s} {description}")
        return
    loaded = space_lib.load(show)
    typer.echo(f"{loaded.name} ({loaded.path}): {'families' if len(loaded.families) > 1 else 'family'} "
               f"{', '.join(loaded.families)}; {loaded.description}")
    if loaded.limits:
        typer.echo("  limits: " + ", ".join(f"{k} {v:,}" for k, v in loaded.limits.items()))
    for family, own in loaded.family_limits.items():
        typer.echo(f"  limits of {family} trials (its space's): " + ", ".join(f"{k} {v:,}" for k, v in own.items()))
    for line in loaded.describe():
        typer.echo(f"  {line}")
    learned = portfolio.points_for(portfolio.BUILTIN, loaded)  # tune's default, ordered for data every member trains on
    for number, point in enumerate(portfolio.seeded(loaded, learned).starting_points, start=1):
        tag = " (portfolio)" if point in learned else ""
        typer.echo(f"  start {number}{tag}: " + ", ".join(f"{k}={v}" for k, v in point.items()))


@app.command()
def datasets(
    stats: Annotated[Optional[str], typer.Option(help=STATS)] = None,
    base: Annotated[Optional[str], typer.Option(help=STATS_BASE)] = None,
    data_dir: Annotated[Optional[str], typer.Option(help=STATS_DATA_DIR)] = None,
    out: Annotated[Optional[Path], typer.Option(help=STATS_OUT)] = None,
):
    """List the registered datasets (a folder of IDX files or a Kaggle CSV also works), or show one's class balance."""
    from digitsearch.data.catalog import list_datasets

    if stats is None:
        for dataset_name, description in list_datasets().items():
            typer.echo(f"{dataset_name:14s} {description}")
        return
    from digitsearch import data
    from digitsearch.data import stats as stats_lib

    bundle = data.load(stats, base=base, data_dir=data_dir)
    typer.echo(stats_lib.class_counts(bundle).to_string())
    out = out or Path("results") / "datasets" / f"{bundle.name}-classes.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    stats_lib.write_bar_chart(bundle, out)
    typer.echo(f"wrote {out}")


@app.command()
def models():
    """List the registered model families."""
    from digitsearch import models as model_lib

    for family in model_lib.list_models():
        typer.echo(f"{family:10s} {model_lib.describe(family)}")
