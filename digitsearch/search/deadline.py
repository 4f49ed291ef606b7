"""A search that ends by its time limit with every trial's result kept (`tune --time-limit`).

Ray's own `time_budget_s` kills running trials at the limit and loses their last epochs
(Ray issue 34136). Here the limit is kept in two places instead, both at epoch boundaries:
  - DeadlineSearcher, around the Optuna searcher: no new trial once the time left would not
    take it to its first ASHA rung (grace epochs at the epoch cost measured so far);
  - the trainable (TrialRuntime.deadline): a running trial does not start an epoch that would
    end after the deadline; it ends after the last one that fits, its result and checkpoint
    recorded, with a "time limit" note (PRUNED in the study, "time limit" in the leaderboard).
"""
from __future__ import annotations

import statistics
import time

from ray.tune.search import Searcher

from digitsearch.core.timebudget import Clock

# how the trainable's note begins when the deadline stopped a trial: a real, short run
# (the ledger counts it as stopped, the study as PRUNED, the leaderboard's status says "time limit")
TIME_LIMIT_NOTE = "time limit"
# a trial's first epoch also builds the model and copies the data: counted, as the user waits for it too
EPOCH_TIME_KEY = "time_this_iter_s"
# what DeadlineSearcher.get_state leaves out: the searcher inside saves itself, the clock is no
# data, and the planner belongs to the driver that runs the round (a resume runs unplanned)
_NOT_STATE = ("searcher", "clock", "planner")


class DeadlineSearcher(Searcher):
    """`searcher`'s suggestions until `deadline` (time.time()) is too near for a new trial to
    reach `first_rung_epochs` epochs, or `planner` (search.planner) has ended the search; then
    Searcher.FINISHED. Everything else is delegated. `clock`: where the time is read, time.time
    for every search (a test moves one by hand)."""

    def __init__(self, searcher: Searcher, deadline: float, first_rung_epochs: int,
                 clock: Clock = time.time, planner=None):
        self.searcher = searcher
        self.planner = planner
        self.deadline: float | None = deadline
        self.first_rung_epochs = first_rung_epochs
        self.epoch_seconds: list[float] = []
        self.clock = clock
        super().__init__(metric=searcher.metric, mode=searcher.mode)

    def first_rung_seconds(self) -> float:
        """What a new trial needs to reach its first rung: the median epoch so far (0 before any)."""
        median = statistics.median(self.epoch_seconds) if self.epoch_seconds else 0.0
        return self.first_rung_epochs * median

    def suggest(self, trial_id: str):
        if self.deadline is not None and self.clock() + self.first_rung_seconds() > self.deadline:
            return Searcher.FINISHED
        if self.planner is not None and self.planner.stopped:
            return Searcher.FINISHED
        return self.searcher.suggest(trial_id)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        seconds = result.get(EPOCH_TIME_KEY)
        if isinstance(seconds, (int, float)) and result.get("epoch", 0) > 0:
            self.epoch_seconds.append(float(seconds))
        self.searcher.on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self.searcher.on_trial_complete(trial_id, result=result, error=error)

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return self.searcher.set_search_properties(metric, mode, config, **spec)

    def set_max_concurrency(self, max_concurrent: int) -> bool:
        return self.searcher.set_max_concurrency(max_concurrent)

    def add_evaluated_point(self, *args, **kwargs):
        return self.searcher.add_evaluated_point(*args, **kwargs)

    # Tune snapshots a wrapper with get_state and restores it with set_state (the searcher
    # inside saves and restores itself: SearchGenerator.save_to_dir / restore_from_dir). The
    # clock is no state: a snapshot holds plain data, and the restored searcher reads the time
    # from the clock it was built with (time.time when it has none)
    def get_state(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key not in _NOT_STATE}

    def set_state(self, state: dict) -> None:
        self.__dict__.update({key: value for key, value in state.items() if key not in _NOT_STATE})
        self.__dict__.setdefault("clock", time.time)
        self.__dict__.setdefault("planner", None)
        # `tune --resume` of a time-limited search finishes the trials that were running (from
        # their checkpoints, without a limit) and starts none: the time given is spent
        self.deadline = 0.0

    def save(self, checkpoint_path: str) -> None:
        self.searcher.save(checkpoint_path)

    def restore(self, checkpoint_path: str) -> None:
        self.searcher.restore(checkpoint_path)

    def on_pause(self, trial_id: str) -> None:
        self.searcher.on_pause(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.searcher.on_unpause(trial_id)


def wrap_up_seconds(limit: float) -> float:
    """Kept back from the trials at the end of a time-limited search: Tune's shutdown, the
    leaderboard read back from every trial's files, Ray's shutdown (5-20 s, 5 % of the limit)."""
    return min(20.0, max(5.0, 0.05 * limit))
