"""How a search is put together, checked without running one."""
import optuna
import pytest
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

from digitsearch.errors import UserError
from digitsearch.search import SearchRequest, _sampler, _scheduler, concurrency


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


def test_grace_defaults_to_three_or_fewer():
    request = SearchRequest(max_epochs=1)
    request.check()
    assert request.grace_epochs == 1
    request = SearchRequest(max_epochs=12)
    request.check()
    assert request.grace_epochs == 3
