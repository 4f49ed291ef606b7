"""How a search is put together, checked without running one."""
import logging
import sys
from types import SimpleNamespace

import numpy as np
import optuna
import pytest
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from digitsearch.errors import UserError
from digitsearch.search.algorithms import sampler as _sampler
from digitsearch.search.algorithms import scheduler as _scheduler
from digitsearch.search.mutation import LocalStepSampler
from digitsearch.search.request import SearchRequest
from digitsearch.search.schedulers import StartingPointsASHA
from digitsearch.search.session import SYNC_LOGGER, TransientSyncErrorFilter, concurrency


def test_concurrency_fills_every_cpu():
    assert concurrency(SearchRequest(trials=24), cpus=2, gpus=0) == 2
    assert concurrency(SearchRequest(trials=24, cpus_per_trial=0.5), cpus=2, gpus=0) == 4
    assert concurrency(SearchRequest(trials=3), cpus=16, gpus=0) == 3  # never more slots than trials
    assert concurrency(SearchRequest(trials=24, max_concurrent=1), cpus=2, gpus=0) == 1


@pytest.mark.parametrize("share, fit", [(1, 1), (0.5, 2), (0.25, 4), (0.2, 5), (0.1, 10), (0.3, 3)])
def test_fractional_gpus_pack_as_ray_counts(share, fit):
    """Exact slots: in floating point 1 // 0.2 is 4.0 and 1 // 0.1 is 9.0; Ray's fixed point fits 5 and 10."""
    assert concurrency(SearchRequest(trials=24, gpus_per_trial=share), cpus=16, gpus=1) == fit
    assert concurrency(SearchRequest(trials=24, cpus_per_trial=share), cpus=1, gpus=0) == fit


def test_a_trial_trains_where_ray_placed_it():
    """A zero-GPU trial trains on the CPU though the process sees a GPU; a GPU trial on its GPU."""
    from digitsearch.core.engine import device_for

    assert device_for([], cuda_available=True).type == "cpu"
    assert device_for(["2"], cuda_available=True).type == "cuda"
    assert device_for(["2"], cuda_available=False).type == "cpu"  # a fake GPU a local Ray declared


def test_too_big_a_trial_is_a_user_error():
    with pytest.raises(UserError, match="lower --cpus-per-trial"):
        concurrency(SearchRequest(cpus_per_trial=4), cpus=2, gpus=0)
    with pytest.raises(UserError, match="GPUs"):
        concurrency(SearchRequest(gpus_per_trial=1), cpus=2, gpus=0)


def test_samplers_and_schedulers():
    assert isinstance(_sampler(SearchRequest(search="random")), optuna.samplers.RandomSampler)
    tpe_and_steps = _sampler(SearchRequest(search="optuna"))
    assert isinstance(tpe_and_steps, LocalStepSampler) and isinstance(tpe_and_steps.base, optuna.samplers.TPESampler)
    assert isinstance(_scheduler(SearchRequest(max_epochs=12, grace_epochs=2)), StartingPointsASHA)
    assert type(_scheduler(SearchRequest(scheduler="fifo"))) is FIFOScheduler


def _epoch_stopped(scheduler, trial_id: str, val_accs: list[float]) -> int | None:
    """Feed one trial's epochs to the scheduler, as Tune does; the epoch it said STOP at, if any."""
    trial = SimpleNamespace(trial_id=trial_id)  # all ASHA reads of a trial
    scheduler.on_trial_add(None, trial)
    for epoch, val_acc in enumerate(val_accs, start=1):
        decision = scheduler.on_trial_result(None, trial, {"training_iteration": epoch, "val_acc": val_acc})
        if decision == TrialScheduler.STOP:
            return epoch
    return None


def _rung_epochs(request: SearchRequest) -> tuple[list[int], int | None]:
    """(the epochs a trial can be cut at, the epoch a good trial is stopped at), found by behaviour:
    after one good trial, a trial as good until epoch k, then far worse, is cut at the first rung
    at or after k. A fresh scheduler per k, so that no cut trial lowers the next one's bar."""
    request.checked()
    cuts = set()
    for k in range(1, request.max_epochs + 1):
        asha = _scheduler(request)
        _epoch_stopped(asha, "good", [0.9] * request.max_epochs)
        cut = _epoch_stopped(asha, "slump", [0.95] * (k - 1) + [0.1] * (request.max_epochs - k + 1))
        if cut is not None and cut < request.max_epochs:
            assert cut >= k, f"cut at {cut} before it fell behind at {k}"
            cuts.add(cut)
    return sorted(cuts), _epoch_stopped(_scheduler(request), "alone", [0.9] * (request.max_epochs + 5))


