"""`digitsearch portfolio build|table`: the portfolio searches start from, learned and rebuilt."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from digitsearch.cli.app import app

portfolio_app = typer.Typer(help="The configs every search evaluates first, learned from real searches "
                                 "(docs/spaces.md#the-portfolio).", no_args_is_help=True)
app.add_typer(portfolio_app, name="portfolio")

TABLE = "The table to learn from (default: the built-in search_spaces/portfolio/table.csv)."
SIZE = "How many configs the portfolio keeps."
WITHOUT = "Leave this dataset's results out (repeatable): a leave-one-dataset-out portfolio."
OUT_BUILD = "Where the portfolio goes (default: print it)."
EXPERIMENTS = ("Finished searches whose 2 best configs and best sampled one join the candidates (repeatable; "
               "folders).")
DATASETS = "Datasets to search the candidates on, comma-separated (default: all of them)."
EPOCHS = "Epochs every candidate trains on every dataset."
EXAMPLES = "Training examples a candidate trains on (a stratified subset; validation uses all)."
WORK = "Where the table's searches and the built datasets go (a finished dataset's search is reused)."
OUT_TABLE = "Where the table goes."
SHARED = "The shared data folder (default: ../shared/data, or $DIGITSEARCH_SHARED_DATA)."


@portfolio_app.command("build")
def build(
    table: Annotated[Optional[Path], typer.Option(help=TABLE)] = None,
    size: Annotated[int, typer.Option(min=1, help=SIZE)] = 6,
    without: Annotated[Optional[list[str]], typer.Option(help=WITHOUT)] = None,
    out: Annotated[Optional[Path], typer.Option(help=OUT_BUILD)] = None,
):
    """Choose the portfolio from a table, greedy for coverage, and write it with its evidence."""
    from digitsearch.errors import UserError
    from digitsearch.spaces.portfolio import PORTFOLIO_DIR
    from digitsearch.spaces.portfolio_build import greedy, portfolio_yaml, read_table

    path = table or PORTFOLIO_DIR / "table.csv"
    rows = read_table(path)
    left_out = tuple(without or ())
    unknown = sorted(set(left_out) - {r.dataset for r in rows})
    if unknown:
        raise UserError(f"--without {', '.join(unknown)}: not in the table (its datasets: "
                        f"{', '.join(sorted({r.dataset for r in rows}))})")
    chosen = greedy(rows, size, left_out)
    text = portfolio_yaml(rows, chosen, path.name, left_out)
    if out is None:
        typer.echo(text, nl=False)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    typer.echo(f"portfolio: {len(chosen)} configs -> {out} (loss {chosen[-1][1]:.3f}: 0 when every dataset's "
               "best candidate is in)")


@portfolio_app.command("table")
def table_command(
    experiments: Annotated[Optional[list[Path]], typer.Option(help=EXPERIMENTS)] = None,
    datasets: Annotated[Optional[str], typer.Option(help=DATASETS)] = None,
    epochs: Annotated[int, typer.Option(min=1, help=EPOCHS)] = 8,
    examples: Annotated[int, typer.Option(min=100, help=EXAMPLES)] = 6000,
    work: Annotated[Path, typer.Option(help=WORK)] = Path("results/portfolio-work"),
    out: Annotated[Path, typer.Option(help=OUT_TABLE)] = Path("search_spaces/portfolio/table.csv"),
    shared: Annotated[Optional[Path], typer.Option(help=SHARED)] = None,
):
    """Search every candidate config on every dataset (real searches, minutes each) and write the table."""
    from digitsearch.bench import portfolio_data, portfolio_table
    from digitsearch.errors import UserError
    from digitsearch.spaces.portfolio_build import write_table

    names = tuple(d.strip() for d in datasets.split(",")) if datasets else portfolio_data.NAMES
    unknown = sorted(set(names) - set(portfolio_data.NAMES))
    if unknown:
        raise UserError(f"--datasets: unknown {', '.join(unknown)}; known: {', '.join(portfolio_data.NAMES)}")
    data = shared or Path(os.environ.get("DIGITSEARCH_SHARED_DATA", "../shared/data"))
    needs_shared = set(names) & set(portfolio_data.BUILT)
    if needs_shared and not (data / "mnist-10k").is_dir():
        raise UserError(f"{data}: no shared data there (mnist-10k, fashion-mnist); pass --shared or set "
                        "$DIGITSEARCH_SHARED_DATA")
    for folder in experiments or ():
        if not (folder / "experiment.json").is_file():
            raise UserError(f"--experiments {folder}: not an experiment folder (no experiment.json)")
    rows = portfolio_table.build(list(experiments or ()), names, data, work, epochs, examples, typer.echo)
    write_table(out, rows)
    typer.echo(f"portfolio table: {len(rows)} rows -> {out}; `digitsearch portfolio build --table {out}` learns "
               "the portfolio from it")
