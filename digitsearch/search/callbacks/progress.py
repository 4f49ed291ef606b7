"""A compact live view of a search: one line per finished trial, not Ray's status tables.

    [6/12] 6aebcd4e: val_acc 0.0266 after 3 epochs, stopped early | done 3, stopped 2, errored 0,
    not trained 1, running 2 | best 0.9995 (3f47a4ea: depth=3 filters=32/64/128 ...) | 5m06s elapsed, ~5m06s left

It only prints: the counts come from the Ledger, which Tune calls first (callbacks run in
list order), so a line and the ledger never disagree.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ray import tune

from digitsearch.core.timebudget import Deadline
from digitsearch.search.callbacks.ledger import Ledger
from digitsearch.store.leaderboard import short_config
from digitsearch.store.ledger import OUTCOMES


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class SearchProgress(tune.Callback):
    """Prints `[finished/total] trial: how it ended | counts | best so far | elapsed, left`."""

    def __init__(self, total: int | None, ledger: Ledger, echo: Callable[[str], None] = print,
                 deadline: Deadline | None = None):
        """total None: as many trials as a time limit allows; `deadline` then says what is left."""
        self.total, self.ledger, self.echo, self.deadline = total, ledger, echo, deadline
        self.max_epochs = ledger.max_epochs
        self.start = time.monotonic()
        self.best: tuple[float, str] = (-1.0, "")
        self.best_config: dict = {}

    def on_trial_result(self, iteration, trials, trial, result, **info):
        acc = result.get("val_acc")
        if isinstance(acc, float) and acc > self.best[0]:
            self.best, self.best_config = (acc, trial.trial_id), dict(trial.config)

    def on_trial_complete(self, iteration, trials, trial, **info):
        if not self._again(trial):
            self._line(trials, trial, self._how(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        if not self._again(trial):
            self._line(trials, trial, f"error, retried once: {last_error_line(trial)}")

    def _again(self, trial) -> bool:
        """A trial an earlier driver had already counted: said once, not counted again."""
        if trial.trial_id not in self.ledger.ended_again:
            return False
        self.echo(f"resume: {trial.trial_id} had ended just before the driver stopped; its last epochs ran "
                  f"again to bring its files up to date (counted once)")
        return True

    def _how(self, trial) -> str:
        last = trial.last_result or {}
        if last.get("note"):
            return last["note"]
        epochs = last.get("epoch", 0)
        acc = last.get("best_val_acc", last.get("val_acc", 0.0))
        ending = "" if epochs >= self.max_epochs else ", stopped early"
        return f"val_acc {acc:.4f} after {epochs} epoch{'s' if epochs != 1 else ''}{ending}"

    def _line(self, trials, trial, how: str) -> None:
        done = self.ledger.done
        running = sum(t.status == "RUNNING" for t in trials)
        elapsed = time.monotonic() - self.start
        left = self._left(elapsed, done)
        outcomes = self.ledger.counts()
        counts = ", ".join(f"{name} {outcomes[name]}" for name in OUTCOMES)
        best = f"best {self.best[0]:.4f} ({self.best[1]}: {short_config(self.best_config, width=60)})" \
            if self.best[1] else "best -"
        of = f"/{self.total}" if self.total else ""
        self.echo(f"[{done}{of}] {trial.trial_id}: {how} | {counts}, running {running} | {best} "
                  f"| {_clock(elapsed)} elapsed, ~{_clock(left)} left")

    def _left(self, elapsed: float, done: int) -> float:
        """The time left: the deadline's when there is one and it comes first, else the pace so far."""
        by_pace = elapsed / max(1, done - self.ledger.resumed_with) * max(0, self.total - done) \
            if self.total else float("inf")
        by_deadline = max(0.0, self.deadline.left()) if self.deadline else float("inf")
        left = min(by_pace, by_deadline)
        return 0.0 if left == float("inf") else left


def last_error_line(trial) -> str:
    """The exception's own line ("ValueError: Invalid learning rate: -1.0") and where the
    traceback is, from the error.txt Ray writes beside the trial."""
    path = Path(getattr(trial, "local_path", None) or "") / "error.txt"  # the driver's copy, there at once
    shown = f"{getattr(trial, 'path', None) or path.parent}/error.txt"  # where it stays: the experiment's storage
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return "see the leaderboard's note"
    return f"{lines[-1].strip()[:150] if lines else 'unknown'} (traceback: {shown})"
