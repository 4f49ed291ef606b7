"""`digitsearch report` and `digitsearch dashboard`: a search seen as a markdown report with
pictures, or live in TensorBoard."""
from __future__ import annotations

from typing import Annotated, Optional

import typer

from digitsearch.cli.app import RESULTS, Name, Results, app

DASHBOARD_NAME = "Show one experiment (default: every experiment in --results)."
PORT = "Port on 127.0.0.1."


@app.command()
def report(name: Name = None, results: Results = RESULTS):
    """Write results/<name>/report/report.md and its PNGs (replacing an earlier report)."""
    from digitsearch.viz import report as report_lib

    report_lib.write(results, name, echo=typer.echo)


@app.command()
def dashboard(
    name: Annotated[Optional[str], typer.Option(help=DASHBOARD_NAME)] = None,
    port: Annotated[int, typer.Option(min=1, max=65535, help=PORT)] = 6006,
    results: Results = RESULTS,
):
    """Start TensorBoard on 127.0.0.1 over the experiments' trials and retrains; Ctrl-C stops it."""
    from digitsearch.viz import dashboard as board

    board.serve(board.logdir(results, name), port, echo=typer.echo)
