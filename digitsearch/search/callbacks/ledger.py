"""The durable record of which trials ended and how: finished.txt, one line
`trial_id<TAB>outcome` per trial that ended on its own, appended as it ends.

A Tune callback of its own, apart from the printer: `tune --resume` counts on from this file
after a killed driver, so it must not depend on what the terminal shows (--quiet prints nothing).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ray import tune

from digitsearch.search.chance import AT_CHANCE_NOTE
from digitsearch.search.deadline import TIME_LIMIT_NOTE

OUTCOMES = ("done", "stopped", "errored", "not trained")


def read(path: Path) -> dict[str, str]:
    """trial_id -> outcome (lines written before outcomes were recorded read as done)."""
    if not path.is_file():
        return {}
    pairs = (line.split("\t", 1) for line in path.read_text().splitlines() if line.strip())
    return {pair[0]: (pair[1] if len(pair) > 1 else "done") for pair in pairs}


def _append(path: Path, trial_id: str, outcome: str) -> None:
    with open(path, "a") as ledger:
        ledger.write(f"{trial_id}\t{outcome}\n")


def outcome_of(trial, max_epochs: int) -> str:
    """How a trial that completed (no error) ended: done, stopped early, or not trained."""
    last = trial.last_result or {}
    if str(last.get("note", "")).startswith((TIME_LIMIT_NOTE, AT_CHANCE_NOTE)):  # trained, then stopped
        return "stopped"
    if last.get("note"):  # infeasible, over budget, diverged, out of memory
        return "not trained"
    return "done" if last.get("epoch", 0) >= max_epochs else "stopped"


class Ledger(tune.Callback):
    """trial_id -> outcome for every trial that ended on its own, this run's and earlier runs'.

    `path` None keeps it in memory only (tests)."""

    def __init__(self, path: Path | None, max_epochs: int):
        self.path, self.max_epochs = path, max_epochs
        self.outcomes: dict[str, str] = read(path) if path else {}
        self.resumed_with = len(self.outcomes)  # what earlier drivers recorded
        # trials that ended again here after an earlier driver had recorded them: Tune's
        # snapshot, up to a second older than this file, had them unfinished (search.reconcile)
        self.ended_again: set[str] = set()

    @property
    def finished(self) -> set[str]:
        return set(self.outcomes)

    @property
    def done(self) -> int:
        return len(self.outcomes)

    def counts(self) -> Counter:
        return Counter(self.outcomes.values())

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._record(trial.trial_id, outcome_of(trial, self.max_epochs))

    def on_trial_error(self, iteration, trials, trial, **info):
        self._record(trial.trial_id, "errored")

    def _record(self, trial_id: str, outcome: str) -> None:
        if trial_id in self.outcomes:  # counted once: the first outcome stays
            self.ended_again.add(trial_id)
            return
        if self.path:
            _append(self.path, trial_id, outcome)
        self.outcomes[trial_id] = outcome
