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
ENSEMBLE = ("With --retrain: retrain the leaderboard's top K distinct configs (any family) and average their "
            "probabilities; model.pt serves them as one model.")
TTA = ("With --retrain: test-time augmentation inside the served model: average over the image shifted one pixel "
       "each way (and mirrored, where the dataset allows it: clothing, not digits).")
TIME_LIMIT = ("With --retrain: the whole retrain's time, e.g. 90s, 30m, 1h30m; it picks the epochs (and with "
              "--ensemble how many members) that fit, measured on this machine. Not with --epochs.")
PICK = ("Pick the trial by accuracy and cost instead of the best: fastest, smallest (lowest CPU latency / fewest "
        "parameters), or fastest-within:P / smallest-within:P (the fastest / smallest within P accuracy points of "
        "the best, e.g. smallest-within:0.3); --retrain retrains the pick into final-<trial>/.")
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
    pick: Annotated[Optional[str], typer.Option(help=PICK)] = None,
    starting_points: Annotated[bool, typer.Option("--starting-points", help=STARTING_POINTS)] = False,
    accept_changed_data: Annotated[bool, typer.Option("--accept-changed-data", help=ACCEPT_CHANGED)] = False,
    ensemble: Annotated[int, typer.Option(min=1, help=ENSEMBLE)] = 1,
    tta: Annotated[bool, typer.Option("--tta", help=TTA)] = False,
    time_limit: Annotated[Optional[str], typer.Option(help=TIME_LIMIT)] = None,
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
    time_limit_s = _checked_retrain_options(retrain, epochs, ensemble, tta, time_limit, trial, starting_points)
    _checked_pick(pick, trial, ensemble, starting_points)
    export_formats.check_available(formats)
    folder = api.experiment(name, results)
    found = api.pick(folder, pick) if pick else api.best(folder, trial=trial)
    if pick:
        typer.echo(f"picked {found['picked']}")
        trial = found["trial_id"]  # retrained into final-<trial>/, beside the best's final/
    typer.echo(f"experiment {folder.name}: {'trial' if trial else 'best trial'} {found['trial_id']}, "
               f"val_acc {_shown(found['val_acc'])} at epoch {found['best_epoch']} of {found['epochs']}, "
               f"{int(found['n_params'] or 0):,} parameters")
    for key, value in found["config"].items():
        typer.echo(f"  {key} = {value}")
    if retrain:
        options = {"ensemble": ensemble, "tta": tta, "time_limit_s": time_limit_s}
        done = retrain_with_progress(folder, epochs, formats, trial, accept_changed_data, **options)
        if starting_points:  # on the best's budget, with the same test-time views
            budget = epochs or done.metrics["members"][0]["epochs"]
            # the trial final/ holds: the retrain's pick, which may go before best.json's (final.plan)
            _retrain_starting_points(folder, budget, done.metrics["trial_id"], accept_changed_data, tta)


def _checked_retrain_options(retrain: bool, epochs: int | None, ensemble: int, tta: bool, time_limit: str | None,
                             trial: str | None, starting_points: bool) -> float | None:
    """--time-limit in seconds (or None); the options that need --retrain or clash, as one line each."""
    from digitsearch.core.timebudget import parse_duration
    from digitsearch.final import options

    asked = [name for name, on in (("--ensemble", ensemble != 1), ("--tta", tta), ("--time-limit", time_limit))
             if on]
    if asked and not retrain:
        raise UserError(f"{asked[0]} goes with --retrain: it shapes the retrained model")
    if time_limit is not None and starting_points:
        raise UserError("--time-limit covers one retrain; the starting points would come after it: "
                        "give --starting-points without --time-limit")
    seconds = parse_duration(time_limit) if time_limit is not None else None
    options.check(epochs, ensemble, tta, seconds, trial)
    return seconds


def _checked_pick(pick: str | None, trial: str | None, ensemble: int, starting_points: bool) -> None:
    """--pick's own spelling, and the options it cannot go with, as one line each."""
    from digitsearch.store.objectives import parse_pick

    if pick is None:
        return
    parse_pick(pick)
    clash = "--trial" if trial else "--ensemble" if ensemble != 1 else "--starting-points" if starting_points else None
    if clash:
        raise UserError(f"--pick chooses one trial; it does not go with {clash}")


def _shown(value) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"  # an errored trial has none


def _retrain_starting_points(folder: Path, epochs: int, skip: str, accept_changed_data: bool, tta: bool) -> None:
    """Each trained starting point, on the best's budget (--epochs, else the best's epochs)."""
    from digitsearch.final.compare import starting_points

    for point in starting_points(folder, skip):
        label = f"starting point {point.number} (trial {point.trial_id})"
        if point.why_not:
            typer.echo(f"{label}: {point.why_not}; not retrained")
            continue
        typer.echo(f"{label}: retraining for {epochs} epochs")
        retrain_with_progress(folder, epochs, (), point.trial_id, accept_changed_data, tta=tta)


def _note(line: str) -> None:
    typer.echo(line, err=line.startswith("warning:"))