def test_asha_cuts_trials_at_rungs_after_one_epoch_then_every_4x():
    assert SearchRequest().grace_epochs == 1 and SearchRequest().reduction_factor == 4  # the defaults used below
    assert _rung_epochs(SearchRequest(max_epochs=12)) == ([1, 4], 12)
    assert _rung_epochs(SearchRequest(max_epochs=12, reduction_factor=3)) == ([1, 3, 9], 12)
    assert _rung_epochs(SearchRequest(max_epochs=12, grace_epochs=2)) == ([2, 8], 12)


def test_asha_judges_a_trial_by_its_val_acc_at_the_rung():
    """Compared on val_acc, higher is better: one just as good as the first trial goes on."""
    asha = _scheduler(SearchRequest(max_epochs=12))
    _epoch_stopped(asha, "first", [0.5] * 12)
    assert _epoch_stopped(asha, "as good", [0.5] * 3 + [0.6] * 9) == 12
    assert _epoch_stopped(asha, "worse", [0.4] * 12) == 1


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


def test_asha_trains_the_starting_points_in_full_and_still_stops_the_others():
    from ray.tune.experiment import Trial

    point = {"cnn.depth": 3, "lr": 0.003}
    asha = _scheduler(SearchRequest(max_epochs=8, grace_epochs=1, reduction_factor=2), [point])
    strong = [0.9] * 8
    for name, config in (("a", {"cnn.depth": 2, "lr": 0.01}), ("b", {"cnn.depth": 2, "lr": 0.02})):
        trial = Trial("__fake", trial_id=name, stub=True, config=config)
        asha.on_trial_add(None, trial)
        for epoch, acc in enumerate(strong, start=1):
            asha.on_trial_result(None, trial, {"training_iteration": epoch, "val_acc": acc})
    slow = Trial("__fake", trial_id="start", stub=True, config={**point, "batch_size": 128})
    asha.on_trial_add(None, slow)
    decisions = [asha.on_trial_result(None, slow, {"training_iteration": epoch, "val_acc": 0.1})
                 for epoch in range(1, 9)]
    assert decisions[:-1] == [TrialScheduler.CONTINUE] * 7 and decisions[-1] == TrialScheduler.STOP
    weak = Trial("__fake", trial_id="weak", stub=True, config={"cnn.depth": 1, "lr": 0.1})
    asha.on_trial_add(None, weak)
    assert asha.on_trial_result(None, weak, {"training_iteration": 1, "val_acc": 0.1}) == TrialScheduler.STOP
    assert asha.protected == {"start": 1}


def test_asha_keeps_a_local_step_going_while_it_keeps_up_with_its_parent():
    """A step from a slow-starting parent is judged against the parent at the same epoch (the
    searcher notes each step's parent, search/mutation.py); one that falls behind it is stopped."""
    from ray.tune.experiment import Trial

    from digitsearch.search.mutation import KEEP_UP, note_parents

    point = {"cnn.depth": 3, "lr": 0.003}
    asha = _scheduler(SearchRequest(max_epochs=4, grace_epochs=1, reduction_factor=2), [point])
    for name, curve in (("parent", [0.94, 0.97, 0.99, 0.995]), ("fast", [0.98, 0.98, 0.98, 0.98])):
        trial = Trial("__fake", trial_id=name, stub=True, config=point if name == "parent" else {"lr": 0.01})
        asha.on_trial_add(None, trial)
        for epoch, acc in enumerate(curve, start=1):
            asha.on_trial_result(None, trial, {"training_iteration": epoch, "val_acc": acc})
    note_parents({"step": "parent", "lost": "parent"})
    results = {}
    for name, curve in (("step", [0.94 - KEEP_UP / 2, 0.97, 0.99, 0.99]), ("lost", [0.80, 0.9, 0.9, 0.9]),
                        ("alone", [0.94 - KEEP_UP / 2, 0.97, 0.99, 0.99])):  # as good as the step, no parent
        trial = Trial("__fake", trial_id=name, stub=True, config={"lr": 0.002, "cnn.depth": 2})
        asha.on_trial_add(None, trial)
        results[name] = _decisions(asha, trial, curve)
    assert results["step"][:3] == [TrialScheduler.CONTINUE] * 3
    assert results["lost"][0] == TrialScheduler.STOP and results["alone"][0] == TrialScheduler.STOP


