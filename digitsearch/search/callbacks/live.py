"""The live view of a running search on a terminal: a few lines that rich redraws in place.

    time     ━━━━━━━━━━━━━━━━━━━╺━━━━━━━━━━━━━━━━━━━━━━━━━━ 4m10s of 10m, 5m50s left
    running  d41e0a2c depth=3 filters=32/64/128 dense=128 dro… epoch 3/10 val 0.9875
             8b0c7731 depth=2 filters=16/32 lr=0.0005            starting      val -
    finished 11: 7 completed, 3 stopped early, 1 not trained, 0 errored
    best     0.9950 3f47a4ea depth=3 filters=32/64/128 dense=128 dropout=0.25 lr=0.…
    planner: final training: member 2/3

(80 columns, the frame of tests/test_progress_live.py.) Without a time limit the bar counts
trials: `trials ━━━━━━━━━╸━━━━━━━━━━ 3/12 after 4m10s, ~9m left`.

It draws what a Snapshot holds and nothing else: search.callbacks.progress takes the snapshot on
Tune's thread, so the view never reads state another thread is changing. Every line fits the
console's width (80 columns and up); finished trials are printed above the view by `LiveView.say`
and stay in the scrollback.
"""
from __future__ import annotations

import atexit
import sys
from dataclasses import dataclass
from typing import Callable, Mapping

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from digitsearch.core.timebudget import shown
from digitsearch.store.leaderboard import short_config

LABEL_WIDTH = 8  # "finished", the longest label
MAX_RUNNING_ROWS = 8  # a cluster may run dozens at once; the view stays a few lines high
# the tables' ellipsis shortens a config to its column's width; short_config must not cut it first
UNCUT = 10_000
OUTCOME_WORDS = {"done": "completed", "stopped": "stopped early", "not trained": "not trained", "errored": "errored"}


@dataclass(frozen=True)
class RunningTrial:
    trial_id: str
    config: dict
    epoch: int | None = None  # None until its first epoch is reported
    val_acc: float | None = None


@dataclass(frozen=True)
class BestTrial:
    val_acc: float
    trial_id: str
    config: dict


@dataclass(frozen=True)
class Snapshot:
    """The search at one moment, as both views (this one and the plain lines) show it."""

    elapsed: float  # seconds since this driver's search began
    left: float | None  # seconds left: the time limit's, or the pace so far's; None when unknown
    limit: float | None  # with a time limit, elapsed + what the limit leaves (the bar's length), else None
    finished: int  # trials ended, this driver's and earlier ones' (the ledger's count)
    total: int | None  # None: as many as the time limit allows
    counts: Mapping[str, int]  # the ledger's outcomes: done, stopped, errored, not trained
    running: tuple[RunningTrial, ...]
    best: BestTrial | None
    max_epochs: int
    intent: str  # what the planner intends now: "search", "final training", ...


def terminal_console(echo: Callable[[str], None]) -> Console | None:
    """A console for the live view when lines would go to an interactive terminal; None where
    they go elsewhere and plain lines serve better: a file, a pipe, CI, a Jupyter notebook,
    TERM=dumb (rich's is_interactive; TTY_INTERACTIVE=0 also says no), or an `echo` of the
    caller's own (the Python API's echo= gets every line, as it always has). NO_COLOR keeps the
    view but drops its colours (rich reads it)."""
    if not _writes_to_stdout(echo) or not _isatty(sys.stdout):
        return None
    console = Console()
    return console if console.is_interactive and not console.is_jupyter else None


def _writes_to_stdout(echo: Callable[[str], None]) -> bool:
    # print, typer.echo (the CLI's, from typer's own copy of click) and click.echo write each line
    # to sys.stdout; looked up only where already imported, so this imports neither
    printers = [print] + [getattr(sys.modules.get(name), "echo", None) for name in ("typer", "click")]
    return any(echo is printer for printer in printers if printer is not None)


