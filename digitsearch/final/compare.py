"""Which hand-made nets to retrain beside the best (`best --retrain --starting-points`): every
starting point of the space that trained in the search and is not the best itself."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from digitsearch.store.leaderboard import TRAINED_STATUSES
from digitsearch.store.trials import starting_point_trials


class StartingPoint(NamedTuple):
    trial_id: str
    number: int  # the k-th starting point of the space
    why_not: str  # empty when it is to be retrained; else why not ("the best itself", its status)


def starting_points(folder: Path, best_trial: str) -> list[StartingPoint]:
    from digitsearch.store import leaderboard

    table = leaderboard.read(folder).set_index("trial_id")
    found = []
    for trial_id, k in starting_point_trials(folder).items():
        status = table.loc[trial_id, "status"] if trial_id in table.index else "unknown"
        why_not = "the best itself" if trial_id == best_trial else "" if status in TRAINED_STATUSES else status
        found.append(StartingPoint(trial_id, k, why_not))
    return found