def _decisions(asha, trial, curve: list[float]) -> list[str]:
    decisions = []
    for epoch, acc in enumerate(curve, start=1):
        decisions.append(asha.on_trial_result(None, trial, {"training_iteration": epoch, "val_acc": acc}))
        if decisions[-1] == TrialScheduler.STOP:
            break
    return decisions


def test_without_gpus_per_trial_a_gpu_machine_packs_small_nets_four_to_a_gpu():
    from digitsearch.search.session import gpu_share

    assert gpu_share(("cnn",), 0) == (0.0, None)  # no GPU: CPU trials, nothing to say
    share, said = gpu_share(("cnn", "lenet"), 1)
    assert share == 0.25 and "4 share a GPU" in said and "--gpus-per-trial 0" in said
    assert gpu_share(("cnn", "transfer"), 2)[0] == 1.0  # an ImageNet backbone takes a GPU of its own
    assert concurrency(SearchRequest(trials=24), cpus=2, gpus=0) == 2  # unset: no GPU asked for


def _curves(seed: int, count: int, epochs: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [list(np.clip(rng.uniform(0.3, 0.9) + np.cumsum(rng.normal(0.01, 0.03, epochs)), 0, 1))
            for _ in range(count)]


def _run(scheduler, curves: list[list[float]], first: int = 0) -> dict[str, list[float]]:
    """Each trial's curve up to where the scheduler stopped it, trials one after another."""
    ran = {}
    for k, curve in enumerate(curves, start=first):
        stopped = _epoch_stopped(scheduler, f"t{k}", curve)
        ran[f"t{k}"] = curve[:stopped or len(curve)]
        trial = SimpleNamespace(trial_id=f"t{k}")
        scheduler.on_trial_complete(None, trial, {"training_iteration": len(ran[f"t{k}"]), "val_acc": ran[f"t{k}"][-1]})
    return ran


@pytest.mark.parametrize("seed", range(5))
def test_our_asha_stops_what_rays_asha_stops(seed):
    """The rule is Ray's ASHAScheduler's with one bracket (now on Tune's public scheduler API)."""
    from ray.tune.schedulers import ASHAScheduler

    curves = _curves(seed, 40, 16)
    ours = _run(_scheduler(SearchRequest(max_epochs=16)), curves)
    rays = _run(ASHAScheduler(time_attr="training_iteration", metric="val_acc", mode="max", max_t=16,
                              grace_period=1, reduction_factor=4), curves)
    assert {k: len(v) for k, v in ours.items()} == {k: len(v) for k, v in rays.items()}
    assert any(len(v) < 16 for v in ours.values())


@pytest.mark.parametrize("seed", range(5))
def test_a_later_round_seeded_with_the_earlier_curves_stops_what_one_round_would_have(seed):
    """A search extended by a new Tune round (--add-trials) stops the same trials as had it run
    them all in one: the new round's rungs start from the study's curves."""
    curves = _curves(seed, 30, 16)
    request = SearchRequest(max_epochs=16)
    whole = _run(_scheduler(request), curves)
    earlier = _run(_scheduler(request), curves[:12])
    later = _run(_scheduler(request, prior={k: dict(enumerate(v, start=1)) for k, v in earlier.items()}),
                 curves[12:], first=12)
    assert {**earlier, **later} == whole
    unseeded = _run(_scheduler(request), curves[12:], first=12)
    assert sum(map(len, unseeded.values())) > sum(map(len, later.values()))  # cold rungs stop fewer


def test_the_earlier_curves_are_the_studys_trials_that_tune_ran():
    from digitsearch.search.mutation import TUNE_TRIAL_ATTR
    from digitsearch.search.schedulers import ran_curves

    study = optuna.create_study(direction="maximize")
    for tune_id, values in (("a1", [0.5, 0.6]), (None, [0.9]), ("b2", [])):
        trial = study.ask()
        if tune_id:
            trial.set_user_attr(TUNE_TRIAL_ATTR, tune_id)
        for epoch, value in enumerate(values, start=1):
            trial.report(value, epoch)
        study.tell(trial, values[-1] if values else 0.0)
    assert ran_curves(study) == {"a1": {1: 0.5, 2: 0.6}}  # a skipped config (no Tune trial) and one with no epoch: none
