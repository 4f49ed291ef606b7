"""A compact live view of a search: one line per finished trial, not Ray's status tables."""
from __future__ import annotations

import time
from typing import Callable

from ray import tune


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class SearchProgress(tune.Callback):
    """Prints `[done/total] trial … val_acc … | best … | running N | elapsed, left`."""

    def __init__(self, total: int, max_epochs: int, echo: Callable[[str], None] = print):
        self.total, self.max_epochs, self.echo = total, max_epochs, echo
        self.start = time.monotonic()
        self.best: tuple[float, str] = (-1.0, "")
        self.finished: set[str] = set()  # trials that ended on their own (done, stopped, errored)

    def on_trial_result(self, iteration, trials, trial, result, **info):
        acc = result.get("val_acc")
        if isinstance(acc, float) and acc > self.best[0]:
            self.best = (acc, trial.trial_id)

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._finished(trials, trial, self._how(trial))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trials, trial, "error (retried once, then recorded)")

    def _how(self, trial) -> str:
        last = trial.last_result or {}
        if last.get("note"):
            return last["note"]
        epochs = last.get("epoch", 0)
        acc = last.get("best_val_acc", last.get("val_acc", 0.0))
        ending = "" if epochs >= self.max_epochs else ", stopped early"
        return f"val_acc {acc:.4f} after {epochs} epoch{'s' if epochs != 1 else ''}{ending}"

    @property
    def done(self) -> int:
        return len(self.finished)

    def _finished(self, trials, trial, how: str) -> None:
        self.finished.add(trial.trial_id)
        running = sum(t.status == "RUNNING" for t in trials)
        elapsed = time.monotonic() - self.start
        left = elapsed / self.done * (self.total - self.done)
        best = f"best {self.best[0]:.4f} ({self.best[1]})" if self.best[1] else "best -"
        self.echo(
            f"[{self.done}/{self.total}] {trial.trial_id}: {how} | {best} | running {running} "
            f"| {_clock(elapsed)} elapsed, ~{_clock(left)} left"
        )