def _isatty(stream) -> bool:
    # FORCE_COLOR makes rich call a pipe a terminal (colour in CI logs); the view needs a real one
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class LiveView:
    """rich's Live over a Snapshot, redrawn only when `show` is called (no thread of its own: the
    caller draws from Tune's thread, about twice a second). Lines that `say` prints go above it."""

    def __init__(self, console: Console):
        self.console = console
        # what else writes to this terminal while the view is up (Ray's lines from the trials)
        # goes above it, not through it; stderr only when it is the same terminal, so a
        # `2> errors.log` keeps its lines
        self.live = Live(console=console, auto_refresh=False, transient=True, redirect_stdout=True,
                         redirect_stderr=_isatty(sys.stderr), vertical_overflow="crop")

    def start(self) -> None:
        if not self.live.is_started:
            self.live.start()
            atexit.register(self.stop)  # a driver that dies with the view up still gets its cursor back

    def stop(self) -> None:
        if self.live.is_started:
            self.live.stop()
            atexit.unregister(self.stop)

    def show(self, snapshot: Snapshot) -> None:
        self.live.update(render(snapshot, self.console.width), refresh=True)

    def say(self, line: str, snapshot: Snapshot) -> None:
        """`line` above the view, and the view below it drawn from `snapshot` (once: printing
        draws the view again, so it is brought up to date first)."""
        self.live.update(render(snapshot, self.console.width), refresh=False)
        self.console.print(line, markup=False, highlight=False, emoji=False)


def render(s: Snapshot, width: int) -> RenderableType:
    """The view's lines, none wider than `width`."""
    rows = Table.grid(padding=(0, 1), expand=True)
    rows.add_column(width=LABEL_WIDTH, no_wrap=True, style="dim")
    rows.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    rows.add_row(*_time_row(s))
    rows.add_row("running", _running_rows(s))
    rows.add_row("finished", _one_line(_counts(s)))
    rows.add_row("best", _best_row(s.best))
    planner = _one_line(f"planner: {s.intent}")
    return Group(rows, planner)


def _one_line(text: str | Text) -> Text:
    line = text if isinstance(text, Text) else Text(text)
    line.no_wrap, line.overflow = True, "ellipsis"
    return line


def _time_row(s: Snapshot) -> tuple[str, Table]:
    """With a time limit, the time spent of it; else the trials finished of the total."""
    if s.limit:
        label, done, total = "time", s.elapsed, s.limit
        by_limit = s.limit - s.elapsed
        # the trials may end before the limit does: then the pace's estimate, with a ~
        left = f"~{shown(s.left)}" if s.left is not None and s.left < by_limit - 1 else shown(by_limit)
        figures = f"{shown(s.elapsed)} of {shown(s.limit)}, {left} left"
    else:
        label, done, total = "trials", float(s.finished), float(s.total or 0) or None
        figures = f"{s.finished}/{s.total} after {shown(s.elapsed)}" if s.total else \
            f"{s.finished} after {shown(s.elapsed)}"
        figures += f", ~{shown(s.left)} left" if s.left is not None else ""
    bar = Table.grid(padding=(0, 1), expand=True)
    bar.add_column(ratio=1)
    bar.add_column(no_wrap=True, justify="right")
    bar.add_row(ProgressBar(total=total, completed=min(done, total or done)), figures)
    return label, bar


def _running_rows(s: Snapshot) -> RenderableType:
    if not s.running:
        return Text("none yet" if not s.finished else "none", style="dim")
    rows = Table.grid(padding=(0, 1), expand=True)
    rows.add_column(no_wrap=True)  # trial id
    rows.add_column(ratio=1, no_wrap=True, overflow="ellipsis")  # config: what gives way on a narrow screen
    rows.add_column(no_wrap=True, justify="right")  # epoch k/max
    rows.add_column(no_wrap=True, justify="right")  # last val_acc
    for trial in s.running[:MAX_RUNNING_ROWS]:
        epoch = f"epoch {trial.epoch}/{s.max_epochs}" if trial.epoch is not None else "starting"
        val = f"val {trial.val_acc:.4f}" if trial.val_acc is not None else "val -"
        rows.add_row(trial.trial_id, short_config(trial.config, width=UNCUT), epoch, val)
    hidden = len(s.running) - MAX_RUNNING_ROWS
    if hidden > 0:
        rows.add_row("", Text(f"and {hidden} more", style="dim"), "", "")
    return rows


def _counts(s: Snapshot) -> str:
    of = f"/{s.total}" if s.total else ""
    parts = ", ".join(f"{s.counts.get(name, 0)} {word}" for name, word in OUTCOME_WORDS.items())
    return f"{s.finished}{of}: {parts}"


def _best_row(best: BestTrial | None) -> RenderableType:
    if best is None:
        return Text("-", style="dim")
    row = Table.grid(padding=(0, 1), expand=True)
    row.add_column(no_wrap=True, style="bold")
    row.add_column(no_wrap=True)
    row.add_column(ratio=1, no_wrap=True, overflow="ellipsis")
    row.add_row(f"{best.val_acc:.4f}", best.trial_id, short_config(best.config, width=UNCUT))
    return row
