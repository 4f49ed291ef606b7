"""What the Optuna study is told of each trial (search.reconcile): a trial that ASHA stopped, or
that stopped at the time limit, is PRUNED with its val_acc per epoch as steps; one that ran
every epoch is COMPLETE with its best val_acc; one the trainable could not use is COMPLETE 0,
marked infeasible for TPE. Driven three ways: the searcher alone with Tune's calls written out
(milliseconds), a real Tune run of a fake trainable under ASHA (deterministic: one trial at a
time), and the session's shared search (real training; what ASHA stops there depends on timing).
"""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest

from digitsearch import spaces
from digitsearch.search.reconcile import UNUSABLE, ResumableOptunaSearch, ran_trials

optuna.logging.set_verbosity(optuna.logging.WARNING)
MAX_EPOCHS = 4
COMPLETE, PRUNED, FAIL = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED,
                          optuna.trial.TrialState.FAIL)


def _space(trial):
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)


def _searcher(storage: str, max_epochs: int | None = MAX_EPOCHS) -> ResumableOptunaSearch:
    return ResumableOptunaSearch(space=_space, metric="best_val_acc", mode="max", study_name="p",
                                 storage=optuna.storages.RDBStorage(storage),
                                 sampler=optuna.samplers.RandomSampler(seed=0), max_epochs=max_epochs)


def _results(accs: list[float], note: str = "") -> list[dict]:
    """The trainable's result per epoch; `note` on the last."""
    rows, best = [], 0.0
    for epoch, acc in enumerate(accs, start=1):
        best = max(best, acc)
        rows.append({"val_acc": acc, "best_val_acc": best, "epoch": epoch, "training_iteration": epoch, "note": ""})
    rows[-1]["note"] = note
    return rows


def _tell(searcher, trial_id: str, results: list[dict]) -> None:
    """As Tune does: every result but the last to on_trial_result; the last (the epoch ASHA
    stopped it at, or its last) only to on_trial_complete."""
    searcher.suggest(trial_id)
    for result in results[:-1]:
        searcher.on_trial_result(trial_id, result)
    searcher.on_trial_complete(trial_id, results[-1])


def _by_tune_id(storage: str) -> dict[str, optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name="p", storage=storage)
    return {t.user_attrs["tune_trial_id"]: t for t in study.trials}


