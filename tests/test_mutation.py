"""Local steps from the best trial (search/mutation.py), on a plain Optuna study: which trials
are steps, what they change, that they survive a re-ask, and that the search uses them."""
from __future__ import annotations

import math
import pickle

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from digitsearch.search.mutation import CHANGES_ATTR, PARENT_ATTR, LocalStepSampler, best_complete, moved

START = {"depth": 2, "filters_1": 32, "filters_2": 64, "lr": 3e-3, "dropout": 0.3, "augment": "shift"}


def space(trial: optuna.Trial) -> dict:
    depth = trial.suggest_int("depth", 1, 3)
    params = {"depth": depth}
    for k in range(1, depth + 1):  # a conditional parameter per block, as the cnn space has
        params[f"filters_{k}"] = trial.suggest_categorical(f"filters_{k}", [16, 32, 64, 128])
    params["lr"] = trial.suggest_float("lr", 3e-4, 1e-2, log=True)
    params["dropout"] = trial.suggest_float("dropout", 0.0, 0.5)
    params["augment"] = trial.suggest_categorical("augment", ["none", "shift", "light"])
    return params


def study_with_start(seed: int = 0) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    tpe = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=True,
                                     n_startup_trials=4)
    study = optuna.create_study(direction="maximize", sampler=LocalStepSampler(tpe, seed=seed))
    study.enqueue_trial(START)
    start = study.ask()
    assert space(start) == START
    start.set_user_attr("tune_trial_id", "start1")
    study.tell(start, 0.99)
    return study


def ask_many(study: optuna.Study, count: int, value: float = 0.5) -> list[optuna.trial.FrozenTrial]:
    for _ in range(count):
        trial = study.ask()
        space(trial)
        study.tell(trial, value)
    return study.get_trials()[1:]


def changes(trial) -> dict:
    return {k: v for k, v in trial.params.items() if START.get(k, object()) != v}


def test_about_half_the_trials_are_steps_from_the_best_changing_one_or_two_values():
    trials = ask_many(study_with_start(), 40)
    steps = [t for t in trials if PARENT_ATTR in t.user_attrs]
    assert 12 <= len(steps) <= 28, len(steps)
    for step in steps:
        assert step.user_attrs[PARENT_ATTR] == "start1"  # the parent's Tune trial id
        changed = step.user_attrs[CHANGES_ATTR]
        assert 1 <= len(changed) <= 2
        # every value the step did not change (and that is still active) is the parent's
        differ = set(changes(step))
        assert set(changed) <= set(START) and differ - {"filters_3"} <= set(changed), (changed, step.params)
        assert all(step.params[name] != START[name] for name in changed if name in step.params)
    others = [t for t in trials if PARENT_ATTR not in t.user_attrs]
    assert sum(len(changes(t)) >= 3 for t in others) >= len(others) // 2  # TPE explores elsewhere


def test_no_step_before_a_trial_has_completed_and_the_starting_points_are_never_steps():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=LocalStepSampler(optuna.samplers.RandomSampler(0), 0))
    for _ in range(3):
        trial = study.ask()
        space(trial)
        study.tell(trial, state=TrialState.PRUNED)  # stopped after one epoch: not a parent
    study.enqueue_trial(START)
    study.enqueue_trial({**START, "augment": "none"})
    for _ in range(2):
        trial = study.ask()
        space(trial)
        study.tell(trial, 0.9)
    trials = study.get_trials()
    assert not any(PARENT_ATTR in t.user_attrs for t in trials)
    assert trials[3].params == START and trials[4].params["augment"] == "none"


def test_the_parent_is_the_best_complete_trial_and_an_unusable_zero_is_none():
    study = study_with_start()
    trial = study.ask()
    space(trial)
    trial.set_user_attr("tune_trial_id", "better")
    study.tell(trial, 0.995)
    steps = [t for t in ask_many(study, 30, value=0.1) if PARENT_ATTR in t.user_attrs]
    assert steps and {t.user_attrs[PARENT_ATTR] for t in steps} == {"better"}
    rng = np.random.default_rng(0)
    zero = optuna.trial.create_trial(params={}, distributions={}, value=0.0)
    assert best_complete([zero], rng) is None


def test_the_same_seed_gives_the_same_steps():
    first = [t.params for t in ask_many(study_with_start(seed=3), 16)]
    again = [t.params for t in ask_many(study_with_start(seed=3), 16)]
    assert first == again


def test_a_step_asked_again_after_a_restart_keeps_its_values():
    # a killed driver's RUNNING trial is handed to the next Tune trial (reconcile._running_trial):
    # the live handle made anew must suggest the same values, the step's included
    study = study_with_start()
    ask_many(study, 4)
    while True:
        trial = study.ask()
        params = space(trial)
        if PARENT_ATTR in study.get_trials()[-1].user_attrs:
            break
        study.tell(trial, 0.5)
    again = optuna.trial.Trial(study, trial._trial_id)
    assert space(again) == params
    # Tune pickles the searcher, sampler included, into its experiment snapshot
    restored = pickle.loads(pickle.dumps(study.sampler))
    assert isinstance(restored, LocalStepSampler) and restored.seed == study.sampler.seed


@pytest.mark.parametrize("dist, value", [
    (CategoricalDistribution([16, 32, 64]), 32),
    (CategoricalDistribution([True, False]), True),
    (IntDistribution(1, 5), 1),
    (IntDistribution(1, 5), 5),
    (IntDistribution(1, 5), 3),
    (FloatDistribution(3e-4, 1e-2, log=True), 3e-3),
    (FloatDistribution(0.0, 0.5), 0.0),
    (FloatDistribution(0.0, 0.25, step=0.05), 0.1),
])
def test_a_moved_value_stays_in_its_range_and_is_near_the_old_one(dist, value):
    rng = np.random.default_rng(1)
    for _ in range(200):
        new = moved(dist, value, rng)
        assert dist._contains(dist.to_internal_repr(new)), new
        if isinstance(dist, CategoricalDistribution):
            assert new != value
        elif isinstance(dist, IntDistribution):
            assert abs(new - value) == 1
        elif dist.log:
            assert abs(math.log(new / value)) < 5 * 0.5 + 1e-9 or new in (dist.low, dist.high)

