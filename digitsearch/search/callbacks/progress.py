"""What the user watches while a search runs, and the record it leaves: a short line per finished
trial, at most 80 characters, on a terminal and in a log alike:

    [6/12] 6aebcd4e: val 0.9912 after 3 of 10 epochs, stopped early
    [7/12] 3f47a4ea: val 0.9950 after 10 of 10 epochs, completed, best so far
    [8/12] 0c1d2e3f: over budget: 9,000,000 parameters > 2,000,000
    [9/12] 77aa01bc: error, retried once: RuntimeError: expected input[256, 1, 28, 28] to…
        traceback: results/f/tune/trial_77aa01bc/error.txt

On an interactive terminal the lines scroll above a live view (search.callbacks.live) redrawn
about twice a second: the time bar, the running trials, the counts, the best so far and what
the planner intends. Anywhere else (a file, a pipe, CI, a notebook, the Python API's own echo=,
--verbose's Tune tables) the lines go to `echo`, with a status line after each minute of search:

    search: 12/30 done, 2 running, best 0.9950 (3f47a4ea), 4m10s left, planner: search

It only shows: the counts come from the Ledger, which Tune calls first (callbacks run in list
order), so a line and the ledger never disagree.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ray import tune

from digitsearch.core.timebudget import Clock, Deadline, shown
from digitsearch.search.callbacks.ledger import Ledger
from digitsearch.search.callbacks.live import BestTrial, LiveView, RunningTrial, Snapshot
from digitsearch.search.deadline import TIME_LIMIT_NOTE

if TYPE_CHECKING:
    from rich.console import Console

TRIAL_LINE_WIDTH = 80  # a finished trial's line: one line of an 80-column terminal
STATUS_LINE_WIDTH = 100  # the plain mode's status line
STATUS_EVERY_S = 60.0  # plain mode: a status line after each minute of search, not more often
REDRAW_EVERY_S = 0.5  # the live view: about twice a second
DEFAULT_INTENT = "search"  # what the view says the planner intends when no planner tells it


class SearchProgress(tune.Callback):
    """Shows a running search: a line per finished trial, and a live view or plain status lines.

    total: the trials the search runs, None for as many as the time limit allows (`deadline`
    then says what is left). intent: the planner's provider of what it intends now ("search",
    "final training", "ensemble member 2/3"), read on Tune's thread each time the view is drawn
    (at most twice a second) and for each status line: it must return quickly; None shows
    "search". console: a terminal's console (live.terminal_console) for the live view; None for
    plain lines through `echo`. clock: where elapsed time is read (a test's FakeClock)."""

    def __init__(self, total: int | None, ledger: Ledger, echo: Callable[[str], None] = print,
                 deadline: Deadline | None = None, *, intent: Callable[[], str] | None = None,
                 console: Console | None = None, clock: Clock = time.monotonic):
        self.total, self.ledger, self.echo, self.deadline = total, ledger, echo, deadline
        self.max_epochs = ledger.max_epochs
        self.intent, self.clock = intent, clock
        self.start = clock()
        self.best: BestTrial | None = None
        self.running: dict[str, RunningTrial] = {}  # in the order they started
        self.view = LiveView(console) if console is not None else None
        self.last_drawn = float("-inf")  # the first step draws the view at once
        self.last_status = self.start  # the first status line comes a minute into the search

    def __getstate__(self) -> dict:
        """Tune pickles its callbacks with the experiment's state. The terminal's view (its console's
        locks) and the planner's provider belong to this driver: not pickled, so a copy shows
        plain lines. A resumed driver never uses the copy: it puts its own in (rounds._restored_tuner)."""
        return {**self.__dict__, "view": None, "intent": None}

    # --- Tune's hooks: the first and last open and close the view; the rest keep the state ---

    def setup(self, *args, **info):
        if self.view:
            self.view.start()

    def on_experiment_end(self, trials, **info):
        # Tune calls it however the round ends: finished, interrupted (Ctrl-C) or failed
        if self.view:
            self.view.stop()

    def on_step_end(self, iteration, trials, **info):
        now = self.clock()
        if self.view and now - self.last_drawn >= REDRAW_EVERY_S:
            self.draw()
        elif not self.view and now - self.last_status >= STATUS_EVERY_S:
            self.last_status = now
            self.echo(status_line(self.snapshot()))

    def on_trial_start(self, iteration, trials, trial, **info):
        self.running[trial.trial_id] = RunningTrial(trial.trial_id, dict(trial.config))

    def on_trial_recover(self, iteration, trials, trial, **info):
        # it raised and Tune retries it from its last checkpoint: starting again
        self.running[trial.trial_id] = RunningTrial(trial.trial_id, dict(trial.config))

    def on_trial_result(self, iteration, trials, trial, result, **info):
        acc = result.get("val_acc")
        if isinstance(acc, float) and (self.best is None or acc > self.best.val_acc):
            self.best = BestTrial(acc, trial.trial_id, dict(trial.config))
        if trial.trial_id in self.running:
            self.running[trial.trial_id] = RunningTrial(trial.trial_id, dict(trial.config), result.get("epoch"),
                                                        acc if isinstance(acc, float) else None)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        if not self._again(trial):
            self._say(self._trial_line(trial, self._how(trial)))

    def on_trial_error(self, iteration, trials, trial, **info):
        self.running.pop(trial.trial_id, None)
        if self._again(trial):
            return
        message, traceback = error_text(trial)
        self._say(self._trial_line(trial, f"error, retried once: {message}"))
        if traceback:  # a path is not shortened: it says where to look
            self._say(f"    traceback: {traceback}")

    # --- what is shown ---

    def snapshot(self) -> Snapshot:
        elapsed = self.clock() - self.start
        left = self._left(elapsed, self.ledger.done)
        limit = elapsed + max(0.0, self.deadline.left()) if self.deadline else None
        return Snapshot(elapsed=elapsed, left=left, limit=limit, finished=self.ledger.done, total=self.total,
                        counts=dict(self.ledger.counts()), running=tuple(self.running.values()), best=self.best,
                        max_epochs=self.max_epochs, intent=self._intent())

    def draw(self) -> None:
        self.last_drawn = self.clock()
        self.view.show(self.snapshot())

    def _say(self, line: str) -> None:
        """A line of the record: above the live view on a terminal, through `echo` elsewhere."""
        if self.view:
            self.last_drawn = self.clock()
            self.view.say(line, self.snapshot())
        else:
            self.echo(line)

    def _again(self, trial) -> bool:
        """A trial an earlier driver had already counted: said once, not counted again."""
        if trial.trial_id not in self.ledger.ended_again:
            return False
        self._say(f"resume: {trial.trial_id} had ended just before the driver stopped; its last epochs ran "
                  f"again to bring its files up to date (counted once)")
        return True

    def _how(self, trial) -> str:
        """How a trial that raised no error ended: its accuracy and why it stopped, or why it never trained."""
        last = trial.last_result or {}
        note = str(last.get("note") or "")
        if note and not note.startswith(TIME_LIMIT_NOTE):  # over budget, infeasible, diverged, out of memory
            return note
        epochs = last.get("epoch", 0)
        acc = last.get("best_val_acc", last.get("val_acc", 0.0))
        ending = TIME_LIMIT_NOTE if note else "completed" if epochs >= self.max_epochs else "stopped early"
        best = ", best so far" if self.best and self.best.trial_id == trial.trial_id else ""
        return f"val {acc:.4f} after {epochs} of {self.max_epochs} epochs, {ending}{best}"

    def _trial_line(self, trial, how: str) -> str:
        of = f"/{self.total}" if self.total else ""
        return fitted(f"[{self.ledger.done}{of}] {trial.trial_id}: {how}", TRIAL_LINE_WIDTH)

    def _intent(self) -> str:
        if self.intent is None:
            return DEFAULT_INTENT
        try:
            return str(self.intent())
        except Exception as err:  # a planner's bug is shown in the view, not allowed to end the search
            return f"? (its provider raised {type(err).__name__}: {err})"

    def _left(self, elapsed: float, done: int) -> float | None:
        """The time left: the deadline's when there is one and it comes first, else the pace so far;
        None when neither says (no time limit, no trial finished yet)."""
        ended_here = done - self.ledger.resumed_with
        by_pace = elapsed / ended_here * max(0, self.total - done) if self.total and ended_here > 0 else None
        by_deadline = max(0.0, self.deadline.left()) if self.deadline else None
        known = [left for left in (by_pace, by_deadline) if left is not None]
        return min(known) if known else None


def status_line(s: Snapshot) -> str:
    """`search: 12/30 done, 2 running, best 0.9950 (3f47a4ea), 4m10s left, planner: search`."""
    of = f"/{s.total}" if s.total else ""
    best = f"best {s.best.val_acc:.4f} ({s.best.trial_id})" if s.best else "best -"
    left = f", {shown(s.left)} left" if s.left is not None else f", {shown(s.elapsed)} elapsed"
    return fitted(f"search: {s.finished}{of} done, {len(s.running)} running, {best}{left}, planner: {s.intent}",
                  STATUS_LINE_WIDTH)


def fitted(line: str, width: int) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def error_text(trial) -> tuple[str, str | None]:
    """(the exception's own line, "ValueError: Invalid learning rate: -1.0"; where its traceback
    is), from the error.txt Ray writes beside the trial; without that file, the leaderboard's
    note says it, and there is no traceback to point to."""
    path = Path(getattr(trial, "local_path", None) or "") / "error.txt"  # the driver's copy, there at once
    stays = f"{getattr(trial, 'path', None) or path.parent}/error.txt"  # where it stays: the experiment's storage
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return "see the leaderboard's note", None
    return (lines[-1].strip()[:150] if lines else "unknown"), _from_here(stays)


def last_error_line(trial) -> str:
    """The exception's own line and where the traceback is, in one: `ValueError: ... (traceback: PATH)`."""
    message, traceback = error_text(trial)
    return f"{message} (traceback: {traceback})" if traceback else message


def _from_here(path: str) -> str:
    """A local path inside the working directory as a relative one (results/...): shorter to read."""
    if "://" in path:
        return path
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return path
    return path if relative.startswith("..") else relative
