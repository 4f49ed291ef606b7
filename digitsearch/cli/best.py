"""`digitsearch best`: show the best trial (or any trial); with --retrain, train it on train+val,
test it and export; --starting-points retrains the space's hand-made nets beside it."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from digitsearch.cli.app import RESULTS, Name, Results, app
from digitsearch.errors import UserError

RETRAIN = "Retrain the best config on train+val, test it, export model and predictions (replaces an earlier final/)."
EPOCHS = "Retrain epochs (default: the best trial's best epoch)."
# help texts are rich markup: "\\[" keeps a literal bracket
EXPORT = ("With --retrain, also write these beside model.pt, comma-separated: torchscript,onnx "
          "(onnx needs `pip install .\\[onnx]`).")
TRIAL = ("Another trial of the leaderboard instead of the best, e.g. a hand-made starting point to compare; "
         "--retrain writes final-<trial>/.")
ACCEPT_CHANGED = ("With --retrain: retrain even when the data are no longer those the search saw (an edited file, "
                  "another split); without it changed data are refused.")
STARTING_POINTS = ("With --retrain: also retrain each trained starting point of the space (the hand-made nets) "
                   "into final-<trial>/, to compare with the best in `digitsearch report`.")


@app.command()
def best(
    name: Name = None,
    results: Results = RESULTS,
    retrain: Annotated[bool, typer.Option(help=RETRAIN)] = False,
    epochs: Annotated[Optional[int], typer.Option(min=1, help=EPOCHS)] = None,
    export: Annotated[Optional[str], typer.Option(help=EXPORT)] = None,
    trial: Annotated[Optional[str], typer.Option(help=TRIAL)] = None,
    starting_points: Annotated[bool, typer.Option("--starting-points", help=STARTING_POINTS)] = False,
    accept_changed_data: Annotated[bool, typer.Option("--accept-changed-data", help=ACCEPT_CHANGED)] = False,
):
    """Print the best config of an experiment; with --retrain, train it on all training data and export."""
    from digitsearch import api
    from digitsearch.final import formats as export_formats

    formats = export_formats.parse(export)  # checked first: a typo must not cost a retrain
    if formats and not retrain:
        raise UserError("--export needs --retrain: the exported files are made from the retrained model")
    if starting_points and (trial or not retrain):
        raise UserError("--starting-points goes with --retrain (and without --trial): it retrains the best, "
                        "then each starting point")
    if accept_changed_data and not retrain:
        raise UserError("--accept-changed-data goes with --retrain: only a retrain loads the data again")
    export_formats.check_available(formats)
    folder = api.experiment(name, results)
    found = api.best(folder, trial=trial)
    typer.echo(f"experiment {folder.name}: {'trial' if trial else 'best trial'} {found['trial_id']}, "
               f"val_acc {_shown(found['val_acc'])} at epoch {found['best_epoch']} of {found['epochs']}, "
               f"{int(found['n_params'] or 0):,} parameters")
    for key, value in found["config"].items():
        typer.echo(f"  {key} = {value}")
    if retrain:
        done = _retrain(folder, epochs, formats, trial, accept_changed_data)
        if starting_points:
            _retrain_starting_points(folder, epochs or done.metrics["epochs"], found["trial_id"], accept_changed_data)


def _shown(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"  # an errored trial has none


def _retrain_starting_points(folder: Path, epochs: int, skip: str, accept_changed_data: bool) -> None:
    """Each trained starting point, on the best's budget (--epochs, else the best's epochs)."""
    from digitsearch.final.compare import starting_points

    for point in starting_points(folder, skip):
        label = f"starting point {point.number} (trial {point.trial_id})"
        if point.why_not:
            typer.echo(f"{label}: {point.why_not}; not retrained")
            continue
        typer.echo(f"{label}: retraining for {epochs} epochs")
        _retrain(folder, epochs, (), point.trial_id, accept_changed_data)


def _note(line: str) -> None:
    typer.echo(line, err=line.startswith("warning:"))


def _retrain(folder: Path, epochs: int | None, formats: tuple[str, ...] = (), trial: str | None = None,
             accept_changed_data: bool = False):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from digitsearch import api
    from digitsearch.store.layout import final_dir

    if (final_dir(folder, trial) / "model.pt").is_file():
        typer.echo(f"note: replacing the earlier retrain in {final_dir(folder, trial)}/")
    columns = (TextColumn("retrain"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeRemainingColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("retrain", total=None, info="loading data")

        def on_epoch(epoch: int, metrics: dict) -> None:
            bar.update(task, completed=epoch, info=f"loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.4f} "
                                                   f"{metrics['images_per_second']:.0f} examples/s")

        def start(total: int) -> None:
            bar.update(task, total=total, info="training")

        done = api.retrain(folder, epochs=epochs, exports=formats, trial=trial, progress=on_epoch, on_start=start,
                           accept_changed_data=accept_changed_data, note=_note)
    metrics = done.metrics
    if "test_sequences" in metrics:
        typer.echo(f"test exact-match accuracy {metrics['test_accuracy']:.4f} on {metrics['test_sequences']} "
                   f"held-out sequences (per symbol {metrics['test_symbol_accuracy']:.4f})")
    elif "test_accuracy" in metrics:
        typer.echo(f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_images']} held-out images")
    typer.echo(f"wrote {done.folder}/: " + ", ".join(sorted(p.name for p in done.folder.iterdir())))
    return done
