"""The search algorithm pieces Tune is given: Optuna's sampler inside Ray's OptunaSearch (the
study stored in the experiment's optuna.db), and the trial scheduler (ASHA or FIFO)."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from digitsearch.search.request import SearchRequest
from digitsearch.spaces import SearchSpace
from digitsearch.store import study

if TYPE_CHECKING:
    from digitsearch.data.bundle import Bundle


def sampler(req: SearchRequest):
    import optuna

    from digitsearch.search.mutation import LocalStepSampler

    if req.search == "random":
        return optuna.samplers.RandomSampler(seed=req.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # group=True models each conditional branch on its own; constant_liar keeps
        # parallel trials from proposing the same point while others are still running
        tpe = optuna.samplers.TPESampler(
            seed=req.seed, multivariate=True, group=True, constant_liar=True,
            n_startup_trials=max(4, min(10, req.trials // 3)) if req.trials else 10,
        )
    # half the trials after the first complete one are local steps from the best (mutation.py):
    # TPE alone never beat the space's starting points in a time-limited search
    return LocalStepSampler(tpe, seed=req.seed)


def searcher(req: SearchRequest, space: SearchSpace, folder: Path, meta: dict, starting_points: bool = True,
             round_trials: int | None = None, bundle: Bundle | None = None):
    """`bundle`: the data the trials train on; with it, a sampled config whose net does not
    build for its shapes, or is over --max-params / --max-mflops, is skipped before it becomes a
    trial (search/feasible.py). Without it every config goes to Tune, whose trial records it."""
    import optuna

    from digitsearch.search.feasible import Budget, Probe
    from digitsearch.search.reconcile import ResumableOptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # a complete trial's value is its best epoch, as the leaderboard and the checkpoint have it;
    # its steps are each epoch's own val_acc, which ASHA (below) compares at its rungs. With
    # --objective accuracy,latency (etc.) the study has a direction per objective: TPE's
    # multi-objective mode, which Ray's OptunaSearch passes through as lists
    metric, mode = req.study_metrics
    # Ray's OptunaSearch, made safe to restore from a snapshot older than the study (reconcile.py)
    return ResumableOptunaSearch(
        space=space.define_by_run, metric=metric, mode=mode, max_latency_ms=req.max_latency_ms,
        sampler=sampler(req), storage=study.storage(folder), study_name=study.name(folder, meta),
        # the portfolio's and the space's hand-made nets go first; a later round (--add-trials)
        # continues the study
        points_to_evaluate=_first_points(req, space) if starting_points else None,
        # a trial that ends before them (ASHA, a time limit) is PRUNED in the study, not COMPLETE
        max_epochs=req.max_epochs,
        # a trial that ran unseen by Tune's last snapshot before a kill counts toward the round's trials
        round_trials=round_trials,
        probe=(Probe.of(space.family, bundle, Budget(req.max_params, req.max_mflops, req.family_limits))
               if bundle is not None else None),
    )


def _first_points(req: SearchRequest, space: SearchSpace) -> list[dict] | None:
    """The starting points the study gets: no more than the search's trials, since Ray's
    OptunaSearch enqueues them all at once and the rest would wait in the study forever."""
    points = space.points_to_evaluate()
    return (points if req.uncapped else points[:req.trials]) or None


def scheduler(req: SearchRequest, starting_points: Sequence[Mapping] = (),
              prior: Mapping[str, Mapping[int, float]] | None = None):
    """`prior`: the curves of the trials earlier rounds ran, which ASHA's rungs start from."""
    from ray.tune.schedulers import FIFOScheduler

    from digitsearch.search.schedulers import StartingPointsASHA

    if req.scheduler == "fifo":
        return FIFOScheduler()
    return StartingPointsASHA(starting_points, time_attr="training_iteration", metric="val_acc", mode="max",
                              max_t=req.max_epochs, grace_period=req.grace_epochs,
                              reduction_factor=req.reduction_factor, prior=prior)