def test_each_ending_is_told_as_its_state_with_val_acc_per_epoch(tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    searcher = _searcher(storage)
    _tell(searcher, "full", _results([0.5, 0.7, 0.6, 0.8]))
    _tell(searcher, "asha", _results([0.4]))  # stopped at ASHA's first rung
    _tell(searcher, "timed", _results([0.5, 0.9, 0.85], note="time limit: 30m reached"))
    _tell(searcher, "infeasible", [{"val_acc": 0.0, "best_val_acc": 0.0, "epoch": 0, "training_iteration": 1,
                                    "note": "infeasible: the feature map shrinks to nothing"}])
    diverged = _results([0.3, 0.0])
    diverged[-1].update(best_val_acc=0.0, note="diverged: non-finite loss")
    _tell(searcher, "diverged", diverged)
    searcher.suggest("error")
    searcher.on_trial_result("error", _results([0.2])[0])
    searcher.on_trial_complete("error", error=True)  # Tune's call for a trial that raised

    trials = _by_tune_id(storage)
    full, asha, timed = trials["full"], trials["asha"], trials["timed"]
    assert (full.state, full.value, full.intermediate_values) == (COMPLETE, 0.8, {1: 0.5, 2: 0.7, 3: 0.6, 4: 0.8})
    assert (asha.state, asha.value, asha.intermediate_values) == (PRUNED, 0.4, {1: 0.4})
    # val_acc, not best_val_acc: TPE compares a pruned trial by its last step's value
    assert (timed.state, timed.value, timed.intermediate_values) == (PRUNED, 0.85, {1: 0.5, 2: 0.9, 3: 0.85})
    for unusable, steps in (("infeasible", {}), ("diverged", {1: 0.3})):  # its 0 measured nothing
        trial = trials[unusable]
        assert (trial.state, trial.value, trial.intermediate_values) == (COMPLETE, 0.0, steps)
        assert trial.constraints == {UNUSABLE: 1.0}  # infeasible for TPE: ranked below every pruned trial
    assert full.constraints == {} and asha.constraints == {}
    assert (trials["error"].state, trials["error"].intermediate_values) == (FAIL, {1: 0.2})
    assert len(ran_trials(optuna.load_study(study_name="p", storage=storage))) == 6  # one per leaderboard row


def test_a_pruned_trial_restored_from_an_older_snapshot_is_told_nothing_more(tmp_path):
    """The kill window of search.reconcile, for a trial that ended PRUNED: Tune restores it
    unfinished and runs its epochs again; the study keeps its first ending."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    live = _searcher(storage)
    live.suggest("a")
    live.save(str(tmp_path / "searcher.pkl"))  # Tune's snapshot, a running
    live.on_trial_complete("a", _results([0.4])[0])  # then ASHA stopped it, and the driver died
    restored = _searcher(storage)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert restored.told_before == {"a"}
    for result in _results([0.45, 0.5]):
        restored.on_trial_result("a", result)
    restored.on_trial_complete("a", _results([0.45, 0.5])[-1])
    trial = _by_tune_id(storage)["a"]
    assert (trial.state, trial.intermediate_values) == (PRUNED, {1: 0.4})


def test_a_searcher_pickled_before_max_epochs_existed_completes_every_trial(tmp_path):
    """--resume of an older experiment: Ray unpickles its searcher without max_epochs (the
    class's None), which tells every trial COMPLETE as it always did."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    old = _searcher(storage)
    del old.__dict__["max_epochs"]
    _tell(old, "asha", _results([0.4]))
    trial = _by_tune_id(storage)["asha"]
    assert (trial.state, trial.value, trial.intermediate_values) == (COMPLETE, 0.4, {1: 0.4})


# a real Tune run: trials one at a time, in the order of the space's points
PLANS = {"good": [0.90, 0.92, 0.93, 0.94], "weak": [0.50, 0.60, 0.70, 0.80], "timed": [0.95, 0.96, 0.97, 0.98],
         "infeasible": []}


@pytest.fixture(scope="module")
def tune_run(tmp_path_factory):
    """ASHA (grace 1, reduction 2, 4 epochs: rungs at epochs 1 and 2) over a fake trainable, with
    the searcher and scheduler a search builds (search.algorithms)."""
    import ray
    from ray import tune

    from digitsearch.search import algorithms
    from digitsearch.search.request import SearchRequest
    from digitsearch.spaces import Param, SearchSpace

    folder = tmp_path_factory.mktemp("pruned")
    space = SearchSpace(name="plans", family="cnn", description="", path=folder / "plans.yaml",
                        params=(Param(name="plan", kind="choice", values=tuple(PLANS)),),
                        starting_points=tuple({"plan": plan} for plan in PLANS))
    req = SearchRequest(trials=len(PLANS), max_epochs=MAX_EPOCHS, grace_epochs=1, reduction_factor=2)

    def fake_trial(config):
        # the trainable's reports (search.trainable): its notes, its val_acc 0 when unusable
        curve = PLANS[config["plan"]]
        if not curve:
            return tune.report({"val_acc": 0.0, "best_val_acc": 0.0, "epoch": 0, "note": "infeasible: no net"})
        for epoch, acc in enumerate(curve, start=1):
            timed_out = config["plan"] == "timed" and epoch == 3
            tune.report({"val_acc": acc, "best_val_acc": max(curve[:epoch]), "epoch": epoch,
                         "note": "time limit: 1m reached" if timed_out else ""})
            if timed_out:
                return

    ours = not ray.is_initialized()  # a Ray this process runs already (another file's searches) is kept
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # as search.rounds sets them
        env.setenv("RAY_AIR_NEW_OUTPUT", "0")
        if ours:
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        try:
            tune.Tuner(fake_trial, tune_config=tune.TuneConfig(
                search_alg=algorithms.searcher(req, space, folder, {"study_name": "plans"}),
                scheduler=algorithms.scheduler(req), num_samples=len(PLANS), max_concurrent_trials=1,
                reuse_actors=True),
                run_config=tune.RunConfig(storage_path=str(folder / "tune"), name="r", verbose=0)).fit()
        finally:
            if ours:
                ray.shutdown()
    study = optuna.load_study(study_name="plans", storage=f"sqlite:///{folder / 'optuna.db'}")
    return {t.params["plan"]: t for t in study.trials}


@pytest.mark.extended
@pytest.mark.e2e
def test_a_real_tune_run_under_asha_prunes_what_asha_stopped(tune_run):
    good, weak, timed, infeasible = (tune_run[plan] for plan in PLANS)
    # the first trial at each rung goes on: all 4 epochs, the last one told after ASHA's stop at max_t
    assert (good.state, good.value, good.intermediate_values) == (COMPLETE, 0.94, dict(enumerate(PLANS["good"], 1)))
    # below the first's 0.90 at the epoch-1 rung: stopped there
    assert (weak.state, weak.value, weak.intermediate_values) == (PRUNED, 0.5, {1: 0.5})
    # above both rungs, then its own time limit at epoch 3
    assert (timed.state, timed.value, timed.intermediate_values) == (PRUNED, 0.97, {1: 0.95, 2: 0.96, 3: 0.97})
    assert (infeasible.state, infeasible.value, infeasible.constraints) == (COMPLETE, 0.0, {UNUSABLE: 1.0})


@pytest.mark.e2e
def test_the_shared_searchs_study_and_leaderboard_agree(shared_search):
    """Real training (conftest.SharedSearch: cnn, 4 trials, 3 epochs, ASHA from epoch 1, the
    space's starting points first): each trial ASHA stopped is PRUNED with the val_acc of each
    epoch it ran (its progress.csv), each that ran every epoch COMPLETE with its best val_acc;
    the leaderboard and best.json say which trials were starting points."""
    folder = shared_search.folder
    table = pd.read_csv(folder / "leaderboard.csv", dtype={"trial_id": str})
    study = optuna.load_study(study_name=folder.name, storage=f"sqlite:///{folder / 'optuna.db'}")
    trials = {t.user_attrs["tune_trial_id"]: t for t in study.trials}
    assert set(trials) == set(table.trial_id)
    for row in table.itertuples():
        trial = trials[row.trial_id]
        if row.status in ("infeasible", "over budget"):
            assert (trial.state, trial.value) == (COMPLETE, 0.0)
            continue
        progress = pd.read_csv(Path(folder, "tune", f"trial_{row.trial_id}", "progress.csv"))
        per_epoch = dict(zip(progress["epoch"].astype(int), progress["val_acc"]))
        assert trial.intermediate_values == pytest.approx(per_epoch)
        expected = {"completed": COMPLETE, "stopped early": PRUNED}[row.status]
        assert trial.state == expected, (row.status, trial.state)
        if expected == COMPLETE:
            assert trial.value == pytest.approx(row.val_acc)
    assert list(table.columns[:4]) == ["trial_id", "family", "status", "origin"]
    points = len(spaces.load("cnn").starting_points)  # each ran: the first trials of the search are the points
    assert sorted(o for o in table.origin if o != "sampled") == [f"start {k}" for k in range(1, min(points, 4) + 1)]
    first = min(trials.values(), key=lambda t: t.number).user_attrs["tune_trial_id"]  # the Keras convnet
    assert table.set_index("trial_id").loc[first, "origin"] == "start 1"
    best = json.loads((folder / "best.json").read_text())
    assert best["origin"] == table.set_index("trial_id").loc[best["trial_id"], "origin"]
    assert " origin " in shared_search.tune.stdout.split("top 4 of 4 trials")[1].splitlines()[1]
