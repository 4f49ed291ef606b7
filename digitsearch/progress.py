"""A compact live view of a search: one line per finished trial, not Ray's status tables.

    [6/12] 6aebcd4e: val_acc 0.0266 after 3 epochs, stopped early | done 3, stopped 2, errored 0,
    not trained 1, running 2 | best 0.9995 (3f47a4ea: depth=3 filters=32/64/128 ...) | 5m06s elapsed, ~5m06s left
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Callable

from ray import tune

from digitsearch.leaderboard import short_config

OUTCOMES = ("done", "stopped", "errored", "not trained")


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"


class SearchProgress(tune.Callback):
    """Prints `[finished/total] trial: how it ended | counts | best so far | elapsed, left`."""

    def __init__(self, total: int, max_epochs: int, echo: Callable[[str], None] = print, ledger: Path | None = None):
        self.total, self.max_epochs, self.echo = total, max_epochs, echo
        self.start = time.monotonic()
        self.best: tuple[float, str] = (-1.0, "")
        self.best_config: dict = {}
        # trials that ended on their own (done, stopped, errored); the ledger keeps them across
        # a killed driver, so that `tune --resume` counts on from where it was
        self.ledger = ledger
        earlier = read_ledger(ledger) if ledger else {}
        self.finished: set[str] = set(earlier)
        self.resumed_with = len(self.finished)
        self.outcomes: Counter = Counter(earlier.values())

    def on_trial_result(self, iteration, trials, trial, result, **info):
        acc = result.get("val_acc")
        if isinstance(acc, float) and acc > self.best[0]:
            self.best, self.best_config = (acc, trial.trial_id), dict(trial.config)

    def on_trial_complete(self, iteration, trials, trial, **info):
        last = trial.last_result or {}
        outcome = "not trained" if last.get("note") else \
            "done" if last.get("epoch", 0) >= self.max_epochs else "stopped"
        self._finished(trials, trial, self._how(trial), outcome)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._finished(trials, trial, f"error, retried once: {last_error_line(trial)}", "errored")

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

    def _finished(self, trials, trial, how: str, outcome: str) -> None:
        if self.ledger and trial.trial_id not in self.finished:
            with open(self.ledger, "a") as ledger:
                ledger.write(f"{trial.trial_id}\t{outcome}\n")
        self.finished.add(trial.trial_id)
        self.outcomes[outcome] += 1
        running = sum(t.status == "RUNNING" for t in trials)
        elapsed = time.monotonic() - self.start
        left = elapsed / max(1, self.done - self.resumed_with) * max(0, self.total - self.done)
        counts = ", ".join(f"{name} {self.outcomes[name]}" for name in OUTCOMES)
        best = f"best {self.best[0]:.4f} ({self.best[1]}: {short_config(self.best_config, width=60)})" \
            if self.best[1] else "best -"
        self.echo(
            f"[{self.done}/{self.total}] {trial.trial_id}: {how} | {counts}, running {running} | {best} "
            f"| {_clock(elapsed)} elapsed, ~{_clock(left)} left"
        )


def read_ledger(path: Path) -> dict[str, str]:
    """trial_id -> outcome, from the lines `trial_id<TAB>outcome` written as trials end."""
    if not path.is_file():
        return {}
    pairs = (line.split("\t", 1) for line in path.read_text().splitlines() if line.strip())
    return {pair[0]: (pair[1] if len(pair) > 1 else "done") for pair in pairs}


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