def retrain_with_progress(folder: Path, epochs: int | None, formats: tuple[str, ...] = (), trial: str | None = None,
             accept_changed_data: bool = False, ensemble: int = 1, tta: bool = False,
             time_limit_s: float | None = None):
    from rich.console import Console

    from digitsearch import api
    from digitsearch.store.layout import final_dir

    if (final_dir(folder, trial) / "model.pt").is_file():
        typer.echo(f"note: replacing the earlier retrain in {final_dir(folder, trial)}/")
    # a bar on a terminal; in a log file (nohup, CI, a SLURM job) Rich would draw it only at the
    # end, so there a line per epoch says how far the retrain is
    shown = _Bars() if Console().is_terminal else _EpochLines()
    with shown:
        done = api.retrain(folder, epochs=epochs, exports=formats, trial=trial, progress=shown.on_epoch,
                           on_start=shown.start, accept_changed_data=accept_changed_data, note=_note,
                           ensemble=ensemble, tta=tta, time_limit_s=time_limit_s, on_member=shown.on_member)
    outcome = _outcome(done.metrics)
    if outcome:  # nothing to say without a labelled test split
        typer.echo(outcome)
    served = done.metrics.get("served_cost")
    if served:
        typer.echo(f"served: {served['latency_ms']:.3g} ms per image on the CPU (batch 1, {served['cost_threads']} "
                   f"thread(s)), model.pt {served['model_kb']:,.0f} kB")
    typer.echo(f"wrote {done.folder}/: " + ", ".join(sorted(p.name for p in done.folder.iterdir())))
    return done


FINAL_TRAINING = "final training"  # the retrain's bar, in the words of the search's live view


def _epoch_info(metrics: dict) -> str:
    return (f"loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.4f} "
            f"{metrics['images_per_second']:.0f} examples/s")


class _Bars:
    """A Rich bar per member, `final training: member 1/2` as the search's live view words it
    (search.callbacks.live): the finished ones stay on screen. `console`: the terminal's by default."""

    def __init__(self, console=None):
        self.console = console

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        # the bar takes what the words leave of the line: one line of an 80-column terminal
        columns = (TextColumn("{task.description}"), BarColumn(bar_width=None), MofNCompleteColumn(),
                   TextColumn("{task.fields[info]}"), TimeRemainingColumn())
        self.bar = Progress(*columns, transient=False, expand=True, console=self.console).__enter__()
        self.tasks = [self.bar.add_task(FINAL_TRAINING, total=None, info="loading data")]
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def on_member(self, k: int, count: int, trial_id: str) -> None:
        if k > 1:
            self.tasks.append(self.bar.add_task(FINAL_TRAINING, total=None, info="building"))
        if count > 1:
            self.bar.update(self.tasks[-1], description=f"{FINAL_TRAINING}: member {k}/{count}",
                            info=f"trial {trial_id}")

    def start(self, total: int) -> None:
        self.bar.update(self.tasks[-1], total=total, info="training")

    def on_epoch(self, epoch: int, metrics: dict) -> None:
        # the examples/s of the plain lines would leave the bar no room beside the member's words
        self.bar.update(self.tasks[-1], completed=epoch,
                        info=f"loss {metrics['train_loss']:.4f} acc {metrics['train_acc']:.4f}")


class _EpochLines:
    """`retrain: member 1/2 epoch 3/23: loss 0.4123 acc 0.8911 812 examples/s, 2m10s elapsed`: a member's
    first and last epoch, and in between one every EVERY_S (a log or a notebook, not 300 lines)."""

    EVERY_S = 30.0

    def __enter__(self):
        import time

        self.clock, self.began, self.member, self.total = time.monotonic, time.monotonic(), "", None
        self.said = -self.EVERY_S
        return self

    def __exit__(self, *exc):
        return False

    def on_member(self, k: int, count: int, trial_id: str) -> None:
        self.member = f"member {k}/{count} (trial {trial_id}) " if count > 1 else ""

    def start(self, total: int) -> None:
        self.total = total

    def on_epoch(self, epoch: int, metrics: dict) -> None:
        from digitsearch.core.timebudget import shown

        now = self.clock()
        if epoch not in (1, self.total) and now - self.said < self.EVERY_S:
            return
        self.said = now
        typer.echo(f"retrain: {self.member}epoch {epoch}/{self.total}: {_epoch_info(metrics)}, "
                   f"{shown(now - self.began)} elapsed")


def _outcome(metrics: dict) -> str:
    """The test line, e.g. test accuracy 0.9950 on 2000 held-out images (ensemble of 2, tta); members 0.9935, 0.9940"""
    if "test_sequences" in metrics:
        return (f"test exact-match accuracy {metrics['test_accuracy']:.4f} on {metrics['test_sequences']} "
                f"held-out sequences (per symbol {metrics['test_symbol_accuracy']:.4f})")
    if "test_accuracy" not in metrics:
        return ""
    members = metrics.get("members", [])
    how = [f"ensemble of {len(members)}"] * (len(members) > 1) + ["tta"] * ("test_accuracy_no_tta" in metrics)
    line = f"test accuracy {metrics['test_accuracy']:.4f} on {metrics['test_images']} held-out images"
    line += f" ({', '.join(how)})" if how else ""
    if len(members) > 1:
        line += "; members " + ", ".join(f"{m['test_accuracy']:.4f}" for m in members if "test_accuracy" in m)
    if "test_accuracy_no_tta" in metrics:
        line += f"; without tta {metrics['test_accuracy_no_tta']:.4f}"
    return line
