"""ASHA of our own, on Tune's public scheduler API: it trains the space's starting points in full,
lets a local step go on while it keeps up with its parent, and can be seeded with the curves of
trials an earlier round ran.

The starting points are the hand-made nets the search has to beat; the report and `best`
compare the winner with them, which is only fair when they trained as long as the winner
could. And the strongest of them start slowly: batchnorm, augmentation and a warmup schedule
put the recipe net at val_acc 0.10-0.49 after its first epoch on the digits, where ASHA's
first rung stopped it, so a search handed its best hand-made net lost it (issue 15). Their
results still count at every rung, as every other trial's do.

Seeding: a later round of the same study (`--add-trials`) starts a new Tune run, whose
scheduler would otherwise judge its first trials against empty rungs and stop none of them.
Given the earlier trials' curves (the study's intermediate values: each epoch's val_acc), its
rungs hold what they would hold had the search gone on in one round.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from digitsearch.search.mutation import KEEP_UP, TUNE_TRIAL_ATTR, parent_of
from digitsearch.store.leaderboard import match_starting_points


class Rungs:
    """Asynchronous successive halving's bookkeeping (Li et al. 2020), as Ray's ASHAScheduler
    keeps it with one bracket: rungs at grace x rf^k epochs; a trial reaching a rung is recorded
    there with its value at that moment, and stopped when that value is below the rung's top
    1/rf of the values recorded before it."""

    def __init__(self, grace: int, max_t: int, reduction_factor: float):
        count = int(np.log(max_t / grace) / np.log(reduction_factor) + 1)  # Ray's count, in its arithmetic
        self.reduction_factor = reduction_factor
        self.recorded: dict[float, dict[str, float]] = {grace * reduction_factor ** k: {}
                                                        for k in reversed(range(count))}  # highest rung first

    def judge(self, key: str, at: float, value: float) -> bool:
        """Record the trial at the highest rung it has reached and not yet been recorded at; whether it stops there."""
        for milestone, recorded in self.recorded.items():
            if at < milestone or key in recorded:
                continue
            cutoff = np.nanpercentile(list(recorded.values()), (1 - 1 / self.reduction_factor) * 100) \
                if recorded else None
            recorded[key] = value
            return cutoff is not None and value < cutoff
        return False

    def seed(self, curves: Mapping[str, Mapping[int, float]]) -> None:
        """The rungs as the trials with these curves (epoch -> value) left them: each recorded at every
        rung its curve reached, with its value at that epoch."""
        for key, curve in curves.items():
            for milestone, recorded in self.recorded.items():
                reached = [epoch for epoch in curve if epoch >= milestone]
                if reached:
                    recorded[key] = curve[min(reached)]


class StartingPointsASHA(FIFOScheduler):
    """ASHA (Rungs), except that a trial evaluating one of `starting_points` (partial configs,
    matched as the leaderboard's origin column matches them) is never stopped before max_t, and
    a local step (search/mutation.py) goes on while it keeps up with its parent at the same epoch.
    `prior`: Tune trial id -> {epoch: val_acc} of trials an earlier round ran (Rungs.seed)."""

    def __init__(self, starting_points: Sequence[Mapping] = (), *, time_attr: str, metric: str, mode: str,
                 max_t: int, grace_period: int, reduction_factor: float,
                 prior: Mapping[str, Mapping[int, float]] | None = None):
        super().__init__()
        self._metric, self._mode = metric, mode  # TrialScheduler's, read by Tune (its metric property)
        self.time_attr, self.sign, self.max_t = time_attr, 1.0 if mode == "max" else -1.0, max_t
        self.rungs = Rungs(grace_period, max_t, reduction_factor)
        self.points = [dict(point) for point in starting_points]
        self.protected: dict[str, int] = {}  # trial id -> the number of the starting point it evaluates
        # trial id -> {time_attr: metric}, every trial's (and the earlier rounds')
        self.curves: dict[str, dict[int, float]] = {key: dict(curve) for key, curve in (prior or {}).items()}
        self.rungs.seed({key: {at: self.sign * v for at, v in curve.items()} for key, curve in self.curves.items()})

    def on_trial_add(self, tune_controller, trial) -> None:
        for k, point in enumerate(self.points, start=1):
            if k not in self.protected.values() and match_starting_points({trial.trial_id: trial.config}, [point]):
                self.protected[trial.trial_id] = k
                return

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        at, value = result.get(self.time_attr), result.get(self._metric)
        if at is None or value is None:
            return TrialScheduler.CONTINUE
        self.curves.setdefault(trial.trial_id, {})[at] = value
        if at >= self.max_t:
            return TrialScheduler.STOP
        if not self.rungs.judge(trial.trial_id, at, self.sign * value):
            return TrialScheduler.CONTINUE
        if trial.trial_id in self.protected or self._keeps_up(trial.trial_id, at, value):
            return TrialScheduler.CONTINUE
        return TrialScheduler.STOP

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        at, value = (result or {}).get(self.time_attr), (result or {}).get(self._metric)
        if at is not None and value is not None:
            self.rungs.judge(trial.trial_id, at, self.sign * value)  # recorded, as a result is

    def _keeps_up(self, trial_id: str, at: int, value) -> bool:
        """A local step within KEEP_UP of its parent's metric at the same time (mode max)."""
        parent = parent_of(trial_id)
        before = self.curves.get(parent, {}).get(at) if parent else None
        return before is not None and value >= before - KEEP_UP


def ran_curves(study) -> dict[str, dict[int, float]]:
    """Tune trial id -> {epoch: val_acc} of every trial of an Optuna study that Tune ran (the
    study's intermediate values are each epoch's own val_acc: search.reconcile)."""
    return {str(t.user_attrs[TUNE_TRIAL_ATTR]): dict(t.intermediate_values)
            for t in study.get_trials(deepcopy=False) if TUNE_TRIAL_ATTR in t.user_attrs and t.intermediate_values}
