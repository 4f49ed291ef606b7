"""ASHA that trains the space's starting points in full.

The starting points are the hand-made nets the search has to beat; the report and `best`
compare the winner with them, which is only fair when they trained as long as the winner
could. And the strongest of them start slowly: batchnorm, augmentation and a warmup schedule
put the recipe net at val_acc 0.10-0.49 after its first epoch on the digits, where ASHA's
first rung stopped it, so a search handed its best hand-made net lost it (issue 15). Their
results still count at every rung, as every other trial's do.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from digitsearch.search.mutation import KEEP_UP, parent_of
from digitsearch.store.leaderboard import match_starting_points


class StartingPointsASHA(ASHAScheduler):
    """ASHAScheduler, except that a trial evaluating one of `starting_points` (partial configs,
    matched as the leaderboard's origin column matches them) is never stopped before max_t, and
    a local step (search/mutation.py) goes on while it keeps up with its parent at the same epoch."""

    def __init__(self, starting_points: Sequence[Mapping] = (), **asha):
        super().__init__(**asha)
        self.points = [dict(point) for point in starting_points]
        self.protected: dict[str, int] = {}  # trial id -> the number of the starting point it evaluates
        self.curves: dict[str, dict[int, float]] = {}  # trial id -> {time_attr: metric}, every trial's

    def on_trial_add(self, tune_controller, trial) -> None:
        super().on_trial_add(tune_controller, trial)
        for k, point in enumerate(self.points, start=1):
            if k not in self.protected.values() and match_starting_points({trial.trial_id: trial.config}, [point]):
                self.protected[trial.trial_id] = k
                return

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)  # the rungs record it either way
        at, value = result.get(self._time_attr, 0), result.get(self._metric)
        if value is not None:
            # (a scheduler pickled before curves existed has none of its own yet)
            self.__dict__.setdefault("curves", {}).setdefault(trial.trial_id, {})[at] = value
        if decision != TrialScheduler.STOP or at >= self._max_t:
            return decision
        if trial.trial_id in self.protected or self._keeps_up(trial.trial_id, at, value):
            return TrialScheduler.CONTINUE
        return decision

    def _keeps_up(self, trial_id: str, at: int, value) -> bool:
        """A local step within KEEP_UP of its parent's metric at the same time (mode max)."""
        parent = parent_of(trial_id)
        before = self.curves.get(parent, {}).get(at) if parent else None
        return value is not None and before is not None and value >= before - KEEP_UP
