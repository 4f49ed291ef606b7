"""How a search is put together, checked without running one."""
import logging
import sys

import optuna
import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from digitsearch.errors import UserError
from digitsearch.search.algorithms import sampler as _sampler
from digitsearch.search.algorithms import scheduler as _scheduler
from digitsearch.search.request import SearchRequest
from digitsearch.search.session import SYNC_LOGGER, TransientSyncErrorFilter, concurrency


def test_concurrency_fills_every_cpu():
    assert concurrency(SearchRequest(trials=24), cpus=2, gpus=0) == 2
    assert concurrency(SearchRequest(trials=24, cpus_per_trial=0.5), cpus=2, gpus=0) == 4
    assert concurrency(SearchRequest(trials=3), cpus=16, gpus=0) == 3  # never more slots than trials
    assert concurrency(SearchRequest(trials=24, max_concurrent=1), cpus=2, gpus=0) == 1


def test_fractional_gpus_pack_trials():
    assert concurrency(SearchRequest(trials=24, gpus_per_trial=0.25), cpus=16, gpus=1) == 4


def test_too_big_a_trial_is_a_user_error():
    with pytest.raises(UserError, match="lower --cpus-per-trial"):
        concurrency(SearchRequest(cpus_per_trial=4), cpus=2, gpus=0)
    with pytest.raises(UserError, match="GPUs"):
        concurrency(SearchRequest(gpus_per_trial=1), cpus=2, gpus=0)


def test_samplers_and_schedulers():
    assert isinstance(_sampler(SearchRequest(search="random")), optuna.samplers.RandomSampler)
    assert isinstance(_sampler(SearchRequest(search="optuna")), optuna.samplers.TPESampler)
    asha = _scheduler(SearchRequest(max_epochs=12, grace_epochs=2))
    assert isinstance(asha, ASHAScheduler) and asha._max_t == 12
    assert type(_scheduler(SearchRequest(scheduler="fifo"))) is FIFOScheduler


def test_asha_rungs_start_after_one_epoch_by_default():
    request = SearchRequest(max_epochs=12)
    request.check()
    asha = _scheduler(request)
    assert request.grace_epochs == 1 and asha._reduction_factor == 4
    assert [rung for rung, _ in asha._brackets[0]._rungs] == [4, 1]
    asha = _scheduler(SearchRequest(max_epochs=12, reduction_factor=3))
    assert [rung for rung, _ in asha._brackets[0]._rungs] == [9, 3, 1]


def _record_for(error: Exception) -> logging.LogRecord:
    try:
        raise error
    except Exception:
        return logging.LogRecord("ray.tune.execution.experiment_state", logging.ERROR, __file__, 1,
                                 "Saving experiment state to storage failed with exception: ", (),
                                 sys.exc_info())


def test_a_sync_that_raced_the_searchers_save_is_not_shown_other_errors_are():
    from ray.tune.execution import experiment_state

    assert experiment_state.logger.name == SYNC_LOGGER  # the logger the filter goes on
    raced = FileNotFoundError(2, "Failed to open local file '/tmp/ray/x/driver_artifacts/"
                                 ".8f6da2b7-c6dd-4710-959e-1946648a5012-tmp-search_gen_state-"
                                 "2026-11-22_22-31-11.json'. "
                                 "Detail: [errno 2] No such file or directory")
    keep = TransientSyncErrorFilter()
    assert not keep.filter(_record_for(raced))
    assert keep.filter(_record_for(FileNotFoundError(2, "No such file: '/results/tiny/trial.json'")))
    assert keep.filter(_record_for(FileNotFoundError(2, "No such file: '/home/u/tmp-runs/.abc-tmp-x.json'")))
    assert keep.filter(_record_for(PermissionError(13, "denied: '/r/.8f6da2b7-c6dd-4710-959e-1946648a5012-tmp-x'")))
    plain = logging.LogRecord(SYNC_LOGGER, logging.WARNING, __file__, 1, "slow sync", (), None)
    assert keep.filter(plain)
