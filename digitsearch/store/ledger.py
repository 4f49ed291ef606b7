"""The ledger, finished.txt: one line `trial_id<TAB>outcome` per trial that ended on its own,
appended as it ends. It survives a killed driver, so `tune --resume` counts on from it."""
from __future__ import annotations

from pathlib import Path

OUTCOMES = ("done", "stopped", "errored", "not trained")


def read(path: Path) -> dict[str, str]:
    """trial_id -> outcome (lines written before outcomes were recorded read as done)."""
    if not path.is_file():
        return {}
    pairs = (line.split("\t", 1) for line in path.read_text().splitlines() if line.strip())
    return {pair[0]: (pair[1] if len(pair) > 1 else "done") for pair in pairs}


def append(path: Path, trial_id: str, outcome: str) -> None:
    with open(path, "a") as ledger:
        ledger.write(f"{trial_id}\t{outcome}\n")
